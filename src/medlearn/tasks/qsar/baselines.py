"""Classical QSAR baselines as plain scikit-learn estimators (so Pipeline / GridSearchCV work).

:func:`make_baseline` returns an estimator for one task; :class:`MaskedMultiTask` fits one clone per
task on the rows where that task has a label (NaN = missing), the usual way to run single-task
learners on multitask QSAR sets (MoleculeNet, Wu et al. 2018).

Random forests for QSAR: Svetnik et al., J. Chem. Inf. Comput. Sci. 2003.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.naive_bayes import BernoulliNB
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, SVR
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from medlearn.errors import InputError
from medlearn.tasks.qsar.plan import BASELINES

#: baselines whose prediction is a mean over trees, whose spread is their uncertainty
FORESTS = ("rf", "et")


def make_baseline(name: str, task_type: str, seed: int = 0, n_jobs: int = 1, **params) -> BaseEstimator:
    """A single-task scikit-learn estimator.

    Names: ``rf`` random forest, ``et`` extra trees, ``hgb`` histogram gradient boosting, ``svm`` (RBF
    SVC/SVR on standardised features), ``nb`` Bernoulli naive Bayes (classification only), ``dt``
    decision tree, ``knn`` k nearest neighbours, ``linear`` (logistic regression / ridge).
    Extra ``params`` go to the estimator.
    """
    clf = task_type == "classification"
    if name == "rf":
        base = dict(n_estimators=500, n_jobs=n_jobs, random_state=seed, min_samples_leaf=1)
        if not clf:
            base["max_features"] = 0.33  # sklearn's 1.0 is slow and worse on 2,000+ features
        est = (RandomForestClassifier if clf else RandomForestRegressor)(**{**base, **params})
    elif name == "et":
        base = dict(n_estimators=500, n_jobs=n_jobs, random_state=seed)
        if not clf:
            base["max_features"] = 0.33
        est = (ExtraTreesClassifier if clf else ExtraTreesRegressor)(**{**base, **params})
    elif name == "hgb":
        base = dict(max_iter=500, learning_rate=0.05, early_stopping=True, validation_fraction=0.1,
                    n_iter_no_change=30, random_state=seed, l2_regularization=1.0)
        est = (HistGradientBoostingClassifier if clf else HistGradientBoostingRegressor)(**{**base, **params})
    elif name == "svm":
        # SVC(probability=True) is deprecated in sklearn 1.9: Platt scaling via CalibratedClassifierCV
        est = make_pipeline(StandardScaler(), CalibratedClassifierCV(SVC(random_state=seed, **params),
                                                                     ensemble=False, cv=3) if clf else SVR(**params))
    elif name == "nb":
        if not clf:
            raise InputError("--model", "naive Bayes is for classification only", "choose another model for regression")
        est = BernoulliNB(**params)
    elif name == "dt":
        est = (DecisionTreeClassifier if clf else DecisionTreeRegressor)(random_state=seed,
                                                                        **{"min_samples_leaf": 5, **params})
    elif name == "knn":
        est = (KNeighborsClassifier if clf else KNeighborsRegressor)(**{"n_neighbors": 5, "weights": "distance",
                                                                       "metric": "jaccard", **params})
    elif name == "linear":
        est = (make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000, **params)) if clf
               else make_pipeline(StandardScaler(), Ridge(alpha=10.0, **params)))
    else:
        raise InputError("--model", f"unknown baseline '{name}'", f"choose from {', '.join(BASELINES)}")
    return est


def baselines_for(task_type: str) -> tuple[str, ...]:
    return BASELINES if task_type == "classification" else tuple(b for b in BASELINES if b != "nb")


class MaskedMultiTask(BaseEstimator):
    """One clone of ``estimator`` per task, each fitted on the rows where that task is labelled.

    ``fit(X (N, D), Y (N, T) with NaN = missing)``; ``predict`` -> ``(N, T)`` values (regression) or
    labels; ``predict_proba`` -> ``(N, T)`` positive-class probabilities (classification). A task with
    a single class in training gets a constant predictor. :meth:`spread` is the standard deviation over
    a forest's trees (NaN for any other estimator).
    """

    def __init__(self, estimator: BaseEstimator, task_type: str = "regression") -> None:
        self.estimator = estimator
        self.task_type = task_type

    def fit(self, X, Y) -> MaskedMultiTask:
        Y = np.asarray(Y, dtype=float)
        Y = Y[:, None] if Y.ndim == 1 else Y
        self.estimators_ = []
        for j in range(Y.shape[1]):
            m = ~np.isnan(Y[:, j])
            y = Y[m, j]
            if self.task_type == "classification":
                y = y.astype(int)
                est = clone(self.estimator) if len(np.unique(y)) > 1 else DummyClassifier(strategy="prior")
            else:
                est = clone(self.estimator) if m.sum() > 1 else DummyRegressor()
            if m.sum() == 0:
                est = DummyClassifier(strategy="constant", constant=0) if self.task_type == "classification" \
                    else DummyRegressor(strategy="constant", constant=0.0)
                X_j, y = np.asarray(X)[:1], np.zeros(1, dtype=int if self.task_type == "classification" else float)
            else:
                X_j = np.asarray(X)[m]
            self.estimators_.append(est.fit(X_j, y))
        self.n_tasks_ = Y.shape[1]
        return self

    def predict_proba(self, X) -> np.ndarray:
        out = np.zeros((len(X), self.n_tasks_))
        for j, est in enumerate(self.estimators_):
            proba = est.predict_proba(X)
            classes = list(est.classes_)
            out[:, j] = proba[:, classes.index(1)] if 1 in classes else 0.0
        return out

    def predict(self, X) -> np.ndarray:
        if self.task_type == "classification":
            return (self.predict_proba(X) >= 0.5).astype(float)
        return np.stack([est.predict(X) for est in self.estimators_], axis=1)

    def score_values(self, X) -> np.ndarray:
        """Probabilities for classification, values for regression: ``(N, T)``."""
        return self.predict_proba(X) if self.task_type == "classification" else self.predict(X)

    def spread(self, X) -> np.ndarray:
        """``(N, T)`` standard deviation of the per-tree predictions (class-1 probabilities for
        classification) of each task's forest; NaN for a task whose estimator has no trees (a constant
        predictor, boosting, SVM ...)."""
        out = np.full((len(X), self.n_tasks_), np.nan)
        for j, est in enumerate(self.estimators_):
            trees = getattr(est, "estimators_", None)
            if not isinstance(est, (RandomForestClassifier, RandomForestRegressor, ExtraTreesClassifier,
                                    ExtraTreesRegressor)) or not trees:
                continue
            if self.task_type == "classification":
                classes = list(est.classes_)
                if 1 not in classes:
                    continue
                k = classes.index(1)
                per_tree = np.stack([t.predict_proba(X)[:, k] for t in trees])
            else:
                per_tree = np.stack([t.predict(X) for t in trees])
            out[:, j] = per_tree.std(0)
        return out
