"""Compound-protein interaction: DeepDTA-style affinity regression (Öztürk et al. 2018), loaders for
(SMILES, sequence, value) CSVs and the Davis/KIBA matrix layout, and the CI / MSE / r_m^2 metrics."""

from medlearn.cpi.metrics import affinity_metrics, concordance_index, rm2

__all__ = ["affinity_metrics", "concordance_index", "rm2"]
