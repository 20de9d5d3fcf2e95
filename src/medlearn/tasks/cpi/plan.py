"""The CPI plan (every field overridable with ``--set section.field=value``) and its rules.

Sections: ``network`` (the DeepDTA branches and head), ``train`` (the shared
:class:`~medlearn.plan.TrainSection` plus the optimiser), ``data`` (how pairs are split when the data
do not say). The defaults are not data-dependent except the task (0/1 values: interaction
classification); their evidence is in :class:`CPINetwork` and :class:`CPITrain`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from medlearn.plan import NetworkSection, Plan, TrainSection, setting


@dataclass
class CPINetwork(NetworkSection):
    """DeepDTA (Öztürk et al., Bioinformatics 2018) with a choice of branches (:mod:`medlearn.tasks.cpi.nets`).

    Fingerprint + k-mer branches: on the Davis validation fold (4-minute CPU pilots) they matched or
    beat the SMILES-CNN variant epoch for epoch (val CI 0.866 vs 0.857 after 8 epochs) at a fraction
    of the cost; ``--set network.compound=cnn --set network.protein=cnn`` gives the original two-CNN
    DeepDTA (with ``network.head=concat``).

    Defaults chosen on the Davis *validation* fold (DeepDTA training fold 4; 1 CPU thread, shared
    machine; the test fold was not used):

    * previous default (Morgan bits, raw k-mers, concat head, protein-grouped batches): CI 0.883,
      MSE 0.217 (from its 22-minute benchmark run on 2 threads);
    * Morgan counts + k-mer PCA 256 + random batches, ``interaction`` head: CI 0.878, MSE 0.221;
      with the plateau schedule: 0.885 / 0.222; batch 512 and lr 2e-3 instead: 0.879 / 0.234;
    * the same features with the ``concat`` head, no schedule: CI 0.889, MSE 0.210;
    * concat + plateau, 5 seeds: members alone CI 0.891 / MSE 0.210 on average; their **5-member
      ensemble (the default) CI 0.904, MSE 0.192** (13.5 min); its first 3 members 0.902 / 0.195;
    * interaction + plateau, 3 seeds: members 0.879 / 0.224 on average, ensemble 0.898 / 0.201.
    """

    name: Literal["deepdta"] = setting("deepdta", help="network: deepdta (two branches and a head)")
    compound: Literal["fingerprint", "cnn"] = setting(
        "fingerprint", help="compound branch: MLP over a Morgan fingerprint, or DeepDTA's SMILES CNN")
    protein: Literal["kmer", "cnn"] = setting(
        "kmer", help="protein branch: MLP over 1/2/3-mer composition, or DeepDTA's residue CNN")
    head: Literal["concat", "interaction"] = setting(
        "concat", help="concat: DeepDTA's [d, p]; interaction: [d, p, d * p]")
    embed_dim: int = setting(128, min=1, help="CNN branches: token embedding width")
    filters: int = setting(32, min=1, help="CNN branches: filters of the first layer (then 2x, 3x)")
    compound_kernel: int = setting(8, min=1, help="SMILES CNN kernel size")
    protein_kernel: int = setting(12, min=1, help="residue CNN kernel size")
    protein_pool: int = setting(1, min=1, help="residue CNN: max-pool between layers (1: none)")
    hidden: tuple[int, ...] = setting((512, 128), min=1, help="hidden layers of the head")
    dropout: float = setting(0.1, min=0, max=0.9)
    n_bits: int = setting(1024, min=8, help="Morgan fingerprint length (radius 2)")
    fp_counts: bool = setting(True, help="Morgan count fingerprint, log1p-scaled, instead of bits")
    kmer_pca: int = setting(256, min=0, help="standardise the 8,420 k-mer features and keep this many principal "
                                              "components fitted on the training proteins (0: raw features)")
    tower_dim: int = setting(256, min=0, help="code width of the fingerprint / k-mer MLPs (0: 3 x filters)")
    tower_hidden: int = setting(512, min=1, help="hidden width of the fingerprint / k-mer MLPs")
    max_smiles_len: int = setting(100, min=1, help="SMILES CNN: characters kept")
    max_protein_len: int = setting(1200, min=1, help="residue CNN: residues kept")


@dataclass
class CPITrain(TrainSection):
    """Adam with a plateau schedule, early stopping on the validation MSE (AUC for 0/1 values), and a
    deep ensemble (Lakshminarayanan et al., NeurIPS 2017) of 5 members (evidence: :class:`CPINetwork`).

    The budget: with the default 25 minutes the Davis members stopped early after 64-97 epochs (12.2 min
    for all five one after another on one thread, benchmarks/results/cpi_deepdta_folds_davis.md), so
    the budget is a guard, not the schedule.
    """

    max_epochs: int = setting(200, min=1, help="upper bound on passes over the training pairs")
    patience: int | None = setting(20, min=1, help="epochs without validation progress before stopping "
                                                   "(None: no early stopping)")
    max_minutes: float | None = setting(25.0, min=0, exclusive_min=True,
                                        help="wall-clock budget of the whole training (members share it)")
    ensemble: int = setting(5, min=1, max=64, help="members trained with seeds seed..seed+n-1, predictions averaged; "
                                                   "their spread is prediction_std")
    checkpoint: Literal["best_val", "final"] = setting(
        "best_val", help="best_val: each member's best validation epoch; final: its last epoch")
    batch_size: int = setting(256, min=1)
    lr: float = setting(1e-3, min=0, exclusive_min=True, help="Adam learning rate")
    weight_decay: float = setting(0.0, min=0)
    lr_schedule: Literal["none", "plateau"] = setting(
        "plateau", help="plateau: halve the lr after lr_patience epochs without validation progress")
    lr_patience: int = setting(5, min=0)
    protein_mix: int = setting(0, min=0, help="0: random batches; k > 0: windows of batch_size * k pairs, so "
                                              "batches hold few proteins (cheaper for the residue CNN)")


@dataclass
class CPIData:
    """How pairs are split (read before the rest of the plan: the split comes first)."""

    split: Literal["random", "cold_drug", "cold_protein"] = setting(
        "random", help="random: the DeepDTA folds, a CSV's split column, or random pairs (DeepDTA's setting 1); "
                       "cold_drug / cold_protein: whole compounds / proteins held out (val_fraction, "
                       "test_fraction of the pairs), so validation and test ask about unseen ones; CIs then "
                       "resample those compounds / proteins, not pairs")
    val_fold: int = setting(4, min=0, help="Davis/KIBA: the DeepDTA training fold that validates (the others train)")
    val_fraction: float = setting(0.1, min=0, max=0.5, exclusive_min=True,
                                  help="a CSV without val rows: the share of training pairs held out to validate")
    test_fraction: float = setting(0.1, min=0, max=0.5, help="a CSV without a split column: the test share")


@dataclass
class CPIPlan(Plan):
    """``task``: regression (affinities) | classification (0/1 interactions) | auto (from the values)."""

    task: Literal["auto", "regression", "classification"] = setting(
        "auto", help="auto: classification when every training value is 0 or 1")
    network: CPINetwork = field(default_factory=CPINetwork)
    train: CPITrain = field(default_factory=CPITrain)
    data: CPIData = field(default_factory=CPIData)


def resolve_task(task: str, y_train: np.ndarray) -> str:
    """The task for these training values: 0/1 values are interactions (classification), anything else
    affinities (as chem's ``infer_task_type``: the convention of DeepChem / chemprop tables)."""
    from medlearn.chem.data import infer_task_type

    return infer_task_type(np.asarray(y_train, dtype=np.float64)[:, None]) if task == "auto" else task


def plan_cpi(y_train: np.ndarray) -> CPIPlan:
    """The default plan for these training values (the rule: :func:`resolve_task`); everything else keeps
    the defaults measured on Davis (:class:`CPINetwork`, :class:`CPITrain`)."""
    return CPIPlan(task=resolve_task("auto", y_train))
