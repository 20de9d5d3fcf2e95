"""``QSARModel``: the scikit-learn style Python API behind ``medlearn qsar``.

>>> model = QSARModel(model="auto").fit(train_smiles, Y_train, val_smiles, Y_val)
>>> mean, std = model.predict_with_uncertainty(test_smiles)      # (N, T) each
>>> ad = model.applicability_domain(test_smiles)                  # (N,) max Tanimoto to train

Models: ``dnn`` (multitask MLP on features, Ma et al. 2015), ``mpnn`` (D-MPNN, Yang et al. 2019; plus
normalised RDKit descriptors when ``features`` contains ``rdkit2d``), the scikit-learn baselines of
:mod:`medlearn.chem.baselines`, and ``auto``: a small set of candidates chosen by rules on the data
(tree ensembles and a DNN on Morgan counts + descriptors; gradient boosting for <= 2 tasks), each
scored on the *validation* rows, then the best single model or mean of the best 2-3 is kept (model
choice on validation only; test rows are never seen).

Uncertainty: the standard deviation over the ensemble members' predictions (several seeds, or the
chosen candidates). Applicability domain: max Tanimoto similarity (Morgan bits) to the training set.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from medlearn.chem.baselines import BASELINES, MaskedMultiTask, make_baseline
from medlearn.chem.data import infer_task_type
from medlearn.chem.featurize import DescriptorScaler, FeatureSpec, featurize, tanimoto_max_similarity
from medlearn.chem.metrics import primary_metric, qsar_metrics
from medlearn.errors import InputError

NEURAL = ("dnn", "mpnn")
MODELS = ("auto", *NEURAL, *BASELINES)


@dataclass
class Member:
    """One fitted ensemble member: its kind, the estimator, and how it reads features."""

    kind: str
    estimator: Any
    seed: int
    val_score: float | None = None
    fit_seconds: float = 0.0
    info: dict = field(default_factory=dict)


class QSARModel(BaseEstimator):
    """QSAR model on SMILES. ``fit(smiles, Y, val_smiles=None, Y_val=None)``; ``Y`` is ``(N,)`` or ``(N, T)``
    with NaN = missing label.

    Args:
        model: one of ``MODELS``.
        task_type: ``regression`` / ``classification`` / None (inferred: all labels 0/1 -> classification).
        features: ``+``-joined kinds of :data:`~medlearn.chem.featurize.FEATURE_NAMES`.
        radius, n_bits: Morgan parameters.
        n_seeds: ensemble size for a single chosen neural model (spread = uncertainty).
        seed: base random seed.
        max_epochs, patience, batch_size: neural training (early stopping on validation).
        n_estimators: trees for ``rf``/``et``.
        n_jobs: threads for scikit-learn forests.
        use_cache: featurisation cache on disk.
        max_time_minutes: wall-time cap for each neural member's training (None: no cap).
        verbose: print progress lines.
    """

    def __init__(self, model: str = "auto", task_type: str | None = None, features: str = "morgan_count+rdkit2d",
                 radius: int = 2, n_bits: int = 2048, n_seeds: int = 1, seed: int = 0, max_epochs: int = 100,
                 patience: int = 15, batch_size: int = 64, n_estimators: int = 200, n_jobs: int = 1,
                 use_cache: bool = True, max_time_minutes: float | None = None, verbose: bool = False) -> None:
        self.model = model
        self.task_type = task_type
        self.features = features
        self.radius = radius
        self.n_bits = n_bits
        self.n_seeds = n_seeds
        self.seed = seed
        self.max_epochs = max_epochs
        self.patience = patience
        self.batch_size = batch_size
        self.n_estimators = n_estimators
        self.n_jobs = n_jobs
        self.use_cache = use_cache
        self.max_time_minutes = max_time_minutes
        self.verbose = verbose

    # ------------------------------------------------------------------------------------ features
    def _raw_features(self, smiles) -> np.ndarray:
        return featurize(list(smiles), self.feature_spec_, use_cache=self.use_cache)

    def _nn_features(self, raw: np.ndarray) -> np.ndarray:
        """Counts -> log1p, descriptors -> quantile-normalised (fitted on train)."""
        X = raw.copy()
        X[:, self._fp_cols_] = np.log1p(np.maximum(X[:, self._fp_cols_], 0))
        return self.nn_scaler_.transform(X) if self.nn_scaler_ is not None else X

    def _tree_features(self, raw: np.ndarray) -> np.ndarray:
        X = raw.copy()
        sl = self.feature_spec_.descriptor_slice()
        if sl is not None:  # trees need no scaling, only finite values
            block = X[:, sl]
            X[:, sl] = np.where(np.isnan(block), self.nn_scaler_.median_, block)
        return X

    def _descriptor_block(self, nn_X: np.ndarray) -> np.ndarray | None:
        sl = self.feature_spec_.descriptor_slice()
        return None if sl is None else nn_X[:, sl]

    # ------------------------------------------------------------------------------------ fitting
    def fit(self, smiles, Y, val_smiles=None, Y_val=None) -> QSARModel:
        if self.model not in MODELS:
            raise InputError("--model", f"unknown model '{self.model}'", f"choose from {', '.join(MODELS)}")
        t_start = time.process_time()
        smiles = list(smiles)
        Y = np.asarray(Y, dtype=float).reshape(len(smiles), -1)
        self.task_type_ = self.task_type or infer_task_type(Y)
        if self.task_type_ == "classification" and not np.isin(Y[~np.isnan(Y)], (0.0, 1.0)).all():
            raise InputError("--task", "classification needs labels 0/1", "use --task regression for numeric targets")
        self.n_tasks_ = Y.shape[1]
        self.n_train_ = len(smiles)
        self.feature_spec_ = FeatureSpec.parse(self.features, self.radius, self.n_bits)
        sl = self.feature_spec_.descriptor_slice()
        raw = self._raw_features(smiles)
        width = raw.shape[1]
        desc_cols = np.zeros(width, dtype=bool)
        if sl is not None:
            desc_cols[sl] = True
        self._fp_cols_ = ~desc_cols
        self.nn_scaler_ = DescriptorScaler(sl).fit(raw) if sl is not None else None
        has_val = val_smiles is not None and len(val_smiles) > 0
        if has_val:
            val_smiles = list(val_smiles)
            Y_val = np.asarray(Y_val, dtype=float).reshape(len(val_smiles), -1)
            raw_val = self._raw_features(val_smiles)
        self.metric_name_, self.higher_is_better_ = primary_metric(self.task_type_)
        kinds = self._candidates() if self.model == "auto" else [self.model]
        members: list[Member] = []
        for kind in kinds:
            n = self.n_seeds if (kind in NEURAL and self.model != "auto") else 1
            for k in range(n):
                t0 = time.process_time()
                m = self._fit_member(kind, self.seed + k, smiles, raw, Y,
                                     val_smiles if has_val else None, raw_val if has_val else None,
                                     Y_val if has_val else None)
                m.fit_seconds = time.process_time() - t0
                if has_val:
                    m.val_score = self._score(Y_val, self._member_predict(m, val_smiles, raw_val))
                if self.verbose:
                    print(f"  {kind} seed {m.seed}: val {self.metric_name_} = {m.val_score} "
                          f"({m.fit_seconds:.1f} s CPU)", flush=True)
                members.append(m)
        self.candidates_ = members
        self.members_ = members
        self.selection_ = {"chosen": [m.kind for m in members]}
        if self.model == "auto" and has_val and len(members) > 1:
            self._select(val_smiles, raw_val, Y_val)
        self.train_fp_ = self._bits(smiles)  # packed Morgan bits for the applicability domain
        self.fit_cpu_seconds_ = time.process_time() - t_start
        return self

    def _candidates(self) -> list[str]:
        """Rules for ``auto`` (cost-driven, fixed before any benchmark): the multitask DNN always;
        for <= 2 tasks also extra trees, a random forest and gradient boosting, since those fit one
        model per task; for more tasks only the forest besides the DNN. Above 10,000 training
        molecules the forests (cost ~ n log n per tree) give way to histogram gradient boosting."""
        if self.n_train_ > 10_000:
            return ["hgb", "dnn"]
        return ["et", "rf", "hgb", "dnn"] if self.n_tasks_ <= 2 else ["rf", "dnn"]

    def _fit_member(self, kind, seed, smiles, raw, Y, val_smiles, raw_val, Y_val) -> Member:
        from medlearn.chem.neural import DNNQSAR, MPNNQSAR

        if kind == "dnn":
            X, Xv = self._nn_features(raw), (self._nn_features(raw_val) if raw_val is not None else None)
            est = DNNQSAR(self.task_type_, hidden=(512, 256), dropout=0.2, batch_size=self.batch_size,
                          max_epochs=self.max_epochs, patience=self.patience, seed=seed,
                          max_time_minutes=self.max_time_minutes)
            est.fit(X, Y, Xv, Y_val)
            return Member(kind, est, seed, info=dict(est.fit_summary_))
        if kind == "mpnn":
            X, Xv = self._nn_features(raw), (self._nn_features(raw_val) if raw_val is not None else None)
            d, dv = self._descriptor_block(X), (self._descriptor_block(Xv) if Xv is not None else None)
            est = MPNNQSAR(self.task_type_, max_epochs=min(self.max_epochs, 50), patience=self.patience,
                           batch_size=50, seed=seed, max_time_minutes=self.max_time_minutes)
            est.fit(smiles, Y, val_smiles, Y_val, d, dv)
            return Member(kind, est, seed, info=dict(est.fit_summary_))
        params = {}
        if kind in ("rf", "et"):
            params["n_estimators"] = self.n_estimators
        base = make_baseline(kind, self.task_type_, seed=seed, n_jobs=self.n_jobs, **params)
        X = self._nn_features(raw) if kind in ("svm", "knn", "linear") else self._tree_features(raw)
        if kind in ("nb", "knn"):
            X = (raw[:, self._fp_cols_] > 0).astype(np.float32)  # binary fingerprint space
        est = MaskedMultiTask(base, self.task_type_).fit(X, Y)
        return Member(kind, est, seed)

    def _member_predict(self, m: Member, smiles, raw) -> np.ndarray:
        if m.kind == "dnn":
            return m.estimator.predict_values(self._nn_features(raw))
        if m.kind == "mpnn":
            return m.estimator.predict_values(smiles, self._descriptor_block(self._nn_features(raw)))
        if m.kind in ("nb", "knn"):
            X = (raw[:, self._fp_cols_] > 0).astype(np.float32)
        elif m.kind in ("svm", "linear"):
            X = self._nn_features(raw)
        else:
            X = self._tree_features(raw)
        return m.estimator.score_values(X)

    def _score(self, Y, P) -> float:
        return float(qsar_metrics(self.task_type_, Y, P)[self.metric_name_])

    def _select(self, val_smiles, raw_val, Y_val) -> None:
        """Best of: each candidate alone, the mean of the best 2, the mean of the best 3 (val score)."""
        sign = 1.0 if self.higher_is_better_ else -1.0
        preds = [self._member_predict(m, val_smiles, raw_val) for m in self.candidates_]
        order = sorted(range(len(preds)), key=lambda i: -sign * np.nan_to_num(self.candidates_[i].val_score,
                                                                              nan=-sign * 1e9))
        options = {(i,): self.candidates_[i].val_score for i in order}
        for k in (2, 3):
            if len(order) >= k:
                idx = tuple(order[:k])
                options[idx] = self._score(Y_val, np.mean([preds[i] for i in idx], axis=0))
        best = max(options, key=lambda key: sign * np.nan_to_num(options[key], nan=-sign * 1e9))
        self.members_ = [self.candidates_[i] for i in best]
        named = {"+".join(self.candidates_[i].kind for i in key): v for key, v in options.items()}
        self.selection_ = {"chosen": [self.candidates_[i].kind for i in best], "val_score": options[best],
                           "options": named}

    # ------------------------------------------------------------------------------------ inference
    def _check(self) -> None:
        if not hasattr(self, "members_"):
            raise RuntimeError("QSARModel is not fitted; call fit() first")

    def _member_predictions(self, smiles) -> np.ndarray:
        """``(M, N, T)`` predictions of every member."""
        self._check()
        smiles = list(smiles)
        raw = self._raw_features(smiles)
        return np.stack([self._member_predict(m, smiles, raw) for m in self.members_])

    def predict_with_uncertainty(self, smiles) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation over ensemble members, each ``(N, T)`` (std 0 for one member)."""
        P = self._member_predictions(smiles)
        return P.mean(0), P.std(0)

    def predict_values(self, smiles) -> np.ndarray:
        """Probabilities (classification) or values (regression), ``(N, T)``."""
        return self.predict_with_uncertainty(smiles)[0]

    def predict(self, smiles) -> np.ndarray:
        """Values (regression) or 0/1 labels at threshold 0.5 (classification), ``(N, T)``."""
        P = self.predict_values(smiles)
        return (P >= 0.5).astype(float) if self.task_type_ == "classification" else P

    def predict_proba(self, smiles) -> np.ndarray:
        """Positive-class probability per task, ``(N, T)`` (classification only)."""
        if self.task_type_ != "classification":
            raise InputError("predict_proba", "this is a regression model", "use predict()")
        return self.predict_values(smiles)

    def _bits(self, smiles) -> np.ndarray:
        from medlearn.chem.featurize import morgan_fingerprints

        return np.packbits(morgan_fingerprints(list(smiles), self.radius, self.n_bits, counts=False) > 0, axis=1)

    def applicability_domain(self, smiles) -> np.ndarray:
        """``(N,)`` max Tanimoto similarity (Morgan bits) to the nearest training molecule."""
        self._check()
        train = np.unpackbits(self.train_fp_, axis=1)[:, :self.n_bits]
        query = np.unpackbits(self._bits(smiles), axis=1)[:, :self.n_bits]
        return tanimoto_max_similarity(query, train)

    def evaluate(self, smiles, Y, task_names: list[str] | None = None) -> dict:
        Y = np.asarray(Y, dtype=float).reshape(len(list(smiles)), -1)
        return qsar_metrics(self.task_type_, Y, self.predict_values(smiles), task_names)

    def describe(self) -> dict:
        self._check()
        return {"model": self.model, "task_type": self.task_type_, "features": self.feature_spec_.key(),
                "members": [{"kind": m.kind, "seed": m.seed, "val_score": m.val_score,
                             "fit_cpu_seconds": round(m.fit_seconds, 2), **m.info} for m in self.members_],
                "candidates": [{"kind": m.kind, "seed": m.seed, "val_score": m.val_score} for m in self.candidates_],
                "selection": self.selection_}


def save_model(model: QSARModel, path, extra: dict | None = None) -> None:
    """Write the fitted model (estimators, scalers, feature spec, label names) atomically with torch.save."""
    import torch

    from medlearn.io import atomic_path

    with atomic_path(path) as tmp:
        torch.save({"format": "medlearn.qsar/1", "model": model, **(extra or {})}, tmp)


def load_model(path) -> tuple[QSARModel, dict]:
    import torch

    try:
        blob = torch.load(path, weights_only=False, map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad run directory
        raise InputError(path, f"cannot load the model ({type(exc).__name__})",
                         "retrain with medlearn qsar train") from exc
    if not isinstance(blob, dict) or blob.get("format") != "medlearn.qsar/1":
        raise InputError(path, "not a medlearn QSAR model", "point to a run made by medlearn qsar train")
    return blob["model"], blob
