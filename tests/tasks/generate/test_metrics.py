"""Generation metrics on hand-checked inputs, and their bootstrap CIs over the samples."""

from __future__ import annotations

import numpy as np

from medlearn.chem.properties import canonical_smiles, molecular_properties
from medlearn.evaluation.generation import internal_diversity, sample_fractions, wasserstein_distances
from medlearn.tasks.generate.evaluate import generation_metrics


def test_validity_uniqueness_novelty_by_hand():
    training = ["CCO", "c1ccccc1"]
    generated = ["OCC", "CCO", "c1ccccc1C", "not a smiles", "", "CCN"]
    m = generation_metrics(generated, training)
    assert m["n_generated"] == 6
    assert m["validity"]["value"] == 4 / 6  # 'not a smiles' and '' are invalid
    # OCC and CCO are the same molecule -> 3 unique of 4 valid
    assert m["uniqueness"]["value"] == 3 / 4
    # ethanol is in training; toluene and ethylamine are new
    assert m["novelty"]["value"] == 2 / 3
    assert set(m["property_means"]) == {"qed", "logp", "mw"}
    # 6 samples are too few for a CI: said so, not a fake-precise interval
    assert m["validity"]["ci95"] is None and "not estimable" in m["validity"]["ci_note"]


def test_internal_diversity_extremes():
    same = np.tile(np.array([[1, 0, 1, 0]], dtype=np.float32), (3, 1))
    assert internal_diversity(same) == 0.0
    disjoint = np.array([[1, 1, 0, 0], [0, 0, 1, 1]], dtype=np.float32)
    assert internal_diversity(disjoint) == 1.0
    half = np.array([[1, 1, 0], [1, 0, 1]], dtype=np.float32)  # Tanimoto 1/3
    assert abs(internal_diversity(half) - 2 / 3) < 1e-6


def test_properties_match_rdkit_by_hand():
    p = molecular_properties(["CCO", "bad"])
    assert len(p["mw"]) == 1
    assert abs(p["mw"][0] - 46.069) < 0.01  # ethanol
    assert canonical_smiles("OCC") == canonical_smiles("CCO") == "CCO"


def test_fraction_cis_bracket_the_value_and_resample_the_samples():
    # 200 samples: 40 invalid, 160 valid of 100 distinct keys (60 twice, 40 once), 25 distinct keys in the reference
    keys = [None] * 40 + [f"m{i}" for i in range(60)] * 2 + [f"u{i}" for i in range(40)]
    reference = {f"m{i}" for i in range(25)}
    m = sample_fractions(keys, reference, n_boot=500, seed=0)
    assert (m["n_generated"], m["n_valid"], m["n_unique"], m["n_novel"]) == (200, 160, 100, 75)
    expected = {"validity": 160 / 200, "uniqueness": 100 / 160, "novelty": 75 / 100}
    for name, value in expected.items():
        entry = m[name]
        assert entry["value"] == value
        lo, hi = entry["ci95"]
        assert lo < value < hi and hi - lo < 0.25, (name, entry)
    # all distinct: uniqueness stays 1 on every resample (recounting distinct keys would give ~0.63)
    distinct = sample_fractions([f"k{i}" for i in range(300)], set(), n_boot=200)
    assert distinct["uniqueness"]["ci95"] == [1.0, 1.0]
    assert sample_fractions(keys, reference, n_boot=0)["novelty"]["ci95"] is None


def test_no_valid_sample_leaves_uniqueness_undefined():
    m = sample_fractions([None] * 20, set(), n_boot=50)
    assert m["validity"]["value"] == 0.0 and m["validity"]["ci95"] == [0.0, 0.0]
    assert m["uniqueness"]["value"] is None and "no valid sample" in m["uniqueness"]["ci_note"]


def test_wasserstein_of_shifted_distributions():
    a = {"x": np.array([0.0, 1.0, 2.0, np.nan])}
    assert wasserstein_distances(a, {"x": np.array([1.0, 2.0, 3.0])})["x"] == 1.0
    assert np.isnan(wasserstein_distances(a, {"x": np.array([np.nan])})["x"])
