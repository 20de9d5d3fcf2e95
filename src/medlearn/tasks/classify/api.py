"""``Classifier``: the Python API (scikit-learn style) behind ``medlearn classify``.

``Classifier(**options).fit(data, run_dir)`` trains (setting ``run_dir_``, ``plan_``, ``net_``,
``metrics_``); ``Classifier.load(run_dir)`` restores a trained one; ``predict_proba``/``predict``
take image arrays ``(N, C, *spatial)`` (raw intensities, as read) or paths.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from medlearn.engine.rundir import RunDirectory
from medlearn.io import write_json
from medlearn.tasks.classify.inputs import load_inputs
from medlearn.tasks.classify.model_io import load_classifier
from medlearn.tasks.classify.patient import PatientAggregator, patient_bags, predict_patients
from medlearn.tasks.classify.predict import embed_images
from medlearn.tasks.classify.predict import predict_proba as _predict_proba
from medlearn.transforms.intensity import normalize


class Classifier:
    """Image classifier. ``__init__`` only stores options; ``fit`` does the work."""

    def __init__(self, overrides: Sequence[str] | None = None, seed: int = 0,
                 label_columns: Sequence[str] | None = None, task: str | None = None,
                 init_from: str | None = None, progress: bool = False,
                 n_boot: int = 1000) -> None:
        self.overrides = overrides
        self.seed = seed
        self.label_columns = label_columns
        self.task = task
        self.init_from = init_from
        self.progress = progress
        self.n_boot = n_boot

    # -- training ---------------------------------------------------------------------------------
    def fit(self, data: str | Path, run_dir: str | Path, force: bool = False, resume: bool = False) -> Classifier:
        from medlearn.tasks.classify.train import TrainOptions, train_classifier

        options = TrainOptions(str(data), str(run_dir), list(self.label_columns) if self.label_columns else None,
                               self.task, None, None, list(self.overrides or []), None, self.seed, force, resume,
                               self.init_from, self.progress, self.n_boot)
        self.metrics_ = train_classifier(options, echo=lambda *a, **k: None)
        self._restore(run_dir)
        return self

    @classmethod
    def load(cls, run_dir: str | Path) -> Classifier:
        clf = cls()
        clf._restore(run_dir)
        return clf

    def _restore(self, run_dir: str | Path) -> None:
        self.run_dir_ = RunDirectory(Path(run_dir)).require_finished()
        self.plan_, self.net_, extra = load_classifier(self.run_dir_)
        self.aggregator_: PatientAggregator | None = None
        state = extra.get("patient_aggregator")
        if state is not None:
            embed_dim = self.net_.embed_dim
            self.aggregator_ = PatientAggregator(embed_dim, self.plan_.num_outputs, self.plan_.patient.aggregation)
            self.aggregator_.load_state_dict(state)
            self.aggregator_.eval()

    @property
    def classes_(self) -> list[str]:
        return list(self.plan_.label_names)

    # -- inference --------------------------------------------------------------------------------
    def _normalise(self, images: np.ndarray) -> np.ndarray:
        d = self.plan_.data
        return normalize(np.asarray(images, np.float32), d.normalization, d.mean, d.std)

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        """``(N, K)`` probabilities for raw images ``(N, C, *spatial)`` at the model's input size."""
        return _predict_proba(self.net_, self._normalise(images), self.plan_.task, tta=self.plan_.flip_tta)

    def predict(self, images: np.ndarray) -> np.ndarray:
        proba = self.predict_proba(images)
        if self.plan_.task == "multilabel":
            return (proba > 0.5).astype(int)
        return np.asarray(self.classes_)[proba.argmax(1)]

    def predict_table(self, inputs: Sequence[str | Path]) -> tuple[pd.DataFrame, pd.DataFrame | None]:
        """Per-image probability table, and a per-patient one when inputs carry patient ids."""
        from medlearn.tasks.classify.evaluate import predictions_table

        images, ids, patients = load_inputs(inputs, self.plan_)
        proba = self.predict_proba(images)
        table = predictions_table(ids, proba, self.plan_)
        if patients is None:
            return table, None
        table.insert(1, "patient_id", patients)
        if self.aggregator_ is not None:
            emb = embed_images(self.net_, self._normalise(images))
            dummy = np.zeros(len(ids), np.int64)
            pids, bags, lengths, _ = patient_bags(emb, dummy, patients)
            pproba = predict_patients(self.aggregator_, bags, lengths, self.plan_.task)
        else:  # no trained aggregator: mean of image probabilities
            pids = list(dict.fromkeys(patients))
            pproba = np.stack([proba[patients == p].mean(0) for p in pids])
        return table, predictions_table(pids, pproba, self.plan_).rename(columns={"id": "patient_id"})

    def evaluate(self, data: str | Path, out_dir: str | Path, label_columns: Sequence[str] | None = None,
                 n_boot: int = 1000) -> dict[str, Any]:
        """Metrics (95% CIs) and a report on a labelled dataset; labels must be in the model's label set."""
        from medlearn.data.classification import load_classification_data
        from medlearn.tasks.classify.evaluate import evaluate_splits
        from medlearn.tasks.classify.inputs import _fit_to_plan

        ds = load_classification_data(data, label_columns=label_columns, classes=self.classes_,
                                      task=self.plan_.task if self.plan_.task != "binary" else None)
        images = np.stack([_fit_to_plan(im, self.plan_, i) for im, i in zip(ds.images, ds.ids, strict=True)])
        ds.images = images
        splits = ds.splits if ds.splits is not None and np.isin(ds.splits, ["val", "test"]).any() else None
        splits = np.where(np.isin(splits, ["val", "test"]), splits, "train") if splits is not None else np.full(
            len(ds), "all")
        out = Path(out_dir)
        metrics = evaluate_splits(self.run_dir_, self.plan_, self.net_, ds, self._normalise(images), splits,
                                  n_boot=n_boot, aggregator=self.aggregator_, report_path=out / "report.html",
                                  title=f"medlearn evaluation of {self.run_dir_.path.name}")
        write_json(out / "metrics.json", metrics)
        return metrics

    def explain(self, inputs: Sequence[str | Path], out_dir: str | Path, method: str = "gradcam",
                limit: int = 64) -> list[Path]:
        """One overlay PNG per input image (2D) or per middle slice (3D) of the predicted class."""
        from medlearn.data.images import write_image
        from medlearn.explain import grad_cam, occlusion_sensitivity, overlay
        from medlearn.tasks.classify.evaluate import to_display

        if method not in ("gradcam", "occlusion"):
            from medlearn.errors import InputError

            raise InputError("--method", f"unknown method '{method}'", "use gradcam or occlusion")
        images, ids, _ = load_inputs(inputs, self.plan_)
        images, ids = images[:limit], ids[:limit]
        x = torch.from_numpy(self._normalise(images))
        proba = self.predict_proba(images)
        heat = grad_cam(self.net_, x) if method == "gradcam" else occlusion_sensitivity(self.net_, x)
        written = []
        out = Path(out_dir)
        for i, name in enumerate(ids):
            image, h = images[i], heat[i]
            if self.plan_.spatial_dims == 3:  # middle axial slice
                z = image.shape[-1] // 2
                image, h = image[..., z], h[..., z]
            shown = to_display(image)
            if shown.ndim == 3:
                shown = shown.mean(-1)
            rgb = overlay(shown, h.T)
            label = self.classes_[int(proba[i].argmax())]
            path = out / f"{i:04d}_{Path(str(name)).stem.replace(':', '_')}_{method}_{label}.png"
            write_image(path, np.transpose(rgb, (2, 1, 0)))
            written.append(path)
        return written
