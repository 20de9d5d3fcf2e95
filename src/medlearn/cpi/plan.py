"""The CPI plan: every field overridable with ``--set section.field=value``."""

from __future__ import annotations

from dataclasses import dataclass, field

from medlearn.errors import InputError
from medlearn.plan import Plan


@dataclass
class CPINetSettings:
    """DeepDTA branches (Öztürk et al. 2018): ``compound`` cnn | fingerprint, ``protein`` cnn | kmer.

    Fingerprint + k-mer branches: on the Davis validation fold (4-minute CPU pilots) they matched or
    beat the SMILES-CNN variant epoch for epoch (val CI 0.866 vs 0.857 after 8 epochs) at a fraction
    of the cost; ``--set net.compound=cnn --set net.protein=cnn`` gives the original two-CNN DeepDTA
    (with ``net.head=concat``).

    ``fp_counts``: Morgan *count* fingerprint, ``log1p``-scaled, instead of bits.
    ``kmer_pca``: standardise the 8,420 k-mer features and keep this many principal components
    fitted on the training proteins (0 = raw features).
    ``head``: ``concat`` (DeepDTA) | ``interaction`` (``[d, p, d * p]``, see :mod:`medlearn.cpi.nets`).
    ``tower_dim`` / ``tower_hidden``: code width / hidden width of the fingerprint and k-mer MLPs
    (``tower_dim`` 0 = ``3 * filters``, the CNN code width).

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

    compound: str = "fingerprint"
    protein: str = "kmer"
    embed_dim: int = 128
    filters: int = 32
    compound_kernel: int = 8
    protein_kernel: int = 12
    protein_pool: int = 1
    hidden: tuple[int, ...] = (512, 128)
    dropout: float = 0.1
    n_bits: int = 1024
    fp_counts: bool = True
    kmer_pca: int = 256
    head: str = "concat"
    tower_dim: int = 256
    tower_hidden: int = 512
    max_smiles_len: int = 100
    max_protein_len: int = 1200


@dataclass
class CPITrainSettings:
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    max_epochs: int = 200
    patience: int = 20
    max_time_minutes: float = 25.0  # shared equally by the ensemble members
    protein_mix: int = 0  # 0 = random batches; k > 0: windows of batch_size * k pairs -> fewer proteins per batch
    val_fraction: float = 0.1  # CSV without a split column: random validation share
    test_fraction: float = 0.1  # ... and test share
    val_fold: int = 4  # Davis/KIBA: which DeepDTA training fold is the validation fold
    lr_schedule: str = "plateau"  # none | plateau (halve the lr after lr_patience epochs without progress)
    lr_patience: int = 5
    ensemble: int = 5  # deep ensemble (Lakshminarayanan et al. 2017): members with seeds seed, seed+1, ...
    threads: int = 0  # torch CPU threads (0 = every core this process may use)


@dataclass
class CPIPlan(Plan):
    """``task``: regression | classification | auto (0/1 values -> classification)."""

    task: str = "auto"
    net: CPINetSettings = field(default_factory=CPINetSettings)
    train: CPITrainSettings = field(default_factory=CPITrainSettings)

    def __post_init__(self) -> None:
        if self.task not in ("auto", "regression", "classification"):
            raise InputError("--set task", f"unknown task '{self.task}'", "regression | classification | auto")
        if self.net.compound not in ("cnn", "fingerprint"):
            raise InputError("--set net.compound", f"unknown compound branch '{self.net.compound}'",
                             "cnn | fingerprint")
        if self.net.protein not in ("cnn", "kmer"):
            raise InputError("--set net.protein", f"unknown protein branch '{self.net.protein}'", "cnn | kmer")
        if self.net.head not in ("concat", "interaction"):
            raise InputError("--set net.head", f"unknown head '{self.net.head}'", "concat | interaction")
        if self.net.kmer_pca < 0 or self.net.tower_dim < 0 or self.net.tower_hidden < 1:
            raise InputError("--set net", "kmer_pca and tower_dim must be >= 0, tower_hidden >= 1")
        if self.train.lr_schedule not in ("none", "plateau"):
            raise InputError("--set train.lr_schedule", f"unknown schedule '{self.train.lr_schedule}'",
                             "none | plateau")
        if self.train.ensemble < 1:
            raise InputError("--set train.ensemble", f"must be >= 1, got {self.train.ensemble}")
        if self.train.threads < 0:
            raise InputError("--set train.threads", f"must be >= 0, got {self.train.threads}")
