"""Tiny molecule sets for the generation tests."""

from __future__ import annotations

from pathlib import Path

import pytest

DRUGS = [
    "CC(=O)Oc1ccccc1C(=O)O", "CC(C)Cc1ccc(cc1)C(C)C(=O)O", "CN1C=NC2=C1C(=O)N(C(=O)N2C)C",
    "CC(=O)Nc1ccc(O)cc1", "OC(=O)c1ccccc1O", "c1ccc2c(c1)cccc2", "CCO", "CCN(CC)CC", "c1ccncc1",
    "CC(C)NCC(O)c1ccc(O)c(O)c1", "COc1ccc2[nH]cc(CCN)c2c1", "NC(=O)c1cccnc1", "CCOC(=O)c1ccccc1",
    "Clc1ccc(cc1)C(c1ccccc1)N1CCNCC1", "O=C(O)CCc1ccccc1", "CC1=CC(=O)C=CC1=O", "OCC(O)CO",
    "C1CCCCC1", "c1ccc(cc1)-c1ccccc1", "CC(N)Cc1ccccc1", "OC1CCCCC1", "CCCCCCCC(=O)O",
    "Cc1ccccc1N", "Nc1ccc(cc1)S(N)(=O)=O", "CN(C)C(=N)N=C(N)N", "O=C1NC(=O)c2ccccc12",
    "CC(=O)c1ccccc1", "COc1ccccc1OC", "Fc1ccc(cc1)C(=O)O", "CC(C)(C)c1ccc(O)cc1",
]


def write_smiles_csv(path: Path, smiles: list[str], column: str = "smiles") -> Path:
    """A one-column SMILES CSV (the MoleculeNet layout)."""
    path.write_text(column + "\n" + "\n".join(smiles) + "\n")
    return path


@pytest.fixture
def drugs() -> list[str]:
    return list(DRUGS)
