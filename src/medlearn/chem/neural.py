"""scikit-learn style wrappers around the Lightning-trained QSAR networks.

:class:`DNNQSAR` (multitask MLP on a feature array) and :class:`MPNNQSAR` (D-MPNN on SMILES, optionally
with descriptors). ``__init__`` stores hyper-parameters; ``fit(X, Y, X_val=None, Y_val=None)`` sets
``module_`` and ``fit_summary_``; ``predict_values(X)`` returns ``(N, T)`` probabilities
(classification) or values (regression). ``Y`` is ``(N, T)`` with NaN = missing label.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator

from medlearn.chem.graph import graphs_from_smiles
from medlearn.chem.lit import ArrayDataset, GraphDataset, QSARLitModule, fit_module, predict_module
from medlearn.chem.nets import DMPNN, MultitaskMLP


def _target_stats(Y: np.ndarray, task_type: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    Y = np.asarray(Y, dtype=float)
    if task_type == "classification":
        pos = np.nansum(Y, axis=0)
        neg = np.sum(~np.isnan(Y), axis=0) - pos
        # mild re-weighting of rare positives (sqrt of the imbalance, capped) helps ROC-AUC on Tox21-like sets
        pos_weight = np.clip(np.sqrt(np.maximum(neg, 1) / np.maximum(pos, 1)), 1.0, 10.0)
        return np.zeros(Y.shape[1]), np.ones(Y.shape[1]), pos_weight
    mean = np.nan_to_num(np.nanmean(Y, axis=0))
    std = np.nan_to_num(np.nanstd(Y, axis=0), nan=1.0)
    return mean, np.where(std > 1e-8, std, 1.0), None


class DNNQSAR(BaseEstimator):
    """Multitask DNN (Ma et al. 2015) on ``X (N, D)``: ReLU, dropout, AdamW weight decay, early stopping."""

    def __init__(self, task_type: str = "regression", hidden: tuple[int, ...] = (1000, 500), dropout: float = 0.25,
                 lr: float = 1e-3, weight_decay: float = 1e-4, batch_size: int = 64, max_epochs: int = 100,
                 patience: int = 15, seed: int = 0, max_time_minutes: float | None = None) -> None:
        self.task_type = task_type
        self.hidden = hidden
        self.dropout = dropout
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.seed = seed
        self.max_time_minutes = max_time_minutes

    def fit(self, X, Y, X_val=None, Y_val=None, trainer=None) -> DNNQSAR:
        import torch

        Y = np.asarray(Y, dtype=float).reshape(len(X), -1)
        mean, std, pw = _target_stats(Y, self.task_type)
        torch.manual_seed(self.seed)
        net = MultitaskMLP(np.asarray(X).shape[1], Y.shape[1], self.hidden, self.dropout)
        self.module_ = QSARLitModule(net, self.task_type, mean, std, self.lr, self.weight_decay, pw)
        val = ArrayDataset(X_val, Y_val) if X_val is not None else None
        self.fit_summary_ = fit_module(self.module_, ArrayDataset(X, Y), val, max_epochs=self.max_epochs,
                                       patience=self.patience, batch_size=self.batch_size, seed=self.seed,
                                       trainer=trainer, max_time_minutes=self.max_time_minutes)
        self.n_tasks_ = Y.shape[1]
        return self

    def predict_values(self, X) -> np.ndarray:
        return predict_module(self.module_, ArrayDataset(X, None))


class MPNNQSAR(BaseEstimator):
    """D-MPNN (Yang et al. 2019) on SMILES; ``fit(smiles, Y, ...)``, optional ``extra`` descriptor arrays."""

    def __init__(self, task_type: str = "regression", hidden: int = 300, depth: int = 3, ffn_hidden: int = 300,
                 ffn_layers: int = 1, dropout: float = 0.0, lr: float = 1e-3, weight_decay: float = 0.0,
                 batch_size: int = 50, max_epochs: int = 50, patience: int = 10, seed: int = 0,
                 max_time_minutes: float | None = None) -> None:
        self.task_type = task_type
        self.hidden = hidden
        self.depth = depth
        self.ffn_hidden = ffn_hidden
        self.ffn_layers = ffn_layers
        self.dropout = dropout
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.seed = seed
        self.max_time_minutes = max_time_minutes

    def fit(self, smiles, Y, smiles_val=None, Y_val=None, extra=None, extra_val=None, trainer=None) -> MPNNQSAR:
        import torch

        Y = np.asarray(Y, dtype=float).reshape(len(smiles), -1)
        mean, std, pw = _target_stats(Y, self.task_type)
        torch.manual_seed(self.seed)
        extra_dim = 0 if extra is None else np.asarray(extra).shape[1]
        net = DMPNN(Y.shape[1], self.hidden, self.depth, self.ffn_hidden, self.ffn_layers, self.dropout, extra_dim)
        self.module_ = QSARLitModule(net, self.task_type, mean, std, self.lr, self.weight_decay, pw)
        train = GraphDataset(graphs_from_smiles(smiles), Y, extra)
        val = GraphDataset(graphs_from_smiles(smiles_val), Y_val, extra_val) if smiles_val is not None else None
        self.fit_summary_ = fit_module(self.module_, train, val, max_epochs=self.max_epochs, patience=self.patience,
                                       batch_size=self.batch_size, seed=self.seed, trainer=trainer,
                                       max_time_minutes=self.max_time_minutes)
        self.n_tasks_ = Y.shape[1]
        self.extra_dim_ = extra_dim
        return self

    def predict_values(self, smiles, extra=None) -> np.ndarray:
        ds = GraphDataset(graphs_from_smiles(smiles), None, extra, n_tasks=self.n_tasks_)
        return predict_module(self.module_, ds)
