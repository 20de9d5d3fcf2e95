"""Compound-protein interaction (``medlearn cpi``): DeepDTA-style affinity regression (Öztürk et al.,
Bioinformatics 2018) or 0/1 interaction classification, on a CSV of (SMILES, sequence, value) pairs or
the Davis/KIBA matrix layout with the DeepDTA folds.

Modules: :mod:`.plan` (the plan and its rules), :mod:`.data` (the two layouts), :mod:`.encode`
(SMILES / residue ids, k-mer features and their PCA), :mod:`.nets` (DeepDTA and its branches),
:mod:`.module` (LightningModule, batch sampler), :mod:`.model` (``AffinityModel``, the API),
:mod:`.evaluate` (metrics with CIs, report), :mod:`.task` (the training hooks). The metrics (CI, MSE,
r_m^2) live in :mod:`medlearn.evaluation.affinity`.
"""
