"""Tiny self-contained molecule sets for the chem tests (no shared data, no downloads)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


def _smiles() -> list[str]:
    out = []
    for n in range(1, 9):
        c = "C" * n
        out += [c, c + "O", c + "N", c + "Cl", "OC(=O)" + c, "c1ccccc1" + c, c + "C(=O)OC", "Oc1ccc(" + c + ")cc1"]
    return out


@pytest.fixture(scope="session")
def smiles() -> list[str]:
    """64 small molecules (8 families x chain length 1..8)."""
    return _smiles()


@pytest.fixture(scope="session")
def logp(smiles) -> np.ndarray:
    """A learnable regression target: Crippen logP, ``(N,)``."""
    from rdkit import Chem
    from rdkit.Chem import Crippen

    return np.array([Crippen.MolLogP(Chem.MolFromSmiles(s)) for s in smiles])


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDLEARN_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture()
def regression_csv(tmp_path, smiles, logp, cache) -> str:
    """CSV with 'smiles', 'logp', 'acid' (0/1 with two missing) and two invalid SMILES at rows 3 and 10."""
    s = list(smiles)
    y = list(logp)
    acid = [float("C(=O)O" in x or "OC(=O)" in x) for x in s]
    s[3] = "not_a_smiles"
    s[10] = "C1CC"  # unclosed ring
    acid[5] = np.nan
    acid[20] = np.nan
    path = tmp_path / "mols.csv"
    pd.DataFrame({"smiles": s, "logp": y, "acid": acid}).to_csv(path, index=False)
    return str(path)
