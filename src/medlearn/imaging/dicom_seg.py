"""DICOM-SEG output (highdicom; Herrmann et al., J. Digit. Imaging 2022) for masks predicted on DICOM input.

The mask is ``(X, Y)`` for one DICOM file or ``(X, Y, Z)`` for a series read by
:func:`medlearn.data.images.read_image` (slices in the reader's order, listed in
``meta.extra["files"]``); frame ``k`` of the SEG is ``mask[..., k].T`` (rows = Y, columns = X), so the
segmentation references each source slice exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medlearn.data.images import ImageMeta
from medlearn.io import atomic_path


def source_files(meta: ImageMeta) -> list[Path]:
    """The DICOM files behind an image: the series' sorted files, or the single file itself."""
    files = meta.extra.get("files")
    return [Path(f) for f in files] if files else [Path(meta.path)]


def write_dicom_seg(path: str | Path, labels: np.ndarray, meta: ImageMeta, label_names: list[str]) -> Path:
    """Write the label map ``labels`` (``(X, Y[, Z])``, values 0..K-1) as a DICOM-SEG referencing the source."""
    import highdicom as hd
    import pydicom
    from pydicom.sr.codedict import codes

    from medlearn import __version__

    sources = [pydicom.dcmread(str(f)) for f in source_files(meta)]
    frames = labels[..., None] if labels.ndim == 2 else labels
    pixel_array = np.ascontiguousarray(np.transpose(frames, (2, 1, 0))).astype(np.uint8)  # (frames, rows, cols)
    if len(sources) != pixel_array.shape[0]:
        raise ValueError(f"{len(sources)} source DICOM files but {pixel_array.shape[0]} mask frames")
    algorithm = hd.AlgorithmIdentificationSequence(name="medlearn segment", version=__version__,
                                                   family=codes.DCM.ArtificialIntelligence)
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=k, segment_label=label_names[k][:64], segmented_property_category=codes.SCT.Tissue,
            segmented_property_type=codes.SCT.Tissue, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm)
        for k in range(1, len(label_names))
    ]
    seg = hd.seg.Segmentation(
        source_images=sources, pixel_array=pixel_array,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY, segment_descriptions=descriptions,
        series_instance_uid=hd.UID(), series_number=900, sop_instance_uid=hd.UID(), instance_number=1,
        manufacturer="medlearn", manufacturer_model_name="medlearn segment", software_versions=__version__,
        device_serial_number="0", omit_empty_frames=False)
    with atomic_path(path) as tmp:
        seg.save_as(str(tmp))
    return Path(path)
