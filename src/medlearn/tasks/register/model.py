"""``Registrator``: the registration model and its Python API (scikit-learn style).

``Registrator(overrides={"train.max_minutes": 5}).fit("pairs.csv", "runs/reg")`` trains a run directory
(setting ``plan_``, ``net_``, ``metrics_``, ``run_dir_``); ``Registrator.load(run_dir)`` (or
``medlearn.load_run``) restores one::

    ddf = reg.predict(fixed, moving)              # (ndim, X, Y[, Z]) voxel displacement on the fixed grid
    warped = reg.transform(fixed, moving)         # (1, X, Y[, Z]) the moving image on the fixed grid
    result = reg.register("fixed.nii.gz", "moving.nii.gz", refine=50, method="network")

Axis convention, the same at every entry point: channel-first ``(C, X, Y[, Z])`` arrays in NIfTI voxel
order (X = image columns), as :func:`medlearn.data.images.read_image` returns, raw intensities (the model
normalises); ``(X, Y[, Z])`` works too. Arrays must share one grid; files are read and the moving image
resampled onto the fixed image's grid through both world affines when they differ.

**The displacement field** (``u``, :mod:`.transforms`): ``(ndim, *S)`` on the *fixed* grid, in voxels,
pulling: ``warped(x) = moving(x + u(x))``. Written as NIfTI by :func:`~.io.write_displacement_field` in
the ITK/ANTs convention: shape ``(X, Y, Z, 1, ndim)`` (2D: ``(X, Y, 1, 1, 2)``), intent 1007 (vector), the
fixed image's affine, vectors in millimetres in ITK's **LPS** frame, mapping a fixed point to its moving
point (``p_moving = p_fixed + d(p_fixed)``): ``antsApplyTransforms -t displacement.nii.gz`` and
``sitk.DisplacementFieldTransform`` apply it as it is (FSL / nibabel users flip the first two components).

``predict_files`` writes, per pair, ``warped<ext>`` (the moving image on the fixed grid, the fixed image's
format and geometry; 2D rasters as PNG), ``warped_label<ext>`` (nearest neighbour; lossless) when moving
labels are given, ``displacement.nii.gz`` and ``jacobian.nii.gz`` (``det(I + du/dx)``; <= 0 is folding).
The model artefact (``model.pt``) holds the plan (working grid, normalisation, losses) and the weights
(none for a ``network.name=classical`` run).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medlearn.errors import InputError
from medlearn.io.artifact import Artifact
from medlearn.tasks.base import ServiceInput, ServiceOutput, TaskModel, safe_name
from medlearn.tasks.register.data import PairSource, RegistrationPair, load_pair
from medlearn.tasks.register.inference import RegistrationResult, register_arrays, resolve_method
from medlearn.tasks.register.plan import RegistrationPlan

__all__ = ["Registrator", "build_net"]


def build_net(plan: RegistrationPlan, members: int = 1) -> torch.nn.Module | None:
    """The plan's network (the mean field of ``members`` copies for an ensemble); None for a classical run."""
    from medlearn.tasks.register.module import RegistrationSettings, build_network
    from medlearn.tasks.register.nets import MeanField

    if not plan.learned:
        return None
    settings = RegistrationSettings.from_plan(plan)
    if members > 1:
        return MeanField([build_network(settings) for _ in range(members)]).eval()
    return build_network(settings).eval()


