"""Distribution-learning metrics for generated molecules (as in GuacaMol, Brown et al. 2019, and
MOSES, Polykovskiy et al. 2020).

* validity: fraction of generated strings RDKit parses (empty strings count as invalid);
* uniqueness: distinct canonical SMILES / valid;
* novelty: unique valid molecules not in the training set / unique valid;
* internal diversity: 1 - mean pairwise Tanimoto similarity of Morgan fingerprints (radius 2,
  2048 bits) over the unique valid molecules (IntDiv1 of MOSES);
* QED, logP (Crippen) and molecular weight of generated vs training molecules, with the
  Wasserstein distance between the distributions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PROPERTIES = ("qed", "logp", "mw")


def canonical(smiles: str) -> str | None:
    """RDKit canonical SMILES (None for unparsable or empty input)."""
    from rdkit import Chem

    from medlearn.chem.data import parse_smiles

    mol = parse_smiles(smiles) if smiles else None
    if mol is None or mol.GetNumAtoms() == 0:
        return None
    return Chem.MolToSmiles(mol)


def canonical_all(smiles: Sequence[str]) -> list[str | None]:
    return [canonical(s) for s in smiles]


def morgan_bits(smiles: Sequence[str], radius: int = 2, n_bits: int = 2048) -> np.ndarray:
    """``(N, n_bits)`` binary Morgan fingerprints (the QSAR featuriser's function)."""
    from medlearn.chem.featurize import morgan_fingerprints

    return morgan_fingerprints(list(smiles), radius=radius, n_bits=n_bits)


def internal_diversity(fps: np.ndarray, max_molecules: int = 5000, seed: int = 0) -> float:
    """1 - mean pairwise Tanimoto over distinct pairs of ``(N, B)`` binary fingerprints.

    Vectorised (``fps @ fps.T``); above ``max_molecules`` a random subset is used.
    """
    x = (np.asarray(fps) > 0).astype(np.float32)
    if len(x) > max_molecules:
        x = x[np.random.default_rng(seed).choice(len(x), max_molecules, replace=False)]
    n = len(x)
    if n < 2:
        return float("nan")
    inter = x @ x.T
    counts = x.sum(1)
    union = counts[:, None] + counts[None, :] - inter
    sim = np.where(union > 0, inter / np.maximum(union, 1e-9), 1.0)
    off = ~np.eye(n, dtype=bool)
    return float(1.0 - sim[off].mean())


def properties(smiles: Sequence[str]) -> dict[str, np.ndarray]:
    """QED, Crippen logP and molecular weight of parsable SMILES: ``{name: (N,)}``."""
    from rdkit.Chem import QED, Crippen, Descriptors

    from medlearn.chem.data import parse_smiles

    out: dict[str, list[float]] = {k: [] for k in PROPERTIES}
    for s in smiles:
        mol = parse_smiles(s)
        if mol is None:
            continue
        try:
            q = QED.qed(mol)
        except Exception:  # QED fails on a few exotic valences
            q = float("nan")
        out["qed"].append(q)
        out["logp"].append(Crippen.MolLogP(mol))
        out["mw"].append(Descriptors.MolWt(mol))
    return {k: np.asarray(v, dtype=float) for k, v in out.items()}


def generation_metrics(generated: Sequence[str], training: Sequence[str],
                       training_canonical: set[str] | None = None, with_properties: bool = True) -> dict:
    """All metrics for ``generated`` SMILES against the ``training`` SMILES.

    Returns a dict with ``n_generated``, ``validity``, ``uniqueness``, ``novelty``,
    ``internal_diversity`` and, with ``with_properties``, ``property_means`` (generated vs training)
    and ``property_wasserstein``.
    """
    from scipy.stats import wasserstein_distance

    n = len(generated)
    canon = canonical_all(generated)
    valid = [c for c in canon if c is not None]
    unique = sorted(set(valid))
    train_set = training_canonical if training_canonical is not None else {
        c for c in canonical_all(training) if c is not None}
    novel = [c for c in unique if c not in train_set]
    metrics: dict = {
        "n_generated": n,
        "validity": len(valid) / n if n else float("nan"),
        "uniqueness": len(unique) / len(valid) if valid else float("nan"),
        "novelty": len(novel) / len(unique) if unique else float("nan"),
        "internal_diversity": internal_diversity(morgan_bits(unique)) if len(unique) > 1 else float("nan"),
    }
    if with_properties and unique:
        gen_props = properties(unique)
        train_props = properties(sorted(train_set))
        metrics["property_means"] = {
            k: {"generated": float(np.nanmean(gen_props[k])), "training": float(np.nanmean(train_props[k]))}
            for k in PROPERTIES}
        metrics["property_wasserstein"] = {
            k: float(wasserstein_distance(_finite(gen_props[k]), _finite(train_props[k]))) for k in PROPERTIES}
    return metrics


def _finite(a: np.ndarray) -> np.ndarray:
    a = a[np.isfinite(a)]
    return a if a.size else np.zeros(1)


def plot_property_distributions(generated: Sequence[str], training: Sequence[str]):
    """A matplotlib figure: histograms of QED, logP and MW, generated vs training."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gen, train = properties(generated), properties(training)
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    labels = {"qed": "QED", "logp": "logP (Crippen)", "mw": "molecular weight"}
    for ax, key in zip(axes, PROPERTIES, strict=False):
        both = np.concatenate([_finite(gen[key]), _finite(train[key])])
        bins = np.linspace(np.percentile(both, 0.5), np.percentile(both, 99.5), 40)
        ax.hist(_finite(train[key]), bins=bins, density=True, alpha=0.5, label="training")
        ax.hist(_finite(gen[key]), bins=bins, density=True, alpha=0.5, label="generated")
        ax.set_xlabel(labels[key])
        ax.set_yticks([])
    axes[0].legend(frameon=False)
    fig.tight_layout()
    return fig
