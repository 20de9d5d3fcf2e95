"""Compound-protein affinity networks: DeepDTA branches with a concatenation or an interaction head.

DeepDTA (Öztürk et al., Bioinformatics 2018): two 1D CNN branches -> fully connected regressor.

Compound branch: SMILES characters ``(D, Ls)`` -> embedding -> 3 x Conv1d + ReLU -> global max pool
-> ``(D, 3F)``; or, with ``compound="fingerprint"``, an MLP over a Morgan fingerprint
(Rogers & Hahn, J. Chem. Inf. Model. 2010) ``(D, bits)`` -> ``(D, C)``.
Protein branch: residues ``(P, Lp)`` -> embedding -> 3 x Conv1d + ReLU (optional max-pool between
layers, ``pool``, to cut CPU time on ~1,000-residue sequences) -> global max pool -> ``(P, 3F)``;
or, with ``protein="kmer"``, an MLP over 1/2/3-mer composition features ``(P, K)`` (raw ``K = 8420``
or their top principal components) -> ``(P, C)`` (far cheaper on CPU than convolving 1,200
residues). ``C`` is ``tower_dim`` (``3F`` when 0).

Head (``head``):

* ``"concat"``: DeepDTA's ``[d, p]`` ``(B, Cd + Cp)`` -> hidden layers -> 1.
* ``"interaction"``: ``[d, p, d * p]`` ``(B, 3C)`` -> hidden layers -> 1. The element-wise product is
  an explicit multiplicative compound x protein term (the ``[u, v, u * v]`` pair features of
  InferSent, Conneau et al., EMNLP 2017, applied to compound and protein codes). On the Davis
  validation fold it did worse than ``concat`` with the fingerprint / k-mer-PCA branches (see
  :class:`medlearn.tasks.cpi.plan.CPINetwork`), so ``concat`` is the default.
  When the two codes differ in width they are first projected linearly to ``tower_dim``.

Each branch runs once per *unique* compound / protein in a batch and the codes are gathered per
pair: Davis has 68 compounds and 442 proteins for 30,056 pairs, so this cuts the protein branch cost
by the number of pairs per protein in the batch.
"""

from __future__ import annotations

import torch
from torch import nn

HEADS = ("concat", "interaction")


class SequenceCNN(nn.Module):
    """``(N, L)`` token ids (0 = padding) -> ``(N, 3 * filters)`` codes."""

    def __init__(self, vocab_size: int, embed_dim: int = 128, filters: int = 32, kernel: int = 8,
                 pool: int = 1) -> None:
        super().__init__()
        if pool < 1:
            raise ValueError(f"pool must be >= 1, got {pool}")
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        chans = [embed_dim, filters, 2 * filters, 3 * filters]
        layers: list[nn.Module] = []
        for i in range(3):
            layers += [nn.Conv1d(chans[i], chans[i + 1], kernel), nn.ReLU()]
            if pool > 1 and i < 2:
                layers.append(nn.MaxPool1d(pool))
        self.convs = nn.Sequential(*layers)
        self.out_dim = 3 * filters
        self.min_len = kernel * (pool ** 2) + kernel * 2

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.shape[1] < self.min_len:  # too short for three convolutions: pad
            ids = nn.functional.pad(ids, (0, self.min_len - ids.shape[1]))
        x = self.embed(ids).transpose(1, 2)  # (N, E, L)
        return self.convs(x).amax(dim=2)


class FingerprintMLP(nn.Module):
    """``(N, n_in)`` feature vectors -> ``(N, out_dim)`` codes (Linear-ReLU-Dropout-Linear-ReLU)."""

    def __init__(self, n_bits: int, out_dim: int, hidden: int = 512, dropout: float = 0.1) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_bits, hidden), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, out_dim), nn.ReLU())
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class DeepDTA(nn.Module):
    """Affinity regressor over (compound, protein) pairs.

    ``forward(compounds, proteins, drug_idx, protein_idx)``: ``compounds`` ``(D, Ls)`` token ids (or
    ``(D, bits)`` floats), ``proteins`` ``(P, Lp)`` token ids (or ``(P, n_kmer)`` floats),
    ``drug_idx``/``protein_idx`` ``(B,)`` indices into them -> ``(B,)`` predicted affinities.
    """

    def __init__(self, compound_vocab: int, protein_vocab: int, compound: str = "cnn", protein: str = "cnn",
                 n_bits: int = 1024, n_kmer: int = 8420, embed_dim: int = 128, filters: int = 32,
                 compound_kernel: int = 8, protein_kernel: int = 12, protein_pool: int = 1,
                 hidden: tuple[int, ...] = (1024, 1024, 512), dropout: float = 0.1, head: str = "concat",
                 tower_dim: int = 0, tower_hidden: int = 512) -> None:
        super().__init__()
        if compound not in ("cnn", "fingerprint"):
            raise ValueError(f"compound must be 'cnn' or 'fingerprint', got {compound!r}")
        if protein not in ("cnn", "kmer"):
            raise ValueError(f"protein must be 'cnn' or 'kmer', got {protein!r}")
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}")
        code = tower_dim or 3 * filters
        self.head_kind = head
        self.compound_net: nn.Module
        if compound == "cnn":
            self.compound_net = SequenceCNN(compound_vocab, embed_dim, filters, compound_kernel)
        else:
            self.compound_net = FingerprintMLP(n_bits, code, tower_hidden, dropout)
        self.protein_net: nn.Module
        if protein == "cnn":
            self.protein_net = SequenceCNN(protein_vocab, embed_dim, filters, protein_kernel, protein_pool)
        else:
            self.protein_net = FingerprintMLP(n_kmer, code, tower_hidden, dropout)
        d_dim, p_dim = self.compound_net.out_dim, self.protein_net.out_dim
        self.d_proj: nn.Module = nn.Identity()
        self.p_proj: nn.Module = nn.Identity()
        if head == "interaction":
            if d_dim != p_dim:  # the product needs equal widths
                self.d_proj, self.p_proj = nn.Linear(d_dim, code), nn.Linear(p_dim, code)
                d_dim = p_dim = code
            sizes = [3 * d_dim, *hidden]
        else:
            sizes = [d_dim + p_dim, *hidden]
        layers: list[nn.Module] = []
        for i in range(len(sizes) - 1):
            layers += [nn.Linear(sizes[i], sizes[i + 1]), nn.ReLU(), nn.Dropout(dropout)]
        layers.append(nn.Linear(sizes[-1], 1))
        self.head = nn.Sequential(*layers)

    def forward(self, compounds: torch.Tensor, proteins: torch.Tensor, drug_idx: torch.Tensor,
                protein_idx: torch.Tensor) -> torch.Tensor:
        d_u, d_inv = torch.unique(drug_idx, return_inverse=True)
        p_u, p_inv = torch.unique(protein_idx, return_inverse=True)
        d_code = self.d_proj(self.compound_net(compounds[d_u]))[d_inv]  # (B, Cd)
        p_code = self.p_proj(self.protein_net(proteins[p_u]))[p_inv]  # (B, Cp)
        if self.head_kind == "interaction":
            x = torch.cat([d_code, p_code, d_code * p_code], dim=1)  # (B, 3C)
        else:
            x = torch.cat([d_code, p_code], dim=1)  # (B, Cd + Cp)
        return self.head(x).squeeze(1)
