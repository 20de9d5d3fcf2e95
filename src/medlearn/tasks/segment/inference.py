"""A trained segmentation model: load/save, predict files in their own format, evaluate datasets.

``model.pt`` is a plain dict (``weights_only`` loadable): ``format``, ``plan`` (a dict),
``state_dict`` and ``postprocessing``. Prediction: read -> preprocess (plan) -> whole-image or
sliding-window probabilities (ONNX Runtime when ``model.onnx`` is next to ``model.pt``) -> resample
back to the input grid -> argmax -> optional largest-component filtering -> written with the input's
geometry (NIfTI keeps its affine; PNG stays PNG).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medlearn.data.images import IMAGE_SUFFIXES, ImageMeta, image_suffix, read_image, write_image
from medlearn.data.msd import ROI_TEST_DIR, ROI_TRAIN_DIR, MSDCase, is_msd_dataset, load_case_image, load_msd_dataset
from medlearn.errors import InputError
from medlearn.io import atomic_path
from medlearn.tasks.segment.evaluate import case_metrics, keep_largest_component, pooled_binary_metrics, summarise
from medlearn.tasks.segment.plan import SegmentationPlan
from medlearn.tasks.segment.predictor import SlidingWindowPredictor, export_onnx, onnx_session
from medlearn.tasks.segment.preprocess import preprocess_case, restore_probabilities

MODEL_FORMAT = "medlearn.segment/1"
_CHANNEL_RE = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")


class SegmentationModel:
    """Weights + plan + post-processing of a trained run."""

    def __init__(self, plan: SegmentationPlan, net: torch.nn.Module,
                 postprocessing: dict[str, Any] | None = None, session=None) -> None:
        self.plan = plan
        self.net = net.eval()
        self.postprocessing = postprocessing or {"largest_component": False}
        self.session = session

    # -- persistence ------------------------------------------------------------------------
    def save(self, path: Path) -> Path:
        with atomic_path(path) as tmp:
            torch.save({"format": MODEL_FORMAT, "plan": self.plan.to_dict(),
                        "state_dict": self.net.state_dict(), "postprocessing": self.postprocessing}, tmp)
        return path

    def export_onnx(self, path: Path) -> Path:
        return export_onnx(self.net, path, self.plan.in_channels, self.plan.ndim, self.plan.divisor)

    @classmethod
    def load(cls, run_or_file: str | Path, engine: str | None = None) -> SegmentationModel:
        """Load from a run directory (or a ``model.pt``); ``engine`` 'onnx'/'torch' overrides the plan's."""
        from medlearn.tasks.segment.module import build_segmentation_net

        path = Path(run_or_file)
        model_file = path / "model.pt" if path.is_dir() else path
        if not model_file.exists():
            raise InputError(path, "no model.pt here", "train first or point to a finished run directory")
        try:
            data = torch.load(model_file, map_location="cpu", weights_only=True)
        except Exception as exc:  # pickle/zip errors all mean the file is unusable
            raise InputError(model_file, f"cannot load model ({type(exc).__name__})", "retrain the run") from exc
        if not isinstance(data, dict) or data.get("format") != MODEL_FORMAT:
            raise InputError(model_file, "not a medlearn segmentation model", "use a run from `medlearn segment train`")
        plan = SegmentationPlan.from_dict(data["plan"], str(model_file))
        net = build_segmentation_net(plan)
        net.load_state_dict(data["state_dict"])
        session = None
        onnx_file = model_file.parent / "model.onnx"
        if (engine or plan.inference.engine) == "onnx" and onnx_file.exists():
            session = onnx_session(onnx_file)
        return cls(plan, net, data.get("postprocessing"), session)

    # -- prediction -------------------------------------------------------------------------
    def predictor(self, mirror: bool | None = None) -> SlidingWindowPredictor:
        inf = self.plan.inference
        return SlidingWindowPredictor(self.net, self.plan.train.patch_size, self.plan.divisor,
                                      inf.whole_image_max_voxels, inf.overlap, inf.sw_batch_size,
                                      inf.mirror_tta if mirror is None else mirror, self.session)

    def predict_proba(self, image: np.ndarray, spacing: tuple[float, ...] | None = None,
                      roi: np.ndarray | None = None) -> np.ndarray:
        """``(C, *S)`` raw image (+ ``(*S)`` ROI) -> ``(K, *S)`` probabilities on the input grid."""
        spacing = spacing or tuple(self.plan.preprocessing.target_spacing) or (1.0,) * (image.ndim - 1)
        if image.ndim != self.plan.ndim + 1:
            raise InputError("image", f"expected a {self.plan.ndim}D image with channels first, got shape "
                             f"{image.shape}")
        pre = preprocess_case("input", image, spacing, self.plan, roi=roi)
        probs = self.predictor()(pre.image)
        probs = restore_probabilities(probs, pre.original_shape)
        if roi is not None:
            outside = ~(roi > 0)
            probs[:, outside] = 0.0
            probs[0, outside] = 1.0
        return probs

    def labels_from_proba(self, probs: np.ndarray, largest_component: bool | None = None) -> np.ndarray:
        labels = probs.argmax(0).astype(np.uint8)
        lcc = self.postprocessing.get("largest_component", False) if largest_component is None else largest_component
        return keep_largest_component(labels, self.plan.num_classes) if lcc else labels

    def predict_case(self, case: MSDCase) -> tuple[np.ndarray, np.ndarray, ImageMeta]:
        """Labels ``(*S)``, probabilities ``(K, *S)`` and image metadata for an MSD case."""
        image, meta = load_case_image(case)
        if image.shape[0] != len(self.plan.channel_names):
            raise InputError(case.images[0], f"has {image.shape[0]} channels, the model expects "
                             f"{len(self.plan.channel_names)}", "give the same channels as in training")
        roi = read_image(case.roi, dtype=None)[0][0] if case.roi is not None else None
        probs = self.predict_proba(image, meta.spacing, roi)
        return self.labels_from_proba(probs), probs, meta

    # -- evaluation -------------------------------------------------------------------------
    def evaluate_cases(self, cases: list[MSDCase], choose_postprocessing: bool = False, n_overlays: int = 4,
                       surface: bool = True) -> dict[str, Any]:
        """Metrics per case and mean (and pooled binary metrics); optionally choose LCC filtering.

        With ``choose_postprocessing`` the largest-connected-component filter is kept only if it
        raises the mean foreground Dice over these cases (call it on validation cases only).
        """
        per_case: dict[str, Any] = {}
        per_case_lcc: dict[str, Any] = {}
        probs_fg, truths, rois, overlays = [], [], [], []
        for i, case in enumerate(cases):
            image, meta = load_case_image(case)
            roi = read_image(case.roi, dtype=None)[0][0] > 0 if case.roi is not None else None
            probs = self.predict_proba(image, meta.spacing, roi)
            gt = read_image(case.label, dtype=None)[0][0].astype(np.int64)
            raw = self.labels_from_proba(probs, largest_component=False)
            names = self.plan.label_names
            per_case[case.name] = case_metrics(raw, gt, self.plan.num_classes, roi, meta.spacing, names, surface)
            if choose_postprocessing:
                lcc = keep_largest_component(raw, self.plan.num_classes)
                per_case_lcc[case.name] = case_metrics(lcc, gt, self.plan.num_classes, roi, meta.spacing, names,
                                                       surface=False)
            if self.plan.num_classes == 2:
                probs_fg.append(probs[1])
                truths.append(gt)
                rois.append(roi)
            if i < n_overlays:
                overlays.append((case.name, overlay(image, gt, self.labels_from_proba(probs))))
        result: dict[str, Any] = {"num_cases": len(cases)}
        post = dict(self.postprocessing)
        if choose_postprocessing:
            def mean_dice(m: dict[str, Any]) -> float:
                return float(np.mean([v["dice"] for case in m.values() for v in case.values()]))

            raw_d, lcc_d = mean_dice(per_case), mean_dice(per_case_lcc)
            post = {"largest_component": bool(lcc_d > raw_d), "val_dice_raw": raw_d, "val_dice_lcc": lcc_d}
            if self.plan.inference.largest_component != "auto":
                post["largest_component"] = self.plan.inference.largest_component == "on"
            if post["largest_component"]:
                for name in per_case:
                    for cls, vals in per_case_lcc[name].items():
                        per_case[name][cls].update({k: vals[k] for k in ("dice", "iou")})
        result["postprocessing"] = post
        result["per_case"] = per_case
        result["mean"] = summarise(per_case)
        if probs_fg:
            result["pooled"] = pooled_binary_metrics(probs_fg, truths, rois)
        result["overlays"] = overlays
        return result

    def evaluate_dataset(self, dataset: str | Path) -> dict[str, Any]:
        """Evaluate on every labelled case of an MSD dataset (use a held-out dataset)."""
        ds = load_msd_dataset(dataset, read_check=True)
        self._check_compatible(ds.channel_names, ds.labels, Path(dataset))
        return self.evaluate_cases(ds.training)

    def _check_compatible(self, channel_names: dict[str, str], labels: dict[str, int], source: Path) -> None:
        if len(channel_names) != len(self.plan.channel_names):
            raise InputError(source / "dataset.json", f"has {len(channel_names)} channels, the model was trained "
                             f"on {len(self.plan.channel_names)}", "evaluate on a dataset with the same channels")
        if max(labels.values()) + 1 != self.plan.num_classes:
            raise InputError(source / "dataset.json", f"has {max(labels.values()) + 1} classes, the model "
                             f"predicts {self.plan.num_classes}", "evaluate on a dataset with the same labels")

    def predict_files(self, inputs: str | Path, out: str | Path, probabilities: bool = False,
                      roi: str | Path | None = None, dicom_output: str = "seg") -> list[Path]:
        """Predict a file, a folder of files, a DICOM series folder, or an MSD dataset (``imagesTs/``,
        else ``imagesTr/``).

        Masks are written as ``OUT/CASE<ext>`` in the input's format and geometry (DICOM input:
        ``CASE.seg.dcm`` DICOM-SEG, or ``CASE.nii.gz`` with ``dicom_output="nifti"``); with
        ``probabilities`` also ``OUT/CASE_probabilities<ext>`` (3D formats, float32) or ``.npy``.
        """
        out = Path(out)
        written = []
        for case in collect_inputs(Path(inputs), len(self.plan.channel_names), roi):
            labels, probs, meta = self.predict_case(case)
            ext = image_suffix(case.images[0])
            if ext in ("", ".dcm", ".dicom"):
                ext = ".nii.gz"
                if dicom_output == "seg":
                    from medlearn.tasks.segment.dicom import write_dicom_seg

                    written.append(write_dicom_seg(out / f"{case.name}.seg.dcm", labels, meta,
                                                   self.plan.label_names))
                else:
                    written.append(write_image(out / f"{case.name}{ext}", labels[None], meta))
            else:
                written.append(write_image(out / f"{case.name}{ext}", labels[None], meta))
            if probabilities:
                if ext in (".nii", ".nii.gz", ".nrrd", ".mha", ".mhd"):
                    target = out / f"{case.name}_probabilities{ext}"
                    write_image(target, probs.astype(np.float32), meta)
                else:
                    target = out / f"{case.name}_probabilities.npy"
                    write_image(target, probs.astype(np.float32))
                written.append(target)
        return written