class Registrator(TaskModel):
    """Learned pairwise registration (VoxelMorph family, Balakrishnan et al. 2019) with instance optimisation
    and SimpleITK references, planned from the data's fingerprint.

    Parameters: ``overrides`` (plan ``--set`` items or a dict of dotted keys), ``seed``, ``progress``,
    ``n_boot`` (bootstrap resamples of the CIs), and reading options (``atlas``, ``atlas_label``).
    """

    task_name = "register"
    input_kind = "image"

    # -- artefact ----------------------------------------------------------------------------------
    def to_artifact(self) -> Artifact:
        tensors = {"net": self.net_.state_dict()} if self.net_ is not None else {}
        return Artifact(self.task_name, self.plan_.to_dict(), tensors, dict(self.extras_))

    def restore(self, artifact: Artifact, run_dir: Path | None) -> None:
        self.plan_ = RegistrationPlan.from_dict(artifact.plan, "model.pt")
        self.extras_ = dict(artifact.extras)
        self.net_ = build_net(self.plan_, int(self.extras_.get("ensemble", 1)))
        if self.net_ is not None:
            self.net_.load_state_dict(artifact.tensors["net"])
            self.net_.eval()

    @classmethod
    def from_parts(cls, plan: RegistrationPlan, net: torch.nn.Module | None, extras: dict[str, Any] | None = None
                   ) -> Registrator:
        model = cls()
        model.plan_, model.net_ = plan, (net.eval() if net is not None else None)
        model.extras_ = dict(extras or {})
        return model

    # -- registration ------------------------------------------------------------------------------
    def register_pair(self, pair: RegistrationPair, method: str | None = None, refine: int | None = None
                      ) -> RegistrationResult:
        """Register a pair read by :func:`~.data.load_pair` (``method``: network, classical, bspline, affine,
        demons; None: ``inference.method``; ``refine``: instance-optimisation steps, None: the plan's)."""
        from medlearn.tasks.register.dataset import _summary, check_pair_fits

        if pair.ndim != self.plan_.ndim or (pair.fixed_modality and pair.moving_modality):
            check_pair_fits(_summary(pair), self.plan_, pair.name, method)
        multimodal = bool(pair.fixed_modality and pair.moving_modality and pair.fixed_modality != pair.moving_modality)
        return register_arrays(self.plan_, self.net_, pair.fixed, pair.moving, moving_label=pair.moving_label,
                               spacing=pair.spacing, method=method, refine_steps=refine, multimodal=multimodal)

    def register(self, fixed: np.ndarray | str | Path, moving: np.ndarray | str | Path, *,
                 moving_label: np.ndarray | str | Path | None = None, spacing: Sequence[float] | None = None,
                 method: str | None = None, refine: int | None = None) -> RegistrationResult:
        """Register ``moving`` onto ``fixed``: arrays ``(C, *S)`` / ``(*S)`` on one grid (``spacing`` in mm for
        SimpleITK) or image files (the moving one resampled onto the fixed grid when they differ)."""
        if isinstance(fixed, (str, Path)) or isinstance(moving, (str, Path)):
            if not (isinstance(fixed, (str, Path)) and isinstance(moving, (str, Path))):
                raise InputError("register", "give both images as files or both as arrays")
            label = Path(moving_label) if isinstance(moving_label, (str, Path)) else None
            source = PairSource("pair", Path(fixed), Path(moving), "register()", moving_label=label)
            return self.register_pair(load_pair(source, moving_label_alone=True), method, refine)
        return register_arrays(self.plan_, self.net_, np.asarray(fixed), np.asarray(moving),
                               moving_label=None if moving_label is None else np.asarray(moving_label),
                               spacing=tuple(spacing) if spacing else None, method=method, refine_steps=refine)

    def predict(self, fixed: np.ndarray | str | Path, moving: np.ndarray | str | Path, **options: Any) -> np.ndarray:
        """The voxel DDF ``(ndim, *S)`` on the fixed grid (see :meth:`register` for the inputs and options)."""
        return self.register(fixed, moving, **options).ddf

    def transform(self, fixed: np.ndarray | str | Path, moving: np.ndarray | str | Path, **options: Any) -> np.ndarray:
        """The moving image warped onto the fixed grid ``(C, *S)`` (its own intensities)."""
        return self.register(fixed, moving, **options).warped

    # -- files ---------------------------------------------------------------------------------------
    def _pairs(self, inputs: Sequence[str | Path], fixed_label: Path | None, moving_label: Path | None,
               split: str | None) -> list[PairSource]:
        from medlearn.data.images import is_image_path
        from medlearn.tasks.register.data import find_learn2reg_json, read_learn2reg, read_pairs_csv

        paths = [Path(p) for p in inputs]
        for p in paths:
            if not p.exists():
                raise InputError(p, "file not found", "give FIXED MOVING images, a CSV of pairs or a Learn2Reg dataset")
        if len(paths) == 2 and all(p.is_file() and is_image_path(p) for p in paths):
            name = f"{paths[0].name.split('.')[0]}<-{paths[1].name.split('.')[0]}"
            return [PairSource(name, paths[0], paths[1], "the command line", fixed_label=fixed_label,
                               moving_label=moving_label)]
        if fixed_label or moving_label:
            raise InputError("--moving-label", "labels on the command line go with one FIXED MOVING pair",
                             "give labels of several pairs in the CSV's fixed_label/moving_label columns")
        if len(paths) != 1:
            raise InputError(paths[0], f"{len(paths)} inputs", "give FIXED MOVING (two images), one CSV of pairs, "
                             "or one Learn2Reg dataset")
        if paths[0].suffix.lower() == ".csv":
            return read_pairs_csv(paths[0]).pairs
        json_path = find_learn2reg_json(paths[0])
        if split is None:
            import json

            data = json.loads(json_path.read_text())
            split = "test" if isinstance(data, dict) and data.get("registration_test") else "val"
        return read_learn2reg(json_path, split).pairs

    def predict_files(self, inputs: Sequence[str | Path] | str | Path, out: str | Path, method: str | None = None,
                      refine: int | None = None, fixed_label: str | Path | None = None,
                      moving_label: str | Path | None = None, split: str | None = None,
                      echo: Callable[[str], None] = print) -> list[Path]:
        """Register ``FIXED MOVING`` (two images), the rows of a CSV of pairs, or a Learn2Reg dataset's
        ``registration_test`` (else ``registration_val``) pairs; writes one pair into ``out/`` itself, several
        into ``out/<pair name>/`` (see the module docstring for the files)."""
        paths = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
        resolve_method(self.plan_, method)  # a bad --method stops before anything is read
        sources = self._pairs(paths, Path(fixed_label) if fixed_label else None,
                              Path(moving_label) if moving_label else None, split)
        pairs = [load_pair(s, moving_label_alone=True) for s in sources]  # all checked before any is written
        out = Path(out)
        if out.exists() and not out.is_dir():
            raise InputError(out, "is a file; predict writes a folder", "choose a folder with -o")
        written: list[Path] = []
        for pair in pairs:
            result = self.register_pair(pair, method, refine)
            folder = out if len(pairs) == 1 else out / safe_name(pair.name)
            written += write_result(folder, pair, result)
            for note in pair.notes:
                if "resampled" in note:
                    echo(f"note: {pair.name}: {note}")
        return written

    # -- service, export ----------------------------------------------------------------------------
    def serve_predict(self, request: ServiceInput, workdir: Path) -> ServiceOutput:
        """Two uploaded images, fixed first then moving: the warped image and the displacement field as
        files, the warped image with its Jacobian determinant as a heat map for the viewer (``det J / 2``
        clipped to [0, 1]: 0.5 where the field keeps volume, less where it contracts, more where it expands,
        0 where it folds), and the pair's folding %, NCC before/after and seconds. Options: ``method``,
        ``refine``."""
        from medlearn.evaluation.registration import folding_percent, global_ncc, jacobian_determinant
        from medlearn.imaging.viewer import viewer_volume

        if len(request.files) != 2:
            raise InputError("upload", f"{len(request.files)} file(s) uploaded; registration takes two",
                             "upload the fixed image first, then the moving image")
        options = request.options or {}
        refine = options.get("refine")
        try:
            refine = None if refine is None else int(refine)
        except (TypeError, ValueError):
            raise InputError("refine", f"'{refine}' is not a number of steps") from None
        source = PairSource("pair", Path(request.files[0]), Path(request.files[1]), "the upload")
        pair = load_pair(source)
        result = self.register_pair(pair, options.get("method"), refine)
        files = write_result(workdir, pair, result)
        det = jacobian_determinant(result.ddf)
        fixed, warped = pair.fixed.mean(0), result.warped.mean(0)
        summary = {"name": "pair", "shape": list(pair.spatial_shape), "method": result.method,
                   "refine_steps": result.refine_steps, "seconds": round(result.seconds, 3),
                   "folding_percent": folding_percent(det),
                   "ncc_before": global_ncc(pair.moving.mean(0), fixed), "ncc_after": global_ncc(warped, fixed),
                   "resampled": pair.resampled}
        viewer = [viewer_volume("warped", result.warped, np.clip(det / 2.0, 0, 1), "heatmap", spacing=pair.spacing)]
        return ServiceOutput([summary], files, viewer)

    def export_onnx(self, path: str | Path) -> dict[str, Any]:
        """The network on a preprocessed pair as one ONNX graph (see :mod:`.export`)."""
        from medlearn.tasks.register.export import export_registrator

        if self.net_ is None:
            raise InputError(self.task_name, "a classical run has no network to export",
                             "train a network (network.name=voxelmorph) to export one")
        return export_registrator(self.plan_, self.net_, path)

    def describe(self) -> dict[str, Any]:
        p = self.plan_
        return {"task": self.task_name, "inputs": "image", "files": "fixed, then moving", "spatial_dims": p.ndim,
                "network": p.network.name, "method": p.inference.method, "working_shape": p.data.working_shape,
                "similarity": p.loss.similarity, "multimodal": not p.data.same_modality,
                "refine_steps": p.inference.refine_steps, "ensemble": p.train.ensemble,
                "labels": self.label_names() or None}

    def label_names(self) -> list[str]:
        """Names of the structures the training labels held (``label <id>`` where the layout names none)."""
        names = self.extras_.get("label_names") or {}
        return [str(names.get(str(i), f"label {i}")) for i in self.plan_.data.label_ids]


