"""From logits to class probabilities and losses, per task kind."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def probability_link(task: str) -> str:
    """The function from a task's logits to its (per-output) probabilities: "softmax" (binary,
    multiclass) or "sigmoid" (multilabel, ordinal); ensembles average on that scale."""
    return "sigmoid" if task in ("multilabel", "ordinal") else "softmax"


def logits_to_proba(logits: torch.Tensor, task: str) -> torch.Tensor:
    """``(N, K)`` probabilities. Binary/multiclass: softmax. Multilabel: sigmoid per label.

    Ordinal: the ``K-1`` logits are cumulative ``P(y > k)`` (Cao et al., CORAL, 2020); they are made
    monotone with a running minimum and differenced into ``K`` class probabilities.
    """
    if probability_link(task) == "softmax":
        return torch.softmax(logits, dim=1)
    if task == "multilabel":
        return torch.sigmoid(logits)
    greater = torch.cummin(torch.sigmoid(logits), dim=1).values  # ordinal
    ones = torch.ones_like(greater[:, :1])
    zeros = torch.zeros_like(greater[:, :1])
    upper = torch.cat([ones, greater], dim=1)
    lower = torch.cat([greater, zeros], dim=1)
    return (upper - lower).clamp_min(0)


class TaskLoss(nn.Module):
    """Cross-entropy (binary/multiclass, optional class weights and label smoothing), masked BCE
    (multilabel; NaN labels ignored) or cumulative BCE (ordinal)."""

    def __init__(self, task: str, class_weights: torch.Tensor | None = None, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.task = task
        self.label_smoothing = label_smoothing
        self.register_buffer("class_weights", class_weights if class_weights is not None else torch.empty(0))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        weight = self.class_weights if self.class_weights.numel() else None
        if self.task == "multilabel":
            mask = ~torch.isnan(target)
            loss = F.binary_cross_entropy_with_logits(logits, torch.nan_to_num(target), reduction="none")
            return (loss * mask).sum() / mask.sum().clamp_min(1)
        if self.task == "ordinal":
            k = logits.shape[1]
            levels = (target[:, None] > torch.arange(k, device=target.device)[None]).float()
            loss = F.binary_cross_entropy_with_logits(logits, levels, reduction="none").sum(1)
            if weight is not None:
                loss = loss * weight[target]
                return loss.sum() / weight[target].sum()
            return loss.mean()
        return F.cross_entropy(logits, target, weight=weight, label_smoothing=self.label_smoothing)
