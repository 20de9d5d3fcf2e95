"""``Segmenter``: the segmentation model and its Python API (scikit-learn style).

``Segmenter(overrides={"train.max_minutes": 5}).fit("data/Dataset001_Drive", "runs/drive")`` trains a run
directory (setting ``plan_``, ``net_``, ``postprocessing_``, ``metrics_``, ``run_dir_``);
``Segmenter.load(run_dir)`` (or ``medlearn.load_run``) restores one::

    labels = seg.predict(image)          # (C, X, Y[, Z]) raw image or a file -> (X, Y[, Z]) uint8 labels
    probs = seg.predict_proba(image)     # (K, X, Y[, Z])

Axis convention, the same at every entry point: channel-first ``(C, X, Y[, Z])`` in NIfTI voxel order
(X = image columns), as :func:`medlearn.data.images.read_image` returns; raw intensities (the model
applies its own preprocessing). The model artefact (``model.pt``) holds the weights, the plan
(preprocessing, label and channel names) and the post-processing chosen on the validation cases;
``model.onnx``, a companion written by :meth:`Segmenter.save_run`, is the same network for ONNX Runtime,
used when ``inference.engine`` is ``onnx`` (a file ONNX Runtime cannot read is named in one warning and
PyTorch predicts instead).

Prediction: read -> preprocess (plan) -> whole-image or sliding-window probabilities -> resampled back
to the input grid -> argmax -> optional largest-component filtering -> written with the input's geometry
(NIfTI keeps its affine; DICOM gives DICOM-SEG referencing the source series; 2D raster images give a
PNG whatever their own format: a mask is never written with lossy compression).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from medlearn.data.images import NIFTI_SUFFIXES, RASTER_SUFFIXES, ImageMeta, image_suffix, read_image, sniff_suffix
from medlearn.engine.rundir import RunDirectory
from medlearn.errors import InputError
from medlearn.imaging.predictor import SlidingWindowPredictor, export_onnx, onnx_session
from medlearn.imaging.preprocess import preprocess_case, restore_probabilities
from medlearn.io.artifact import Artifact
from medlearn.tasks.base import ServiceInput, ServiceOutput, TaskModel, safe_name
from medlearn.tasks.segment.module import build_segmentation_net
from medlearn.tasks.segment.plan import SegmentationPlan
from medlearn.tasks.segment.postprocess import keep_largest_component

if TYPE_CHECKING:
    from medlearn.imaging.inputs import ImageInput

#: formats whose geometry a probability map can be written with (others: ``.npy``)
VOLUME_SUFFIXES = (*NIFTI_SUFFIXES, ".nrrd", ".mha", ".mhd")
ENGINES = ("onnx", "torch")
_CHANNEL_FILE = re.compile(r"^(?P<case>.+)_0000$")


class Segmenter(TaskModel):
    """Self-configuring 2D/3D segmentation (nnU-Net-style planning, Isensee et al. 2021).

    Parameters: ``overrides`` (plan ``--set`` items or a dict of dotted keys), ``seed``, ``progress``,
    ``n_boot`` (bootstrap resamples of the CIs).
    """

    task_name = "segment"
    input_kind = "image"

    # -- artefact ----------------------------------------------------------------------------------
    def to_artifact(self) -> Artifact:
        return Artifact(self.task_name, self.plan_.to_dict(), {"net": self.net_.state_dict()},
                        {**self.extras_, "postprocessing": dict(self.postprocessing_)})

    def restore(self, artifact: Artifact, run_dir: Path | None) -> None:
        self.plan_ = SegmentationPlan.from_dict(artifact.plan, "model.pt")
        self.net_ = build_segmentation_net(self.plan_)
        self.net_.load_state_dict(artifact.tensors["net"])
        self.net_.eval()
        self.extras_ = {k: v for k, v in artifact.extras.items() if k != "postprocessing"}
        self.postprocessing_ = dict(artifact.extras.get("postprocessing") or {"largest_component": False})
        self.onnx_file_ = RunDirectory(Path(run_dir)).onnx_file if run_dir is not None else None
        self.engine_ = self.plan_.inference.engine

    @classmethod
    def from_parts(cls, plan: SegmentationPlan, net: torch.nn.Module, postprocessing: dict[str, Any] | None = None,
                   extras: dict[str, Any] | None = None) -> Segmenter:
        model = cls()
        model.plan_, model.net_ = plan, net.eval()
        model.postprocessing_ = dict(postprocessing or {"largest_component": False})
        model.extras_ = dict(extras or {})
        model.onnx_file_, model.engine_ = None, "torch"  # not exported yet
        return model

    @classmethod
    def load(cls, run_dir: str | Path, artifact: Artifact | None = None, engine: str | None = None) -> Segmenter:
        """The fitted model of a finished run; ``engine`` (``onnx``/``torch``) overrides the plan's."""
        model = super().load(run_dir, artifact)
        assert isinstance(model, Segmenter)
        return model.use_engine(engine) if engine else model

    def use_engine(self, engine: str) -> Segmenter:
        """Predict with ONNX Runtime (``onnx``, when the run has ``model.onnx``) or PyTorch (``torch``)."""
        if engine not in ENGINES:
            raise InputError("--engine", f"unknown engine '{engine}'", "use onnx or torch")
        self.engine_ = engine
        self.__dict__.pop("_session", None)
        return self

    @property
    def session_(self) -> Any:
        """The ONNX Runtime session (opened on first use), or None when PyTorch predicts."""
        if "_session" not in self.__dict__:
            self._session = self._open_session()
        return self._session

    def _open_session(self) -> Any:
        path = getattr(self, "onnx_file_", None)
        if getattr(self, "engine_", "torch") != "onnx" or path is None or not Path(path).exists():
            return None
        try:
            return onnx_session(Path(path))
        except Exception as exc:  # noqa: BLE001 -- truncated / corrupt graph, or no onnxruntime: use torch
            reason = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else "no detail"
            print(f"warning: {path}: ONNX Runtime cannot read it ({type(exc).__name__}: {reason}); predicting with "
                  "PyTorch from model.pt instead (delete the file, or train again to rewrite it)",
                  file=sys.stderr, flush=True)
            self.engine_ = "torch"
            return None

    def save_run(self, run: RunDirectory) -> None:
        """``model.pt``, and ``model.onnx`` when the plan predicts with ONNX Runtime."""
        self.save(run.model_file)
        self.onnx_file_ = run.onnx_file
        if self.plan_.inference.engine == "onnx":
            self.export_network_onnx(self.onnx_file_)
        self.use_engine("torch")  # the training process scores with the network it holds

    def export_network_onnx(self, path: str | Path) -> Path:
        """The network alone (the whole ensemble as one graph; preprocessed input) as ONNX with dynamic batch
        and spatial axes: ``model.onnx``, what the sliding-window predictor runs."""
        p = self.plan_
        return export_onnx(self.net_, Path(path), p.in_channels, p.ndim, p.divisor)

    def export_onnx(self, path: str | Path) -> dict[str, Any]:
        """The pipeline ONNX can express (normalisation, padding, ensemble, softmax, argmax) as one graph
        (``medlearn export``); see :mod:`medlearn.tasks.segment.export`."""
        from medlearn.tasks.segment.export import export_segmenter

        return export_segmenter(self.plan_, self.net_, path, self.postprocessing_)

    def serve_predict(self, request: ServiceInput, workdir: Path) -> ServiceOutput:
        """A mask per uploaded image (NIfTI with its affine, DICOM-SEG for DICOM, PNG for 2D rasters), the
        voxel count and volume of each structure, and the image with its mask for the viewer."""
        from medlearn.imaging.inputs import collect_images, read_input
        from medlearn.imaging.viewer import viewer_volume

        items = collect_images(request.files, n_channels=len(self.plan_.channel_names),
                               series=request.options.get("series"))
        results, files, viewer = [], [], []
        for item in items:
            image, meta = read_input(item)
            probs = self.probabilities(image, meta.spacing if meta is not None else None, None, item.name)
            labels = self.labels_from_proba(probs)
            name = safe_name(case_name(item))
            files += self._write(item, name, labels, None, meta, workdir, "seg")
            voxel_ml = float(np.prod(meta.spacing)) / 1000.0 if meta is not None and labels.ndim == 3 else None
            structures = {}
            for k, label in enumerate(self.plan_.label_names[1:], start=1):
                count = int((labels == k).sum())
                structures[label] = {"voxels": count, **({"volume_ml": count * voxel_ml} if voxel_ml else {})}
            results.append({"name": name, "shape": list(labels.shape), "structures": structures})
            viewer.append(viewer_volume(name, image, labels, "mask", self.plan_.label_names,
                                        spacing=meta.spacing if meta is not None else None))
        return ServiceOutput(results, files, viewer)

    def describe(self) -> dict[str, Any]:
        p = self.plan_
        return {"task": self.task_name, "inputs": "image", "spatial_dims": p.ndim, "channels": p.channel_names,
                "labels": p.label_names, "network": p.network.name, "ensemble": p.train.ensemble,
                "patch_size": p.train.patch_size, "target_spacing": p.preprocessing.target_spacing,
                "postprocessing": self.postprocessing_, "engine": self.engine_}

    # -- prediction ---------------------------------------------------------------------------------
    def predictor(self, mirror: bool | None = None) -> SlidingWindowPredictor:
        inf = self.plan_.inference
        return SlidingWindowPredictor(self.net_, self.plan_.train.patch_size, self.plan_.divisor,
                                      inf.whole_image_max_voxels, inf.overlap, inf.sw_batch_size,
                                      inf.mirror_tta if mirror is None else mirror, self.session_)

    def _image(self, x: np.ndarray | str | Path) -> tuple[np.ndarray, tuple[float, ...] | None]:
        if isinstance(x, (str, Path)):
            from medlearn.imaging.inputs import collect_images, read_input

            items = collect_images([x], n_channels=len(self.plan_.channel_names))
            if len(items) != 1:
                raise InputError(x, f"holds {len(items)} images", "use predict_files for several")
            array, meta = read_input(items[0])
            return array, meta.spacing if meta is not None else None
        return np.asarray(x, np.float32), None

    def predict_proba(self, x: np.ndarray | str | Path, roi: np.ndarray | None = None,
                      spacing: Sequence[float] | None = None) -> np.ndarray:
        """``(C, X, Y[, Z])`` raw image (or a file) (+ ``(X, Y[, Z])`` ROI) -> ``(K, X, Y[, Z])`` probabilities
        on the input grid. ``spacing`` (mm per axis; a file's own by default) decides the resampling."""
        image, file_spacing = self._image(x)
        return self.probabilities(image, spacing or file_spacing, roi, "image" if not isinstance(x, (str, Path))
                                   else str(x))

    def predict(self, x: np.ndarray | str | Path, roi: np.ndarray | None = None,
                spacing: Sequence[float] | None = None) -> np.ndarray:
        """``(C, X, Y[, Z])`` raw image (or a file) -> ``(X, Y[, Z])`` uint8 labels (with the chosen
        post-processing)."""
        return self.labels_from_proba(self.predict_proba(x, roi, spacing))

    def probabilities(self, image: np.ndarray, spacing: Sequence[float] | None, roi: np.ndarray | None,
                      source: str) -> np.ndarray:
        """``(C, *S)`` raw image with its spacing (None: the plan's) and ROI -> ``(K, *S)`` probabilities on its
        grid; ``source`` names the image in errors."""
        plan = self.plan_
        if image.ndim != plan.ndim + 1:
            raise InputError(source, f"is a {image.ndim - 1}D image (shape {tuple(image.shape)}); the model "
                             f"segments {plan.ndim}D images with channels first", "give an image like the training "
                             "cases")
        if image.shape[0] != len(plan.channel_names):
            raise InputError(source, f"has {image.shape[0]} channel(s), the model expects {len(plan.channel_names)} "
                             f"({', '.join(plan.channel_names)})", "give the same channels as in training")
        if roi is not None and tuple(roi.shape) != tuple(image.shape[1:]):
            raise InputError(source, f"ROI mask shape {tuple(roi.shape)} differs from the image's "
                             f"{tuple(image.shape[1:])}", "give a ROI mask on the image's grid")
        spacing = tuple(spacing) if spacing else (tuple(plan.preprocessing.target_spacing) or (1.0,) * plan.ndim)
        pre = preprocess_case("input", image, spacing, plan.preprocessing, roi=roi)
        probs = restore_probabilities(self.predictor()(pre.image), pre.original_shape)
        if roi is not None:
            outside = ~(roi > 0)
            probs[:, outside] = 0.0
            probs[0, outside] = 1.0
        return probs

    def labels_from_proba(self, probs: np.ndarray, largest_component: bool | None = None) -> np.ndarray:
        """``(K, *S)`` probabilities -> ``(*S)`` uint8 labels (argmax, then the chosen post-processing)."""
        labels = probs.argmax(0).astype(np.uint8)
        lcc = self.postprocessing_.get("largest_component", False) if largest_component is None else largest_component
        return keep_largest_component(labels, self.plan_.num_classes) if lcc else labels

    def predict_files(self, inputs: Sequence[str | Path] | str | Path, out: str | Path, probabilities: bool = False,
                      roi: str | Path | None = None, dicom_output: str = "seg", series: str | None = None,
                      each_series: bool = False, echo: Callable[[str], None] = print) -> list[Path]:
        """Predict files, folders, DICOM series (folder or zip) or an MSD dataset (``imagesTs/``, else
        ``imagesTr/``); see :mod:`medlearn.imaging.inputs`.

        Writes ``OUT/CASE<ext>`` in the input's format and geometry: NIfTI/NRRD/MHA keep theirs, a 2D
        raster image (PNG, JPEG, TIFF, ...) gives a lossless PNG, DICOM gives ``CASE.seg.dcm`` (DICOM-SEG)
        or ``CASE.nii.gz`` with ``dicom_output="nifti"``, an array input (``.npz``) ``CASE.npy``. With
        ``probabilities`` also ``OUT/CASE_probabilities<ext>`` (volume formats, float32) or ``.npy``.
        """
        from medlearn.imaging.inputs import collect_images, default_roi, read_input

        if dicom_output not in ("seg", "nifti"):
            raise InputError("--dicom-output", f"unknown value '{dicom_output}'", "use seg or nifti")
        paths = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
        items = collect_images(paths, n_channels=len(self.plan_.channel_names), roi=roi, series=series,
                               each_series=each_series)
        out = Path(out)
        if out.exists() and not out.is_dir():
            raise InputError(out, "is a file; predict writes a folder of masks", "choose a folder with -o")
        from medlearn.imaging.ood import distribution_warning

        written: list[Path] = []
        for item in items:
            image, meta = read_input(item)
            why = distribution_warning(image[:1], self.extras_.get("intensity"),
                                       meta.extra.get("modality") if meta is not None else None)
            if why:
                echo(f"warning: {item.name}: {why}; its mask is unreliable")
            roi_file = default_roi(item)
            roi_mask = read_image(roi_file, dtype=None)[0][0] if roi_file is not None else None
            probs = self.probabilities(image, meta.spacing if meta is not None else None, roi_mask,
                                        str(item.files[0]) if item.files else item.name)
            labels = self.labels_from_proba(probs)
            name = safe_name(case_name(item))
            written += self._write(item, name, labels, probs if probabilities else None, meta, out, dicom_output)
        return written

    def _write(self, item: ImageInput, name: str, labels: np.ndarray, probs: np.ndarray | None, meta: ImageMeta | None,
               out: Path, dicom_output: str) -> list[Path]:
        from medlearn.data.images import write_image

        ext = output_suffix(item, meta)
        written = []
        if item.is_dicom and dicom_output == "seg":
            from medlearn.imaging.dicom_seg import write_dicom_seg

            assert meta is not None
            written.append(write_dicom_seg(out / f"{name}.seg.dcm", labels, meta, self.plan_.label_names))
        else:
            written.append(write_image(out / f"{name}{ext}", labels[None], meta))
        if probs is not None:
            target = out / f"{name}_probabilities{ext if ext in VOLUME_SUFFIXES else '.npy'}"
            written.append(write_image(target, probs.astype(np.float32), meta if ext in VOLUME_SUFFIXES else None))
        return written


def case_name(item: ImageInput) -> str:
    """The output name of an input: an nnU-Net channel file ``CASE_0000.ext`` is case ``CASE`` (the collector
    strips the suffix only for models of several channels)."""
    match = _CHANNEL_FILE.match(item.name)
    return match["case"] if match and len(item.files) == 1 and not item.is_dicom else item.name


def output_suffix(item: ImageInput, meta: ImageMeta | None) -> str:
    """The mask's format for an input: its own for volumes, lossless PNG for every 2D raster (a JPEG
    mask would ring: values 0/1/2 at every edge), NIfTI for DICOM, ``.npy`` for arrays."""
    if meta is None or not item.files:
        return ".npy"
    if item.is_dicom:
        return ".nii.gz"
    first = item.files[0]
    suffix = image_suffix(first)
    if suffix not in (*VOLUME_SUFFIXES, *RASTER_SUFFIXES, ".npy"):
        suffix = sniff_suffix(first) or suffix  # a file without its extension: what it holds
    if suffix in RASTER_SUFFIXES:
        return ".png"
    return suffix if suffix in (*VOLUME_SUFFIXES, ".npy") else ".nii.gz"
