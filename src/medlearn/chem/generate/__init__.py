"""Molecule generation: a SMILES/SELFIES LSTM language model, an adversarial autoencoder over
fingerprints (Kadurin et al. 2017), and the usual generation metrics."""
