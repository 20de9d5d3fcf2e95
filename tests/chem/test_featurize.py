import numpy as np

from medlearn.chem.featurize import (
    DescriptorScaler,
    FeatureSpec,
    descriptor_names,
    featurize,
    morgan_fingerprints,
    n_descriptors,
    tanimoto_max_similarity,
)


def test_morgan_bits_and_counts(smiles):
    bits = morgan_fingerprints(smiles, radius=2, n_bits=512)
    counts = morgan_fingerprints(smiles, radius=2, n_bits=512, counts=True)
    assert bits.shape == (len(smiles), 512) and bits.dtype == np.float32
    assert set(np.unique(bits)) <= {0.0, 1.0}
    assert (counts >= bits).all() and counts.max() > 1  # long chains repeat environments
    assert ((counts > 0) == (bits > 0)).all()
    # a larger radius sees more environments
    assert morgan_fingerprints(smiles, radius=3, n_bits=512).sum() > bits.sum()


def test_feature_concat_and_cache(smiles, cache):
    spec = FeatureSpec(("morgan", "rdkit2d"), radius=2, n_bits=256)
    X = featurize(smiles, spec)
    assert X.shape == (len(smiles), 256 + n_descriptors())
    assert spec.descriptor_slice() == slice(256, 256 + n_descriptors())
    files = list(cache.rglob("*.npy"))
    assert len(files) == 2
    np.testing.assert_array_equal(featurize(smiles, spec), X)  # served from cache
    assert featurize(smiles[:5], spec).shape[0] == 5  # different list -> different key


def test_descriptor_scaler_normalises(smiles, cache):
    spec = FeatureSpec(("rdkit2d",))
    X = featurize(smiles, spec)
    X[0, 0] = np.nan
    Z = DescriptorScaler().fit(X[:40]).transform(X)
    assert np.isfinite(Z).all() and np.abs(Z).max() <= 5.0
    mw = descriptor_names().index("MolWt")  # continuous, all distinct -> ~N(0, 1) on the fitted rows
    assert abs(float(Z[:40, mw].mean())) < 0.2 and 0.7 < float(Z[:40, mw].std()) < 1.5
    assert np.argsort(Z[:40, mw]).tolist() == np.argsort(X[:40, mw]).tolist()  # order kept


def test_tanimoto_applicability_domain(smiles):
    fp = morgan_fingerprints(smiles, n_bits=1024)
    sim = tanimoto_max_similarity(fp[:10], fp[10:])
    assert sim.shape == (10,) and (sim >= 0).all() and (sim <= 1).all()
    np.testing.assert_allclose(tanimoto_max_similarity(fp[:5], fp), 1.0)
    other = morgan_fingerprints(["[Fe+2]", "O=[Si]=O"], n_bits=1024)
    assert tanimoto_max_similarity(other, fp).max() < 0.3
