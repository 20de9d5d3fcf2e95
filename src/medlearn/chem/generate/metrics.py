"""Generation metrics: validity, uniqueness, novelty, internal diversity, property distributions.

Definitions (as in MOSES, Polykovskiy et al. 2020, and GuacaMol, Brown et al. 2019):
validity = fraction of samples RDKit parses; uniqueness = distinct canonical SMILES / valid;
novelty = unique valid molecules not in the training set / unique valid; internal diversity =
1 - mean pairwise Tanimoto similarity (Morgan r=2, 2048 bits) over (up to 1,000) unique valid samples.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def canonical(smiles: str) -> str | None:
    """Canonical SMILES or None when RDKit cannot parse it."""
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    try:
        mol = Chem.MolFromSmiles(smiles) if smiles else None
        return Chem.MolToSmiles(mol) if mol is not None and mol.GetNumAtoms() > 0 else None
    finally:
        RDLogger.EnableLog("rdApp.*")


def properties(smiles: Sequence[str]) -> dict[str, np.ndarray]:
    """QED, Crippen logP and molecular weight of each (valid) SMILES, ``(N,)`` arrays."""
    from rdkit import Chem
    from rdkit.Chem import QED, Crippen, Descriptors

    out: dict[str, list[float]] = {"qed": [], "logp": [], "mw": []}
    for s in smiles:
        m = Chem.MolFromSmiles(s)
        if m is None:
            continue
        out["qed"].append(QED.qed(m))
        out["logp"].append(Crippen.MolLogP(m))
        out["mw"].append(Descriptors.MolWt(m))
    return {k: np.asarray(v) for k, v in out.items()}


def internal_diversity(smiles: Sequence[str], max_n: int = 1000, seed: int = 0) -> float:
    from medlearn.chem.featurize import morgan_fingerprints

    smiles = list(smiles)
    if len(smiles) < 2:
        return 0.0
    if len(smiles) > max_n:
        smiles = list(np.random.RandomState(seed).choice(smiles, max_n, replace=False))
    fp = (morgan_fingerprints(smiles) > 0).astype(np.float32)
    inter = fp @ fp.T
    cnt = fp.sum(1)
    union = cnt[:, None] + cnt[None, :] - inter
    sim = np.where(union > 0, inter / np.maximum(union, 1e-9), 1.0)
    n = len(smiles)
    return float(1.0 - (sim.sum() - np.trace(sim)) / (n * (n - 1)))


def wasserstein(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import wasserstein_distance

    return float(wasserstein_distance(a, b)) if len(a) and len(b) else float("nan")


def generation_metrics(samples: Sequence[str], training: Sequence[str]) -> dict:
    """Validity, uniqueness, novelty, internal diversity, and property distances to the training set."""
    canon = [canonical(s) for s in samples]
    valid = [c for c in canon if c is not None]
    unique = list(dict.fromkeys(valid))
    train_set = {c for c in (canonical(s) for s in training) if c is not None}
    novel = [u for u in unique if u not in train_set]
    n = max(len(samples), 1)
    out = {"n_samples": len(samples), "validity": len(valid) / n,
           "uniqueness": len(unique) / max(len(valid), 1), "novelty": len(novel) / max(len(unique), 1),
           "internal_diversity": internal_diversity(unique)}
    ps, pt = properties(unique[:2000]), properties(list(train_set)[:2000])
    for k in ps:
        out[f"{k}_mean"] = float(ps[k].mean()) if len(ps[k]) else float("nan")
        out[f"{k}_train_mean"] = float(pt[k].mean()) if len(pt[k]) else float("nan")
        out[f"{k}_wasserstein"] = wasserstein(ps[k], pt[k])
    return out


def property_figure(samples: Sequence[str], training: Sequence[str]):
    """Histograms of QED, logP and MW: generated vs training (matplotlib Figure)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ps, pt = properties([s for s in samples if canonical(s)][:2000]), properties(list(training)[:2000])
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
    for ax, (k, label) in zip(axes, (("qed", "QED"), ("logp", "logP"), ("mw", "MW")), strict=True):
        ax.hist(pt[k], bins=40, alpha=0.5, density=True, label="training")
        ax.hist(ps[k], bins=40, alpha=0.5, density=True, label="generated")
        ax.set_xlabel(label)
    axes[0].legend()
    fig.tight_layout()
    return fig
