"""A tiny SELFIES LSTM learns, samples valid molecules, filters by a score and round-trips (the Python API)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import medlearn
from medlearn.chem.properties import canonical_smiles, morgan_bits
from medlearn.errors import InputError
from medlearn.tasks.base import TrainRequest
from medlearn.tasks.generate.data import load_molecules
from medlearn.tasks.generate.model import MoleculeGenerator, screen_by_fingerprints
from medlearn.tasks.generate.plan import GeneratorPlan
from medlearn.tasks.generate.task import TASK
from medlearn.tasks.generate.vocab import Vocabulary, from_tokens, to_sequence, tokenize
from tests.tasks.generate.conftest import DRUGS, write_smiles_csv

TINY = {"train.max_epochs": 3, "network.hidden": 48, "network.embed_dim": 16, "network.layers": 1,
        "train.batch_size": 16, "train.lr": 0.01, "max_len": 60, "eval_samples": 30}


@pytest.mark.parametrize("kind", ["selfies", "smiles"])
def test_vocabulary_round_trip(kind):
    smiles = "CC(=O)Oc1ccccc1C(=O)O"
    toks = tokenize(to_sequence(smiles, kind), kind)
    vocab = Vocabulary.build([toks])
    ids = vocab.encode(toks, 80)
    assert ids[0] == 1 and ids[len(toks) + 1] == 2
    assert canonical_smiles(from_tokens(vocab.decode(ids[1:]), kind)) == canonical_smiles(smiles)


@pytest.fixture(scope="module")
def fitted_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[MoleculeGenerator, Path]:
    root = tmp_path_factory.mktemp("gen")
    csv = write_smiles_csv(root / "drugs.csv", DRUGS * 3)  # duplicates count once
    gen = MoleculeGenerator(overrides=TINY, seed=0, n_boot=50).fit(csv, root / "run")
    return gen, root / "run"


@pytest.fixture(scope="module")
def fitted(fitted_run: tuple[MoleculeGenerator, Path]) -> MoleculeGenerator:
    return fitted_run[0]


def test_fit_trains_a_run_on_the_distinct_molecules(fitted_run):
    gen, run = fitted_run
    assert len(gen.training_smiles_) == 30 and gen.history_["n_molecules"] == 30
    assert gen.metrics_["validity"]["ci95"] is not None and gen.run_dir_ == run
    assert gen.describe()["task"] == "generate" and gen.describe()["inputs"] == "count"


def test_selfies_generator_samples_valid_molecules(fitted):
    samples = fitted.sample(60, seed=1)
    assert len(samples) == 60
    valid = [s for s in samples if canonical_smiles(s) is not None]
    assert len(valid) / len(samples) >= 0.9  # SELFIES: only an immediate end token gives nothing


def test_filter_by_score_keeps_only_high_scores(fitted):
    def n_atoms(smiles):
        from rdkit import Chem

        return np.array([Chem.MolFromSmiles(s).GetNumHeavyAtoms() for s in smiles], dtype=float)

    kept = fitted.sample(10, score=n_atoms, min_score=6, seed=2)
    assert kept, "no molecule with >= 6 heavy atoms in 20 rounds"
    assert (n_atoms(kept) >= 6).all()


def test_load_gives_same_samples(fitted_run):
    fitted, run = fitted_run
    again = MoleculeGenerator.load(run)
    assert again.sample(20, seed=5) == fitted.sample(20, seed=5)
    assert again.training_smiles_ == fitted.training_smiles_
    loaded = medlearn.load_run(run)
    assert isinstance(loaded, MoleculeGenerator) and loaded.sample(20, seed=5) == fitted.sample(20, seed=5)


def test_temperature_must_be_positive(fitted):
    with pytest.raises(InputError):
        GeneratorPlan().apply_overrides({"temperature": 0})
    with pytest.raises(InputError):
        GeneratorPlan().apply_overrides({"network.name": "vae"})
    with pytest.raises(InputError, match="temperature"):
        fitted.sample(3, temperature=0)


def test_an_ensemble_is_refused_with_the_field_named():
    with pytest.raises(InputError, match="train.ensemble"):
        GeneratorPlan().apply_overrides({"train.ensemble": 2})


def test_the_split_holds_out_the_asked_fraction_of_distinct_molecules(tmp_path):
    csv = write_smiles_csv(tmp_path / "m.csv", DRUGS + DRUGS[:5])
    data = load_molecules(str(csv), {})
    request = TrainRequest("generate", str(csv), str(tmp_path / "r"), ["train.val_fraction=0.5"])
    splits = TASK.split(data, request, seed=0)
    assert splits.sizes() == {"train": 15, "val": 15, "test": 0}
    assert sorted(splits.ids) == list(range(30))  # the first row of each distinct molecule
    default = TASK.split(data, TrainRequest("generate", str(csv), str(tmp_path / "r")), seed=0)
    assert default.sizes()["val"] == 2  # 5% of 30, at least one


def test_fingerprint_screen_picks_the_matching_candidate():
    candidates = ["CCO", "c1ccccc1", "CC(=O)Oc1ccccc1C(=O)O"]
    targets = morgan_bits(["CC(=O)Oc1ccccc1C(=O)O", "c1ccccc1"], n_bits=512)
    assert screen_by_fingerprints(targets, candidates, 512) == ["CC(=O)Oc1ccccc1C(=O)O", "c1ccccc1"]


def test_aae_generator_samples_molecules(tmp_path):
    overrides = {**TINY, "network.name": "aae", "train.max_epochs": 1, "aae.epochs": 2, "aae.n_bits": 256,
                 "aae.hidden": 32}
    gen = MoleculeGenerator(overrides=overrides, seed=0, n_boot=20).fit(write_smiles_csv(tmp_path / "d.csv", DRUGS),
                                                                          tmp_path / "run")
    assert gen.sample_fingerprints(4).shape == (4, 256)
    samples = gen.sample(10, seed=3)
    assert 0 < len(samples) <= 10
    assert all(canonical_smiles(s) is not None for s in samples)
    again = MoleculeGenerator.load(tmp_path / "run")  # the AAE's weights travel in the one artefact
    assert again.aae_ is not None and again.sample(10, seed=3) == samples


def test_focus_raises_the_score(fitted_run):
    def n_nitrogen(smiles):
        return np.array([s.count("N") + s.count("n") for s in smiles], dtype=float)

    gen = MoleculeGenerator.load(fitted_run[1])  # a fresh copy of the fitted run
    history = gen.focus(n_nitrogen, rounds=3, n_samples=100, top_fraction=0.2, epochs=3, lr=3e-3)
    assert len(history) == 4
    assert history[-1] > 1.25 * history[0]  # measured 0.76 -> 1.13 nitrogens per molecule


def test_serve_predict_returns_one_result_per_sample(fitted, tmp_path):
    from medlearn.tasks.base import ServiceInput

    out = fitted.serve_predict(ServiceInput(options={"n": "7", "seed": 1}), tmp_path)
    assert [r["smiles"] for r in out.results] == fitted.sample(7, seed=1) and out.files[0].exists()
    assert all(r["valid"] == (canonical_smiles(r["smiles"]) is not None) for r in out.results)
    with pytest.raises(InputError, match="n: must be"):
        fitted.serve_predict(ServiceInput(options={"n": 0}), tmp_path)