def overlay(image: np.ndarray, truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """RGB uint8 ``(H, W, 3)``: image (middle slice for 3D) with truth in green, prediction in magenta.

    Correct foreground shows white-ish (both), misses green, false positives magenta.
    """
    if truth.ndim == 3:
        z = int(np.argmax((truth > 0).sum((0, 1)))) if truth.any() else truth.shape[2] // 2
        image, truth, pred = image[..., z], truth[..., z], pred[..., z]
    grey = image[1] if image.shape[0] == 3 else image[0]
    lo, hi = np.percentile(grey, (1, 99))
    grey = np.clip((grey - lo) / max(hi - lo, 1e-6), 0, 1)
    rgb = np.stack([grey] * 3, -1) * 0.6
    t, p = truth > 0, pred > 0
    rgb[..., 1] += 0.4 * t
    rgb[..., 0] += 0.4 * p
    rgb[..., 2] += 0.4 * p
    return (np.clip(rgb, 0, 1) * 255).astype(np.uint8).transpose(1, 0, 2)  # (X, Y) -> (H=Y, W=X)


def collect_inputs(path: Path, n_channels: int, roi: str | Path | None = None) -> list[MSDCase]:
    """Cases to predict from a file, a folder (``CASE_0000`` channel files or plain images) or an MSD dataset."""
    if not path.exists():
        raise InputError(path, "input not found", "give an image file, a folder of images or an MSD dataset")
    roi_dir = Path(roi) if roi is not None else None
    if path.is_dir() and is_msd_dataset(path):
        ds = load_msd_dataset(path)
        if ds.test:
            return ds.test
        return ds.training
    if path.is_dir() and _is_dicom_folder(path):
        return [MSDCase(path.name, [path], None, Path(roi) if roi is not None and Path(roi).is_file() else None)]
    if path.is_file():
        files = [path]
    else:
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")
                       and image_suffix(p) in IMAGE_SUFFIXES)
        if not files:
            raise InputError(path, "no image files in this folder", f"supported: {', '.join(IMAGE_SUFFIXES)}")
    groups: dict[str, dict[int, Path]] = {}
    for f in files:
        stem = f.name[: -len(image_suffix(f))]
        match = _CHANNEL_RE.match(stem)
        name, channel = (match["case"], int(match["channel"])) if match else (stem, 0)
        if path.is_file() and match and n_channels > 1:  # pick up the sibling channel files
            for c in range(n_channels):
                sibling = f.with_name(f"{name}_{c:04d}{image_suffix(f)}")
                if sibling.exists():
                    groups.setdefault(name, {})[c] = sibling
            continue
        groups.setdefault(name, {})[channel] = f
    cases = []
    for name, channels in sorted(groups.items()):
        ordered = [channels[c] for c in sorted(channels)]
        ext = image_suffix(ordered[0])
        roi_file = None
        if roi_dir is not None:
            candidates = [roi_dir / f"{name}{ext}", *sorted(roi_dir.glob(f"{name}.*"))]
            roi_file = next((c for c in candidates if c.exists()), None)
            if roi_file is None:
                raise InputError(roi_dir, f"no ROI mask for case '{name}'", f"add {name}{ext} to the ROI folder")
        else:
            for folder in (ROI_TEST_DIR, ROI_TRAIN_DIR):
                candidate = ordered[0].parent.parent / folder / f"{name}{ext}"
                if candidate.exists():
                    roi_file = candidate
                    break
        cases.append(MSDCase(name, ordered, None, roi_file))
    return cases


def _is_dicom_folder(path: Path) -> bool:
    """A folder holding DICOM files (``.dcm`` or no suffix) and no other images: one series."""
    files = [p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")]
    if not files:
        return False
    return all(image_suffix(p) in (".dcm", ".dicom", "") for p in files)
