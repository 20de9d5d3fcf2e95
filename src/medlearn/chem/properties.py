"""Molecule identity and simple properties: canonical SMILES, QED / logP / molecular weight, Morgan bits.

What the drug-design tasks need to compare sets of molecules: the canonical SMILES says whether two
strings are the same molecule (novelty, uniqueness, "seen in training"); QED (Bickerton et al., Nat.
Chem. 2012), Crippen logP (Wildman & Crippen 1999) and molecular weight describe a set's distribution
(as GuacaMol, Brown et al. 2019, and MOSES, Polykovskiy et al. 2020, compare them); Morgan bits
(Rogers & Hahn 2010) feed Tanimoto similarities.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from medlearn.chem.data import parse_smiles

#: the properties :func:`molecular_properties` computes, in this order
PROPERTIES = ("qed", "logp", "mw")
PROPERTY_LABELS = {"qed": "QED", "logp": "logP (Crippen)", "mw": "molecular weight"}


def canonical_smiles(smiles: str | None) -> str | None:
    """RDKit's canonical SMILES, or None for an unparsable, empty or atom-less string."""
    from rdkit import Chem

    mol = parse_smiles(smiles) if smiles else None
    if mol is None or mol.GetNumAtoms() == 0:
        return None
    return Chem.MolToSmiles(mol)


def canonical_all(smiles: Sequence[str | None]) -> list[str | None]:
    """:func:`canonical_smiles` of each string (``(N,)``, None where invalid)."""
    return [canonical_smiles(s) for s in smiles]


def morgan_bits(smiles: Sequence[str], radius: int = 2, n_bits: int = 2048) -> np.ndarray:
    """``(N, n_bits)`` float32 binary Morgan fingerprints (the QSAR featuriser's; zeros where unparsable)."""
    from medlearn.chem.featurize import morgan_fingerprints

    return morgan_fingerprints(list(smiles), radius=radius, n_bits=n_bits)


def molecular_properties(smiles: Sequence[str]) -> dict[str, np.ndarray]:
    """QED, Crippen logP and molecular weight of the parsable SMILES: ``{name: (M,)}`` (M <= N; QED NaN
    where RDKit cannot compute it)."""
    from rdkit.Chem import QED, Crippen, Descriptors

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
