"""Image classification, 2D and 3D, per image and per patient (``medlearn classify``).

Modules: :mod:`.plan` (fingerprint -> plan rules), :mod:`.data`, :mod:`.module` (LightningModule),
:mod:`.outputs`, :mod:`.patient`, :mod:`.predict`, :mod:`.model` (``Classifier``, the API),
:mod:`.evaluate` (metrics and report), :mod:`.task` (the training hooks), :mod:`.pretrain` (SimCLR).
"""
