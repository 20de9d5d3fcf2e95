"""Molecule generation: a SELFIES/SMILES recurrent generator and an adversarial autoencoder over
fingerprints, with the distribution-learning metrics (validity, uniqueness, novelty, diversity)."""

from medlearn.molgen.metrics import generation_metrics

__all__ = ["generation_metrics"]
