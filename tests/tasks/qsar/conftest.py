"""QSAR fixtures: the chem layer's tiny molecule sets, one worker (members train in this process), and one
small random-forest run that several tests read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.chem.conftest import cache, logp, regression_csv, smiles  # noqa: F401  (fixtures)

FAMILIES = ("{c}", "{c}O", "{c}N", "{c}Cl", "OC(=O){c}", "c1ccccc1{c}", "{c}C(=O)OC", "Oc1ccc({c})cc1")


def many_smiles(n_chain: int = 15) -> list[str]:
    """``8 * n_chain`` small molecules (8 families x chain length 1..n_chain)."""
    return [f.format(c="C" * n) for n in range(1, n_chain + 1) for f in FAMILIES]


def crippen_logp(molecules: list[str]) -> np.ndarray:
    from rdkit import Chem
    from rdkit.Chem import Crippen

    return np.array([Crippen.MolLogP(Chem.MolFromSmiles(s)) for s in molecules])


@pytest.fixture(autouse=True)
def one_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """Members one after another in this process: a spawned worker costs seconds of start-up on the shared
    cores (the side-by-side path is the engine's, tested in tests/engine)."""
    monkeypatch.setattr("medlearn.engine.parallel.available_cores", lambda: 1)


@pytest.fixture(scope="session")
def large_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """120 molecules with 'smiles', 'logp' and a 0/1 'lipophilic' label."""
    s = many_smiles()
    y = crippen_logp(s)
    path = tmp_path_factory.mktemp("qsar_data") / "mols120.csv"
    pd.DataFrame({"smiles": s, "logp": y, "lipophilic": (y > np.median(y)).astype(float)}).to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def rf_run(large_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run: a random forest on logP of the 120 molecules (96 / 12 / 12)."""
    from medlearn.engine import parallel
    from medlearn.tasks.qsar.model import QSARModel

    root = tmp_path_factory.mktemp("qsar_rf")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MEDLEARN_CACHE", str(root / "cache"))
        patch.setattr(parallel, "available_cores", lambda: 1)
        QSARModel({"network.name": "rf", "network.n_estimators": 30}, n_boot=200,
                   targets=["logp"]).fit(large_csv, root / "run")
    return root / "run"
