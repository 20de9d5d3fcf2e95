"""``Classifier``: the classification model and its Python API (scikit-learn style).

``Classifier(overrides=[...], seed=0).fit(data, run_dir)`` trains a run directory (setting ``plan_``,
``net_``, ``metrics_``, ``run_dir_``); ``Classifier.load(run_dir)`` (or ``medlearn.load_run``) restores one.

Axis convention, the same at every entry point (CLI, API, ``.npz``, files): images are channel-first
``(N, C, X, Y[, Z])`` in NIfTI voxel order, X being the image *columns* — what
:func:`medlearn.data.images.read_image` returns for a PNG and what MONAI's ``LoadImage`` gives. A numpy
raster ``(H, W)`` (PIL, MedMNIST ``.npz`` arrays) is ``image.T`` in this order; :func:`from_raster` converts
``(N, H, W[, 3])`` raster batches. Raw intensities: the model applies its own normalisation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from medlearn.data.images import ImageMeta
from medlearn.errors import InputError
from medlearn.imaging.embed import embed_images
from medlearn.io.artifact import Artifact
from medlearn.tasks.base import ServiceInput, ServiceOutput, TaskModel
from medlearn.tasks.classify.data import resize_all
from medlearn.tasks.classify.module import build_classifier_network
from medlearn.tasks.classify.patient import (
    LEARNED,
    PatientAggregator,
    patient_bags,
    pool_probabilities,
    predict_patients,
)
from medlearn.tasks.classify.plan import ClassificationPlan
from medlearn.tasks.classify.predict import predict_proba as _predict_proba
from medlearn.transforms.intensity import normalize


@dataclass
class ReadImages:
    """Images read for prediction: ``images (N, C, *S)`` raw, fitted to the model's input size."""

    images: np.ndarray
    ids: list[str]
    metas: list[ImageMeta | None]
    patients: np.ndarray | None
    warnings: list[str]
    originals: list[np.ndarray]  # as read, before resizing to the model's input (for display)


