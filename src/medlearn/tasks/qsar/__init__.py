"""``qsar``: molecular property prediction from SMILES CSVs (multitask DNN, D-MPNN, scikit-learn baselines,
``auto`` candidates chosen on validation, uncertainty, applicability domain).

Parts: :mod:`~.plan` (plan and rules), :mod:`~.data` (reading), :mod:`~.features` (feature views),
:mod:`~.nets` / :mod:`~.module` (networks and their LightningModule), :mod:`~.baselines` (scikit-learn
estimators), :mod:`~.members` (training one member), :mod:`~.selection` (what ``auto`` keeps),
:mod:`~.model` (:class:`~.model.QSARModel`, the API class), :mod:`~.evaluate` (metrics and report),
:mod:`~.compare` (``qsar compare``), :mod:`~.task` (the hooks the engine calls).
"""
