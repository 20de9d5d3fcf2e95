"""QSAR networks (plain ``torch.nn`` modules; training lives in :mod:`medlearn.tasks.qsar.module`).

- :class:`MultitaskMLP`: the multitask feed-forward DNN of the Merck Kaggle challenge
  (Dahl et al., arXiv:1406.1231, 2014; Ma et al., J. Chem. Inf. Model. 2015): ReLU hidden layers with
  dropout, one output per task, on fingerprints and/or descriptors. ``(B, D) -> (B, T)``.
- :class:`DMPNN`: directed-bond message passing (Yang et al., "Analyzing Learned Molecular
  Representations for Property Prediction", J. Chem. Inf. Model. 2019), mean readout, optionally
  concatenated with molecule-level descriptors, then an FFN. ``GraphBatch (+ (B, D_extra)) -> (B, T)``.
"""

from __future__ import annotations

import torch
from torch import nn

from medlearn.chem.graph import ATOM_DIM, BOND_DIM, GraphBatch


def ffn(in_dim: int, hidden: list[int], out_dim: int, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    d = in_dim
    for h in hidden:
        layers += [nn.Dropout(dropout), nn.Linear(d, h), nn.ReLU()]
        d = h
    layers += [nn.Dropout(dropout), nn.Linear(d, out_dim)]
    return nn.Sequential(*layers)


class MultitaskMLP(nn.Module):
    """Multitask DNN. Input ``(B, in_dim)`` features, output ``(B, n_tasks)`` logits / values.

    Args:
        in_dim: feature width D.
        n_tasks: T outputs (one per task, shared hidden layers).
        hidden: widths of the hidden layers, e.g. ``[1000, 500]``.
        dropout: dropout before every linear layer (input dropout included, as in Dahl 2014).
    """

    def __init__(self, in_dim: int, n_tasks: int, hidden: list[int] | tuple[int, ...] = (1000, 500),
                 dropout: float = 0.25) -> None:
        super().__init__()
        if in_dim < 1 or n_tasks < 1:
            raise ValueError(f"in_dim={in_dim} and n_tasks={n_tasks} must both be >= 1")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout={dropout} must be in [0, 1)")
        self.net = ffn(in_dim, list(hidden), n_tasks, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class DMPNNEncoder(nn.Module):
    """Directed-bond message passing encoder: ``GraphBatch -> (n_mols, hidden)``.

    h⁰_uv = ReLU(W_i [x_u ‖ e_uv]);  m^{t+1}_uv = Σ_{w∈N(u)\\v} h^t_wu = (Σ_{w→u} h^t_wu) − h^t_vu;
    h^{t+1}_uv = ReLU(h⁰_uv + W_h m^{t+1}_uv);  atom state h_v = ReLU(W_o [x_v ‖ Σ_{u→v} h^T_uv]);
    molecule = mean of its atom states (atoms without bonds use a zero message).
    """

    def __init__(self, hidden: int = 300, depth: int = 3, dropout: float = 0.0) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth={depth} must be >= 1")
        self.depth = depth
        self.W_i = nn.Linear(ATOM_DIM + BOND_DIM, hidden, bias=False)
        self.W_h = nn.Linear(hidden, hidden, bias=False)
        self.W_o = nn.Linear(ATOM_DIM + hidden, hidden)
        self.dropout = nn.Dropout(dropout)
        self.hidden = hidden

    def forward(self, g: GraphBatch) -> torch.Tensor:
        n_atoms = g.atoms.shape[0]
        h0 = torch.relu(self.W_i(torch.cat([g.atoms[g.edge_src], g.bonds], dim=1)))
        h = h0
        for _ in range(self.depth - 1):
            incoming = h.new_zeros(n_atoms, self.hidden).index_add_(0, g.edge_dst, h)
            m = incoming[g.edge_src] - h[g.edge_rev]
            h = self.dropout(torch.relu(h0 + self.W_h(m)))
        incoming = h.new_zeros(n_atoms, self.hidden).index_add_(0, g.edge_dst, h)
        atom_h = self.dropout(torch.relu(self.W_o(torch.cat([g.atoms, incoming], dim=1))))
        sums = atom_h.new_zeros(g.n_mols, self.hidden).index_add_(0, g.atom_mol, atom_h)
        # tensors made here follow the batch's device and dtype (GPU, mixed precision)
        counts = atom_h.new_zeros(g.n_mols).index_add_(0, g.atom_mol, torch.ones_like(g.atom_mol, dtype=atom_h.dtype))
        return sums / counts.clamp(min=1).unsqueeze(1)


class DMPNN(nn.Module):
    """D-MPNN + FFN. ``forward(graph_batch, extra=None)``; ``extra`` is ``(n_mols, extra_dim)``
    molecule-level features (e.g. normalised RDKit descriptors) concatenated after the readout."""

    def __init__(self, n_tasks: int, hidden: int = 300, depth: int = 3, ffn_hidden: int = 300,
                 ffn_layers: int = 1, dropout: float = 0.0, extra_dim: int = 0) -> None:
        super().__init__()
        self.encoder = DMPNNEncoder(hidden, depth, dropout)
        self.extra_dim = extra_dim
        self.head = ffn(hidden + extra_dim, [ffn_hidden] * ffn_layers, n_tasks, dropout)

    def forward(self, g: GraphBatch, extra: torch.Tensor | None = None) -> torch.Tensor:
        z = self.encoder(g)
        if self.extra_dim:
            if extra is None:
                raise ValueError(f"this DMPNN expects extra features of width {self.extra_dim}")
            z = torch.cat([z, extra], dim=1)
        return self.head(z)
