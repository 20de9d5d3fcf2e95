"""Molecular graphs for directed-bond message passing (D-MPNN, Yang et al., J. Chem. Inf. Model. 2019).

A molecule becomes atom features ``(A, F_atom)`` and, for every bond, two *directed* edges with
features ``(2B, F_bond)``, where the bond features of edge u->v are ``[x_u ‖ bond(u, v)]``.
:func:`batch_graphs` concatenates graphs and returns the index tensors message passing needs:
``edge_src``/``edge_dst`` (atom indices of each directed edge), ``edge_rev`` (the reverse edge) and
``atom_mol`` (molecule index of each atom).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

ATOM_TYPES = [1, 3, 5, 6, 7, 8, 9, 11, 12, 14, 15, 16, 17, 19, 20, 26, 29, 30, 33, 34, 35, 53]  # + "other"
DEGREES = [0, 1, 2, 3, 4, 5]
CHARGES = [-2, -1, 0, 1, 2]
CHIRAL = ["CHI_UNSPECIFIED", "CHI_TETRAHEDRAL_CW", "CHI_TETRAHEDRAL_CCW"]
NUM_HS = [0, 1, 2, 3, 4]
HYBRID = ["S", "SP", "SP2", "SP3", "SP3D", "SP3D2"]
BOND_TYPES = ["SINGLE", "DOUBLE", "TRIPLE", "AROMATIC"]
STEREO = ["STEREONONE", "STEREOANY", "STEREOZ", "STEREOE", "STEREOCIS", "STEREOTRANS"]


def _onehot(value, choices) -> list[float]:
    out = [0.0] * (len(choices) + 1)
    out[choices.index(value) if value in choices else len(choices)] = 1.0
    return out


def atom_features(atom) -> list[float]:
    """One-hot element, degree, formal charge, chirality, H count, hybridisation; aromatic; mass/100."""
    return (_onehot(atom.GetAtomicNum(), ATOM_TYPES) + _onehot(atom.GetTotalDegree(), DEGREES)
            + _onehot(atom.GetFormalCharge(), CHARGES) + _onehot(str(atom.GetChiralTag()), CHIRAL)
            + _onehot(atom.GetTotalNumHs(), NUM_HS) + _onehot(str(atom.GetHybridization()), HYBRID)
            + [float(atom.GetIsAromatic()), atom.GetMass() / 100.0, float(atom.IsInRing())])


def bond_features(bond) -> list[float]:
    """One-hot bond type and stereo; conjugated; in ring."""
    return (_onehot(str(bond.GetBondType()), BOND_TYPES) + [float(bond.GetIsConjugated()), float(bond.IsInRing())]
            + _onehot(str(bond.GetStereo()), STEREO))


ATOM_DIM = len(ATOM_TYPES) + 1 + len(DEGREES) + 1 + len(CHARGES) + 1 + len(CHIRAL) + 1 + len(NUM_HS) + 1 \
    + len(HYBRID) + 1 + 3
BOND_DIM = len(BOND_TYPES) + 1 + 2 + len(STEREO) + 1


@dataclass
class MolGraph:
    """One molecule: ``atoms (A, ATOM_DIM)``, ``bonds (E, BOND_DIM)`` for E = 2·bonds directed edges,
    ``src``/``dst`` ``(E,)`` atom indices; edges 2k and 2k+1 are each other's reverse."""

    atoms: np.ndarray
    bonds: np.ndarray
    src: np.ndarray
    dst: np.ndarray


def mol_to_graph(smiles: str) -> MolGraph:
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    mol = Chem.MolFromSmiles(smiles)
    RDLogger.EnableLog("rdApp.*")
    if mol is None:
        raise ValueError(f"invalid SMILES {smiles!r}")
    atoms = np.asarray([atom_features(a) for a in mol.GetAtoms()], dtype=np.float32).reshape(-1, ATOM_DIM)
    src, dst, feats = [], [], []
    for b in mol.GetBonds():
        u, v = b.GetBeginAtomIdx(), b.GetEndAtomIdx()
        f = bond_features(b)
        src += [u, v]
        dst += [v, u]
        feats += [f, f]
    return MolGraph(atoms, np.asarray(feats, dtype=np.float32).reshape(-1, BOND_DIM),
                    np.asarray(src, dtype=np.int64), np.asarray(dst, dtype=np.int64))


def graphs_from_smiles(smiles: Sequence[str]) -> list[MolGraph]:
    return [mol_to_graph(s) for s in smiles]


@dataclass
class GraphBatch:
    """Concatenated graphs (torch tensors): ``atoms (ΣA, ATOM_DIM)``, ``bonds (ΣE, BOND_DIM)``,
    ``edge_src``/``edge_dst``/``edge_rev`` ``(ΣE,)``, ``atom_mol (ΣA,)``, ``n_mols``."""

    atoms: object
    bonds: object
    edge_src: object
    edge_dst: object
    edge_rev: object
    atom_mol: object
    n_mols: int


def batch_graphs(graphs: Sequence[MolGraph]) -> GraphBatch:
    import torch

    atoms, bonds, src, dst, rev, mol = [], [], [], [], [], []
    a_off = e_off = 0
    for i, g in enumerate(graphs):
        n_a, n_e = len(g.atoms), len(g.src)
        atoms.append(g.atoms)
        bonds.append(g.bonds)
        src.append(g.src + a_off)
        dst.append(g.dst + a_off)
        rev.append(np.arange(n_e) ^ 1 if n_e else np.zeros(0, dtype=np.int64))  # pairs (2k, 2k+1)
        rev[-1] = rev[-1] + e_off
        mol.append(np.full(n_a, i, dtype=np.int64))
        a_off += n_a
        e_off += n_e
    return GraphBatch(torch.from_numpy(np.concatenate(atoms)), torch.from_numpy(np.concatenate(bonds)),
                      torch.from_numpy(np.concatenate(src)), torch.from_numpy(np.concatenate(dst)),
                      torch.from_numpy(np.concatenate(rev).astype(np.int64)),
                      torch.from_numpy(np.concatenate(mol)), len(graphs))
