"""Patient-level prediction from the images (or slices) of each patient.

* ``mean`` / ``max``: the mean (maximum) of the patient's image probabilities; nothing is trained, so a
  patient's row is exactly what its image rows say (:func:`pool_probabilities`).
* ``learned_mean`` / ``learned_max`` / ``gru``: a :class:`PatientAggregator` — mean or max pooling of
  the image embeddings, or a GRU over the ordered images (Zhou et al., as used for per-patient CT
  classification), followed by a linear head trained on the training patients and selected on the
  validation patients. Input embeddings come from the trained image classifier's backbone.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from medlearn.tasks.classify.module import validation_auc
from medlearn.tasks.classify.outputs import TaskLoss, logits_to_proba

LEARNED = ("learned_mean", "learned_max", "gru")


def pool_probabilities(proba: np.ndarray, patients: np.ndarray, mode: str) -> tuple[list[str], np.ndarray]:
    """Patient ids (first-seen order) and the ``mean`` or ``max`` of their images' probabilities ``(P, K)``."""
    ids = list(dict.fromkeys(str(p) for p in patients))
    reduce = np.mean if mode == "mean" else np.max
    patients = np.asarray(patients).astype(str)
    return ids, np.stack([reduce(proba[patients == p], axis=0) for p in ids])


class PatientAggregator(nn.Module):
    """``(B, T, F)`` padded bags + lengths ``(B,)`` -> logits ``(B, K)`` (modes of :data:`LEARNED`)."""

    def __init__(self, embed_dim: int, num_outputs: int, mode: str = "learned_mean", hidden: int = 64) -> None:
        super().__init__()
        mode = {"learned_mean": "mean", "learned_max": "max"}.get(mode, mode)
        if mode not in ("mean", "max", "gru"):
            raise ValueError(f"aggregation must be one of {LEARNED}, got {mode!r}")
        self.mode = mode
        self.gru = nn.GRU(embed_dim, hidden, batch_first=True) if mode == "gru" else None
        self.head = nn.Linear(hidden if mode == "gru" else embed_dim, num_outputs)

    def forward(self, bags: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = (torch.arange(bags.shape[1])[None] < lengths[:, None]).unsqueeze(-1)
        if self.mode == "mean":
            pooled = (bags * mask).sum(1) / lengths[:, None].clamp_min(1)
        elif self.mode == "max":
            pooled = bags.masked_fill(~mask, float("-inf")).max(1).values
        else:
            packed = nn.utils.rnn.pack_padded_sequence(bags, lengths.cpu(), batch_first=True, enforce_sorted=False)
            _, h = self.gru(packed)
            pooled = h[-1]
        return self.head(pooled)


def patient_bags(embeddings: np.ndarray, labels: np.ndarray, patients: np.ndarray
                 ) -> tuple[list[str], torch.Tensor, torch.Tensor, np.ndarray]:
    """Group rows by patient (in first-seen order, images kept in row order).

    Returns (patient ids, padded bags ``(P, T, F)``, lengths ``(P,)``, patient labels). A patient's
    label is its images' label (the maximum for binary/ordinal if they disagree, e.g. one positive slice).
    """
    order: dict[str, list[int]] = {}
    for i, p in enumerate(patients):
        order.setdefault(str(p), []).append(i)
    ids = list(order)
    t_max = max(len(v) for v in order.values())
    bags = torch.zeros(len(ids), t_max, embeddings.shape[1])
    lengths = torch.zeros(len(ids), dtype=torch.long)
    patient_labels = []
    for j, pid in enumerate(ids):
        rows = order[pid]
        bags[j, : len(rows)] = torch.from_numpy(embeddings[rows])
        lengths[j] = len(rows)
        patient_labels.append(np.nanmax(labels[rows], axis=0) if labels.ndim == 2 else labels[rows].max())
    return ids, bags, lengths, np.asarray(patient_labels)


def fit_patient_aggregator(train: tuple, val: tuple | None, task: str, num_outputs: int, mode: str,
                           epochs: int = 100, seed: int = 0) -> PatientAggregator:
    """Train on ``train = (bags, lengths, labels)``; keep the epoch with the best AUC on ``val`` (same form),
    or the final weights when ``val`` is None."""
    torch.manual_seed(seed)
    bags, lengths, labels = train
    model = PatientAggregator(bags.shape[2], num_outputs, mode)
    target = torch.as_tensor(labels, dtype=torch.float32 if task == "multilabel" else torch.long)
    loss_fn = TaskLoss(task)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-3)
    best_state, best_score = None, -np.inf
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(bags))
        for start in range(0, len(bags), 32):
            idx = perm[start:start + 32]
            opt.zero_grad()
            loss = loss_fn(model(bags[idx], lengths[idx]), target[idx])
            loss.backward()
            opt.step()
        if val is None:
            continue
        score = validation_auc(val[2], predict_patients(model, val[0], val[1], task), task)
        if np.isfinite(score) and score > best_score:
            best_score, best_state = score, copy.deepcopy(model.state_dict())
    if val is not None and best_state is not None:
        model.load_state_dict(best_state)
    return model.eval()


def predict_patients(model: PatientAggregator, bags: torch.Tensor, lengths: torch.Tensor, task: str) -> np.ndarray:
    model.eval()
    with torch.inference_mode():
        return logits_to_proba(model(bags, lengths), task).numpy()
