"""Segmentation, 2D and 3D, self-configuring (``medlearn segment``).

Modules: :mod:`.plan` (fingerprint -> plan rules), :mod:`.data` (dataset checks, case cache, patch
sampling), :mod:`.augment`, :mod:`.module` (LightningModule), :mod:`.model` (``Segmenter``, the API and
the model artefact), :mod:`.evaluate` (metrics per split with CIs), :mod:`.postprocess` (largest
component), :mod:`.report`, :mod:`.task` (the training hooks), :mod:`.synthetic` (tiny datasets).
Shared layers: preprocessing, prediction and DICOM-SEG in :mod:`medlearn.imaging`, metrics in
:mod:`medlearn.evaluation.segmentation`.
"""