def _upsample(heat: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """A map ``(*S)`` at the model's input size, linearly resized to ``shape`` (the image as read)."""
    if tuple(heat.shape) == tuple(shape):
        return heat
    mode = "bilinear" if heat.ndim == 2 else "trilinear"
    t = torch.as_tensor(np.asarray(heat, np.float32))[None, None]
    return torch.nn.functional.interpolate(t, size=tuple(shape), mode=mode, align_corners=False)[0, 0].numpy()


def from_raster(images: np.ndarray) -> np.ndarray:
    """``(N, H, W)`` or ``(N, H, W, 3)`` numpy raster images (rows first) -> ``(N, C, X, Y)``."""
    images = np.asarray(images)
    if images.ndim == 3:
        return np.swapaxes(images, 1, 2)[:, None]
    if images.ndim == 4 and images.shape[-1] in (1, 3):
        return np.transpose(images, (0, 3, 2, 1))
    raise ValueError(f"expected (N, H, W) or (N, H, W, 3) raster images, got shape {images.shape}")


class Classifier(TaskModel):
    """Image classifier (2D/3D; binary, multi-class, multi-label, ordinal; per image and per patient).

    Parameters: ``overrides`` (plan ``--set`` items or a dict), ``seed``, ``progress``, ``n_boot``, and the
    reading options ``label_columns``, ``task``, ``classes``, ``allow_outside_paths``.
    """

    task_name = "classify"
    input_kind = "image"

    # -- artefact --------------------------------------------------------------------------------------
    def to_artifact(self) -> Artifact:
        tensors: dict[str, Any] = {"net": self.net_.state_dict()}
        if self.aggregator_ is not None:
            tensors["aggregator"] = self.aggregator_.state_dict()
        return Artifact(self.task_name, self.plan_.to_dict(), tensors, dict(self.extras_))

    def restore(self, artifact: Artifact, run_dir: Path | None) -> None:
        self.plan_ = ClassificationPlan.from_dict(artifact.plan, "model.pt")
        self.net_ = build_classifier_network(self.plan_)
        self.net_.load_state_dict(artifact.tensors["net"])
        self.net_.eval()
        self.extras_ = dict(artifact.extras)
        self.aggregator_ = None
        if "aggregator" in artifact.tensors:
            self.aggregator_ = PatientAggregator(self.net_.embed_dim, self.plan_.num_outputs,
                                                 self.plan_.patient.aggregation)
            self.aggregator_.load_state_dict(artifact.tensors["aggregator"])
            self.aggregator_.eval()

    @classmethod
    def from_parts(cls, plan: ClassificationPlan, net: torch.nn.Module, aggregator: PatientAggregator | None,
                   extras: dict[str, Any]) -> Classifier:
        model = cls()
        model.plan_, model.net_, model.aggregator_, model.extras_ = plan, net.eval(), aggregator, extras
        return model

    @property
    def classes_(self) -> list[str]:
        return list(self.plan_.label_names)

    def describe(self) -> dict[str, Any]:
        p = self.plan_
        return {"task": self.task_name, "inputs": "image", "classification": p.task, "labels": self.classes_,
                "spatial_dims": p.spatial_dims, "channels": p.in_channels, "input_size": p.input_size,
                "network": p.network.name, "ensemble": p.train.ensemble,
                "patient_aggregation": p.patient.aggregation}

    # -- inference --------------------------------------------------------------------------------------
    def normalise(self, images: np.ndarray) -> np.ndarray:
        d = self.plan_.data
        return normalize(np.asarray(images, np.float32), d.normalization, d.mean, d.std)

    def fit_to_input(self, image: np.ndarray, source: str) -> np.ndarray:
        """One raw image ``(C, *S)`` checked against (and resized to) the model's input."""
        plan = self.plan_
        if image.ndim - 1 != plan.spatial_dims:
            raise InputError(source, f"is {image.ndim - 1}D; the model expects {plan.spatial_dims}D images")
        if image.shape[0] != plan.in_channels:
            raise InputError(source, f"has {image.shape[0]} channel(s); the model expects {plan.in_channels}")
        if list(image.shape[1:]) != list(plan.input_size):
            if plan.data.resize is None:
                raise InputError(source, f"has size {list(image.shape[1:])}; the model expects {plan.input_size}",
                                 "resize the image (the model was trained without --set data.resize)")
            image = resize_all(image[None], plan.input_size)[0]
        return image

    def _images(self, images: np.ndarray | Sequence[str | Path]) -> np.ndarray:
        if isinstance(images, (str, Path)) or (isinstance(images, Sequence) and images
                                               and isinstance(images[0], (str, Path))):
            paths = [images] if isinstance(images, (str, Path)) else list(images)
            return self.read_inputs(paths).images
        array = np.asarray(images, np.float32)
        if array.ndim == self.plan_.spatial_dims + 1:
            array = array[None]
        return np.stack([self.fit_to_input(im, f"images[{i}]") for i, im in enumerate(array)])

    def predict_proba(self, images: np.ndarray | Sequence[str | Path]) -> np.ndarray:
        """``(N, K)`` probabilities for raw images ``(N, C, X, Y[, Z])`` (module docstring: axis order) or paths."""
        x = self.normalise(self._images(images))
        return _predict_proba(self.net_, x, self.plan_.task, tta=self.plan_.flip_tta)

    def predict(self, images: np.ndarray | Sequence[str | Path]) -> np.ndarray:
        """Class names ``(N,)`` (multi-label: ``(N, K)`` 0/1 at threshold 0.5)."""
        proba = self.predict_proba(images)
        if self.plan_.task == "multilabel":
            return (proba > 0.5).astype(int)
        return np.asarray(self.classes_)[proba.argmax(1)]

    def embed(self, images: np.ndarray) -> np.ndarray:
        """``(N, F)`` embeddings (the head's input) of raw images."""
        return embed_images(self.net_, self.normalise(self._images(images)))

    def read_inputs(self, inputs: Sequence[str | Path], series: str | None = None, each_series: bool = False
                    ) -> ReadImages:
        """Raw images fitted to the model's input, their ids, geometry, patient ids and warnings (inputs
        unlike the training images)."""
        from medlearn.imaging.inputs import collect_images, read_input
        from medlearn.imaging.ood import distribution_warning

        items = collect_images(inputs, series=series, each_series=each_series)
        arrays, warnings, metas, originals = [], [], [], []
        for item in items:
            array, meta = read_input(item)
            originals.append(array)
            modality = meta.extra.get("modality") if meta is not None else None
            why = distribution_warning(array, self.extras_.get("intensity"), modality)
            if why:
                warnings.append(f"{item.name}: {why}; its prediction is unreliable")
            arrays.append(self.fit_to_input(array, item.name))
            metas.append(meta)
        patients = [item.patient_id for item in items]
        has_patients = any(p for p in patients)
        return ReadImages(np.stack(arrays).astype(np.float32), [item.name for item in items], metas,
                          np.asarray([p or "" for p in patients]) if has_patients else None, warnings, originals)

    def patient_probabilities(self, images: np.ndarray, proba: np.ndarray, patients: np.ndarray
                              ) -> tuple[list[str], np.ndarray]:
        """Patient ids and their ``(P, K)`` probabilities (the plan's aggregation)."""
        mode = self.plan_.patient.aggregation
        if self.aggregator_ is not None and mode in LEARNED:
            emb = embed_images(self.net_, self.normalise(images))
            pids, bags, lengths, _ = patient_bags(emb, np.zeros(len(images), np.int64), patients)
            return pids, predict_patients(self.aggregator_, bags, lengths, self.plan_.task)
        return pool_probabilities(proba, patients, "max" if mode == "max" else "mean")

    def predict_table(self, inputs: Sequence[str | Path], series: str | None = None, each_series: bool = False
                      ) -> tuple[pd.DataFrame, pd.DataFrame | None, list[str]]:
        """Per-image probability table, a per-patient one when inputs carry patient ids, and warnings."""
        from medlearn.tasks.classify.evaluate import predictions_table

        read = self.read_inputs(inputs, series, each_series)
        images, ids, patients, warnings = read.images, read.ids, read.patients, read.warnings
        proba = _predict_proba(self.net_, self.normalise(images), self.plan_.task, tta=self.plan_.flip_tta)
        table = predictions_table(ids, proba, self.plan_)
        if patients is None:
            return table, None, warnings
        table.insert(1, "patient_id", patients)
        pids, pproba = self.patient_probabilities(images, proba, patients)
        return table, predictions_table(pids, pproba, self.plan_).rename(columns={"id": "patient_id"}), warnings

    def predict_files(self, inputs: Sequence[str | Path], out: str | Path, series: str | None = None,
                      each_series: bool = False, echo: Any = print) -> list[Path]:
        """Write ``out`` (CSV of class probabilities) and ``<out>_patients.csv`` when inputs carry patient ids."""
        from medlearn.io import write_text

        out = Path(out)
        table, patient_table, warnings = self.predict_table(inputs, series, each_series)
        for line in warnings:
            echo(f"warning: {line}")
        written = [write_text(out, table.to_csv(index=False))]
        if patient_table is not None:
            written.append(write_text(out.with_name(out.stem + "_patients.csv"), patient_table.to_csv(index=False)))
        return written

    def export_onnx(self, path: Path) -> dict[str, Any]:
        """The whole pipeline (resize, normalisation, ensemble, flips, probabilities) as one ONNX graph."""
        from medlearn.tasks.classify.export import export_classifier

        return export_classifier(self.plan_, self.net_, path)

    def serve_predict(self, request: ServiceInput, workdir: Path) -> ServiceOutput:
        """Probabilities per uploaded image, its Grad-CAM map for the viewer (2D and 3D), and the CSV."""
        from medlearn.explain import grad_cam
        from medlearn.imaging.viewer import viewer_volume
        from medlearn.tasks.classify.evaluate import predictions_table

        read = self.read_inputs(request.files, series=request.options.get("series"))
        x = self.normalise(read.images)
        proba = _predict_proba(self.net_, x, self.plan_.task, tta=self.plan_.flip_tta)
        heat = grad_cam(self.net_, torch.from_numpy(x)) if self.plan_.network.name != "mlp" else None
        warnings = {w.split(":", 1)[0]: w.split(":", 1)[1].strip() for w in read.warnings}
        results, viewer = [], []
        for i, name in enumerate(read.ids):
            row: dict[str, Any] = {"name": Path(name).name,
                                   "probabilities": {c: float(p) for c, p in zip(self.classes_, proba[i], strict=True)},
                                   "predicted": self.classes_[int(proba[i].argmax())]}
            if name in warnings:
                row["warning"] = warnings[name]
            results.append(row)
            original = read.originals[i]
            shown = None if heat is None else _upsample(heat[i], original.shape[1:])  # the map on the image as read
            viewer.append(viewer_volume(row["name"], original, shown, "heatmap",
                                        spacing=read.metas[i].spacing if read.metas[i] is not None else None))
        table = workdir / "predictions.csv"
        predictions_table([Path(n).name for n in read.ids], proba, self.plan_).to_csv(table, index=False)
        return ServiceOutput(results, [table], viewer)

    def explain(self, inputs: Sequence[str | Path], out_dir: str | Path, method: str = "gradcam",
                limit: int = 64) -> list[Path]:
        """Per image: a PNG with the image and its explanation side by side (colour bar), of the predicted
        class; 3D: the slice where the map is largest, plus the whole map as NIfTI (``*_map.nii.gz``)."""
        from medlearn.explain import grad_cam, occlusion_sensitivity
        from medlearn.explain.figures import save_explanation_figure, save_explanation_volume

        if method not in ("gradcam", "occlusion"):
            raise InputError("--method", f"unknown method '{method}'", "use gradcam or occlusion")
        read = self.read_inputs(inputs)
        images, ids = read.images[:limit], read.ids[:limit]
        x = torch.from_numpy(self.normalise(images))
        proba = _predict_proba(self.net_, x.numpy(), self.plan_.task, tta=False)
        heat = grad_cam(self.net_, x) if method == "gradcam" else occlusion_sensitivity(self.net_, x)
        out, written = Path(out_dir), []
        for i, name in enumerate(ids):
            label = self.classes_[int(proba[i].argmax())]
            stem = f"{i:04d}_{Path(str(name)).stem.replace(':', '_')}_{method}_{label}"
            title = f"{Path(str(name)).name}: {label} ({proba[i].max():.2f})"
            written.append(save_explanation_figure(out / f"{stem}.png", images[i], heat[i], title, method))
            if self.plan_.spatial_dims == 3:
                written.append(save_explanation_volume(out / f"{stem}_map.nii.gz", heat[i], read.metas[i]))
        return written