def _suffix(meta: Any) -> str:
    """The warped image's format: the fixed image's own for volumes, PNG for 2D rasters, NIfTI otherwise."""
    from medlearn.data.images import ITK_SUFFIXES, NIFTI_SUFFIXES, RASTER_SUFFIXES, image_suffix

    suffix = image_suffix(meta.path) if meta is not None and meta.path else ""
    if suffix in RASTER_SUFFIXES:
        return ".png"
    if suffix in NIFTI_SUFFIXES or (suffix in ITK_SUFFIXES and suffix not in (".dcm", ".dicom")):
        return suffix
    return ".nii.gz"


def write_result(folder: Path, pair: RegistrationPair, result: RegistrationResult) -> list[Path]:
    """``warped``, ``warped_label`` (if any), ``displacement.nii.gz`` and ``jacobian.nii.gz`` with the fixed
    image's geometry into ``folder``."""
    from medlearn.data.images import ImageMeta, write_image
    from medlearn.evaluation.registration import jacobian_determinant
    from medlearn.tasks.register.io import write_displacement_field

    meta = pair.fixed_meta
    suffix = _suffix(meta)
    folder.mkdir(parents=True, exist_ok=True)
    warped = result.warped
    if suffix == ".png":
        warped = np.clip(np.round(warped), 0, 65535 if pair.moving.max() > 255 else 255)
        warped = warped.astype(np.uint16 if pair.moving.max() > 255 else np.uint8)
    written = [write_image(folder / f"warped{suffix}", warped, meta)]
    if result.warped_label is not None:
        label = result.warped_label
        if suffix == ".png":
            label = label.astype(np.uint8 if label.max() < 256 else np.uint16)
        written.append(write_image(folder / f"warped_label{suffix}", label, meta))
    written.append(write_displacement_field(folder / "displacement.nii.gz", result.ddf, meta))
    nifti_meta = ImageMeta(meta.path, "nifti", meta.spatial_shape, meta.spacing, meta.affine)
    det = jacobian_determinant(result.ddf).astype(np.float32)
    written.append(write_image(folder / "jacobian.nii.gz", det[None], nifti_meta))
    return written
