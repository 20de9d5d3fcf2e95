"""Segmentation, 2D and 3D, self-configuring (``medlearn segment``).

Modules: :mod:`.plan` (fingerprint -> plan rules), :mod:`.preprocess`, :mod:`.data` (cache +
patch sampling), :mod:`.augment`, :mod:`.module` (LightningModule), :mod:`.predictor` (whole image /
sliding window / ONNX Runtime), :mod:`.evaluate` (metrics, LCC), :mod:`.inference` (a trained model),
:mod:`.train`, :mod:`.report`, :mod:`.api` (``Segmenter``).
"""

from medlearn.tasks.segment.api import Segmenter

__all__ = ["Segmenter"]
