"""``Segmenter``: the scikit-learn-style Python API over training and prediction.

Example::

    seg = Segmenter(max_time_minutes=5).fit("data/Dataset001_Drive", run_dir="runs/drive")
    labels = seg.predict(image)          # (C, *S) array -> (*S) labels
    probs = seg.predict_proba(image)     # (K, *S)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from medlearn.data.images import read_image


class Segmenter:
    """Self-configuring segmentation (nnU-Net-style planning, Isensee et al. 2021).

    ``__init__`` only stores parameters; :meth:`fit` plans, trains and sets ``plan_``, ``model_``,
    ``run_dir_`` and ``metrics_``. Any plan field can be set with ``overrides`` (dotted keys).
    """

    def __init__(self, network: str | None = None, max_time_minutes: float | None = None,
                 max_epochs: int | None = None, overrides: dict[str, Any] | None = None, seed: int = 0,
                 progress: bool = False) -> None:
        self.network = network
        self.max_time_minutes = max_time_minutes
        self.max_epochs = max_epochs
        self.overrides = overrides
        self.seed = seed
        self.progress = progress

    def _overrides(self) -> dict[str, Any]:
        out: dict[str, Any] = {"train.seed": self.seed}
        if self.network:
            out["network.name"] = self.network
        if self.max_time_minutes is not None:
            out["train.max_time_minutes"] = self.max_time_minutes
        if self.max_epochs is not None:
            out["train.max_epochs"] = self.max_epochs
        out.update(self.overrides or {})
        return out

    def fit(self, dataset: str | Path, run_dir: str | Path, force: bool = False) -> Segmenter:
        """Train on an MSD dataset; the run directory receives every output."""
        from medlearn.tasks.segment.inference import SegmentationModel
        from medlearn.tasks.segment.train import train_segmentation

        rd = train_segmentation(dataset, run_dir, self._overrides(), force=force, progress=self.progress)
        self.run_dir_ = rd.path
        self.model_ = SegmentationModel.load(rd.path)
        self.plan_ = self.model_.plan
        self.metrics_ = rd.read_metrics()
        return self

    @classmethod
    def load(cls, run_dir: str | Path) -> Segmenter:
        """A fitted Segmenter from a finished run directory."""
        from medlearn.tasks.segment.inference import SegmentationModel

        seg = cls()
        seg.run_dir_ = Path(run_dir)
        seg.model_ = SegmentationModel.load(run_dir)
        seg.plan_ = seg.model_.plan
        metrics = Path(run_dir) / "metrics.json"
        seg.metrics_ = __import__("json").loads(metrics.read_text()) if metrics.exists() else {}
        return seg

    def _image(self, x: np.ndarray | str | Path) -> tuple[np.ndarray, tuple[float, ...] | None]:
        if isinstance(x, (str, Path)):
            array, meta = read_image(x)
            return array, meta.spacing
        return np.asarray(x, np.float32), None

    def predict_proba(self, x: np.ndarray | str | Path, roi: np.ndarray | None = None) -> np.ndarray:
        """``(C, *S)`` image (or a file) -> ``(K, *S)`` probabilities."""
        image, spacing = self._image(x)
        return self.model_.predict_proba(image, spacing, roi)

    def predict(self, x: np.ndarray | str | Path, roi: np.ndarray | None = None) -> np.ndarray:
        """``(C, *S)`` image (or a file) -> ``(*S)`` uint8 labels (with the chosen post-processing)."""
        return self.model_.labels_from_proba(self.predict_proba(x, roi))
