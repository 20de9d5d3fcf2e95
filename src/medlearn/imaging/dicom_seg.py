"""DICOM-SEG output (highdicom; Herrmann et al., J. Digit. Imaging 2022) for masks predicted on DICOM input.

The mask is ``(X, Y)`` for one DICOM file or ``(X, Y, Z)`` for a series read by
:func:`medlearn.data.dicom.read_dicom` (slices in the reader's order, listed in ``meta.extra["files"]``);
frame ``k`` of the SEG is ``mask[..., k].T`` (rows = Y, columns = X), so the segmentation references
each source slice exactly. One segment per foreground label, named as in the dataset. A source
highdicom cannot build a SEG from (missing attributes, an unsupported SOP class ...) stops with one
:class:`~medlearn.errors.InputError` line naming it; nothing is written.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medlearn.data.images import ImageMeta
from medlearn.errors import InputError
from medlearn.io import atomic_path


def source_files(meta: ImageMeta) -> list[Path]:
    """The DICOM files behind an image: the series' sorted files, or the single file itself."""
    files = meta.extra.get("files")
    return [Path(f) for f in files] if files else [Path(meta.path)]


def _read_sources(files: list[Path], archive: str | None) -> list:
    """The source datasets (pixels included, as highdicom needs them); members of a ``.zip`` input are read
    from the archive, whose unpacked copy is gone (``files`` then name them ``<archive>/<member>``)."""
    import pydicom

    if not archive:
        return [pydicom.dcmread(str(f)) for f in files]
    import io
    import zipfile

    with zipfile.ZipFile(archive) as zf:
        return [pydicom.dcmread(io.BytesIO(zf.read(Path(f).relative_to(archive).as_posix()))) for f in files]


def write_dicom_seg(path: str | Path, labels: np.ndarray, meta: ImageMeta, label_names: list[str]) -> Path:
    """Write the label map ``labels`` (``(X, Y[, Z])``, values 0..K-1) as a DICOM-SEG referencing the source."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    from medlearn import __version__

    files = source_files(meta)
    source = Path(meta.extra.get("archive") or (files[0].parent if len(files) > 1 else files[0]))
    try:
        sources = _read_sources(files, meta.extra.get("archive"))
    except Exception as exc:  # noqa: BLE001 -- pydicom's errors differ per defect; all mean "unreadable"
        raise InputError(source, f"cannot re-read the DICOM source for the SEG ({type(exc).__name__}: "
                         f"{_first_line(exc)})", "write NIfTI instead with --dicom-output nifti") from exc
    frames = labels[..., None] if labels.ndim == 2 else labels
    pixel_array = np.ascontiguousarray(np.transpose(frames, (2, 1, 0))).astype(np.uint8)  # (frames, rows, cols)
    if len(sources) != pixel_array.shape[0]:
        raise InputError(source, f"{len(sources)} source DICOM files but {pixel_array.shape[0]} mask frames",
                         "write NIfTI instead with --dicom-output nifti")
    algorithm = hd.AlgorithmIdentificationSequence(name="medlearn segment", version=__version__,
                                                   family=codes.DCM.ArtificialIntelligence)
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=k, segment_label=label_names[k][:64], segmented_property_category=codes.SCT.Tissue,
            segmented_property_type=codes.SCT.Tissue, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm)
        for k in range(1, len(label_names))
    ]
    try:
        seg = hd.seg.Segmentation(
            source_images=sources, pixel_array=pixel_array,
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY, segment_descriptions=descriptions,
            series_instance_uid=hd.UID(), series_number=900, sop_instance_uid=hd.UID(), instance_number=1,
            manufacturer="medlearn", manufacturer_model_name="medlearn segment", software_versions=__version__,
            device_serial_number="0", omit_empty_frames=False)
        with atomic_path(path) as tmp:
            seg.save_as(str(tmp))
    except OSError:  # a failed write (disk full, read-only): the CLI names the path
        raise
    except Exception as exc:  # noqa: BLE001 -- highdicom validates the source in many ways; each is one line
        raise InputError(source, f"highdicom cannot build a DICOM-SEG for {Path(path).name} from this DICOM "
                         f"({type(exc).__name__}: {_first_line(exc)})",
                         "write NIfTI instead with --dicom-output nifti") from exc
    return Path(path)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:160] if text else "no detail"
