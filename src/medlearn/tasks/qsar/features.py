"""What each QSAR model reads: one raw feature array per molecule, seen three ways.

``raw``: the plan's feature blocks concatenated (:func:`medlearn.chem.featurize.featurize`, ``(N, D)``).
From it, fitted on the training molecules only:

* ``nn`` — Morgan counts/bits as ``log1p``, descriptors quantile-normalised to N(0, 1) and clipped
  (:class:`~medlearn.chem.featurize.DescriptorScaler`): the DNN, the D-MPNN's descriptor block, SVM, linear;
* ``tree`` — raw values, missing descriptors set to the training median: forests, boosting, trees;
* ``bits`` — the fingerprint columns as 0/1: naive Bayes and k-NN (Jaccard distance).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from medlearn.chem.featurize import DescriptorScaler, FeatureSpec, featurize, morgan_fingerprints

if TYPE_CHECKING:
    from medlearn.tasks.qsar.plan import FeatureSection

#: which view of the features each model reads
VIEW = {"dnn": "nn", "mpnn": "nn", "svm": "nn", "linear": "nn", "nb": "bits", "knn": "bits",
        "rf": "tree", "et": "tree", "hgb": "tree", "dt": "tree"}


@dataclass
class Featurizer:
    """The plan's features and the statistics fitted on the training molecules (picklable)."""

    spec: FeatureSpec
    scaler: DescriptorScaler | None = None

    @classmethod
    def from_plan(cls, features: FeatureSection) -> Featurizer:
        return cls(FeatureSpec(tuple(features.kinds), features.radius, features.n_bits))

    def raw(self, smiles: Sequence[str]) -> np.ndarray:
        """``(N, D)`` float32 raw features (cached on disk by the SMILES list)."""
        return featurize(list(smiles), self.spec)

    def fit(self, raw_train: np.ndarray) -> Featurizer:
        sl = self.spec.descriptor_slice()
        self.scaler = DescriptorScaler(sl).fit(raw_train) if sl is not None else None
        return self

    def _fingerprint_columns(self, width: int) -> np.ndarray:
        cols = np.ones(width, dtype=bool)
        sl = self.spec.descriptor_slice()
        if sl is not None:
            cols[sl] = False
        return cols

    def view(self, raw: np.ndarray, kind: str) -> np.ndarray:
        """The ``nn`` / ``tree`` / ``bits`` view of ``raw`` (see the module docstring)."""
        fp = self._fingerprint_columns(raw.shape[1])
        if kind == "bits":
            return (raw[:, fp] > 0).astype(np.float32)
        X = raw.copy()
        if kind == "nn":
            X[:, fp] = np.log1p(np.maximum(X[:, fp], 0))
            return self.scaler.transform(X) if self.scaler is not None and len(X) else X
        if kind == "tree":
            sl = self.spec.descriptor_slice()
            if sl is not None:  # trees need no scaling, only finite values
                block = X[:, sl]
                X[:, sl] = np.where(np.isnan(block), self.scaler.median_, block)
            return X
        raise ValueError(f"unknown feature view {kind!r}")

    def views(self, raw: np.ndarray, kinds: Sequence[str]) -> dict[str, np.ndarray]:
        """The views the models ``kinds`` read, each computed once."""
        return {v: self.view(raw, v) for v in sorted({VIEW[k] for k in kinds})}

    def descriptors(self, nn: np.ndarray) -> np.ndarray | None:
        """The descriptor block of an ``nn`` view (the D-MPNN's molecule-level input), or None."""
        sl = self.spec.descriptor_slice()
        return None if sl is None else nn[:, sl]

    def bits(self, smiles: Sequence[str]) -> np.ndarray:
        """``(N, ceil(n_bits / 8))`` packed Morgan bits (the applicability domain's fingerprints)."""
        fp = morgan_fingerprints(list(smiles), self.spec.radius, self.spec.n_bits, counts=False)
        return np.packbits(fp > 0, axis=1)


@dataclass
class MemberData:
    """What every member trains from, computed once in ``prepare`` (travels to worker processes).

    ``views[name] = (train (N_tr, D), val (N_va, D))``; ``y_*`` are ``(N, T)`` with NaN = missing.
    """

    task_type: str
    featurizer: Featurizer
    y_train: np.ndarray
    y_val: np.ndarray
    smiles_train: list[str]
    smiles_val: list[str]
    views: dict[str, tuple[np.ndarray, np.ndarray]]

    @property
    def n_tasks(self) -> int:
        return int(self.y_train.shape[1])

    def val_views(self) -> dict[str, np.ndarray]:
        return {k: v[1] for k, v in self.views.items()}
