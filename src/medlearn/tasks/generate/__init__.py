"""Molecule generation (``medlearn generate``): a SELFIES/SMILES token LSTM/GRU (Segler et al. 2018), an
optional fingerprint adversarial autoencoder screening its samples (Kadurin et al. 2017), focusing on a
QSAR score, and the distribution-learning metrics (validity, uniqueness, novelty, diversity, properties).

Modules: :mod:`.plan`, :mod:`.data` (distinct molecules of a SMILES CSV, token ids), :mod:`.vocab`,
:mod:`.nets`, :mod:`.module` (LightningModule and the AAE loop), :mod:`.model` (``MoleculeGenerator``,
the API), :mod:`.evaluate` (metrics and report), :mod:`.task` (the training hooks).
"""
