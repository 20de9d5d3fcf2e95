"""Generation metrics on hand-checked inputs."""

from __future__ import annotations

import numpy as np

from medlearn.molgen.metrics import canonical, generation_metrics, internal_diversity, properties


def test_validity_uniqueness_novelty_by_hand():
    training = ["CCO", "c1ccccc1"]
    generated = ["OCC", "CCO", "c1ccccc1C", "not a smiles", "", "CCN"]
    m = generation_metrics(generated, training)
    assert m["n_generated"] == 6
    assert m["validity"] == 4 / 6  # 'not a smiles' and '' are invalid
    # OCC and CCO are the same molecule -> 3 unique of 4 valid
    assert m["uniqueness"] == 3 / 4
    # ethanol is in training; toluene and ethylamine are new
    assert m["novelty"] == 2 / 3
    assert set(m["property_means"]) == {"qed", "logp", "mw"}


def test_internal_diversity_extremes():
    same = np.tile(np.array([[1, 0, 1, 0]], dtype=np.float32), (3, 1))
    assert internal_diversity(same) == 0.0
    disjoint = np.array([[1, 1, 0, 0], [0, 0, 1, 1]], dtype=np.float32)
    assert internal_diversity(disjoint) == 1.0
    half = np.array([[1, 1, 0], [1, 0, 1]], dtype=np.float32)  # Tanimoto 1/3
    assert abs(internal_diversity(half) - 2 / 3) < 1e-6


def test_properties_match_rdkit_by_hand():
    p = properties(["CCO", "bad"])
    assert len(p["mw"]) == 1
    assert abs(p["mw"][0] - 46.069) < 0.01  # ethanol
    assert canonical("OCC") == canonical("CCO") == "CCO"
