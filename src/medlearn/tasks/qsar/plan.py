"""QSAR plan: every choice of a run (saved as ``plan.json``, printed before training), and its rules.

Sections: ``data`` (decided by the data and the CLI's reading options: read-only), ``features``
(what the molecules become), ``network`` (``name``: ``auto`` or one model; the networks' and forests'
sizes) and ``train`` (the shared training settings). Everything outside ``data`` is overridable with
``--set section.field=value`` or a ``--plan`` YAML.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from medlearn.errors import InputError
from medlearn.plan import NetworkSection, Plan, TrainSection, setting

NEURAL = ("dnn", "mpnn")
BASELINES = ("rf", "et", "hgb", "svm", "nb", "dt", "knn", "linear")
MODELS = ("auto", *NEURAL, *BASELINES)
#: molecules whose forests give way to histogram gradient boosting in ``auto`` (see :func:`auto_candidates`)
LARGE_TRAINING_SET = 10_000


@dataclass
class QSARData:
    """What the data and the CLI options decided (read-only: change the data or the options instead)."""

    source: str = setting("", help="read-only: the CSV trained on")
    smiles_column: str = setting("smiles", help="read-only (--smiles)")
    targets: list[str] = setting(factory=list, help="read-only (--target): the columns, in order")
    task_type: Literal["regression", "classification"] = setting("regression", help="read-only (--task, or "
                                                                                    "inferred: labels all 0/1)")
    split: str = setting("random", help="read-only (--split): random | scaffold | stratified | a .json")
    sizes: dict[str, int] = setting(factory=dict, help="read-only: molecules per split")
    invalid_rows: list[int] = setting(factory=list, help="read-only: CSV rows whose SMILES RDKit cannot parse")


@dataclass
class FeatureSection:
    kinds: list[Literal["morgan", "morgan_count", "rdkit2d"]] = setting(
        factory=lambda: ["morgan_count", "rdkit2d"], help="feature blocks, concatenated (Morgan bits / counts, "
                                                          "RDKit 2D descriptors)")
    radius: int = setting(2, min=0, max=6, help="Morgan radius (2 = ECFP4)")
    n_bits: int = setting(2048, min=8, help="Morgan fingerprint length")


@dataclass
class DNNSection:
    """The multitask DNN (Ma et al., J. Chem. Inf. Model. 2015)."""

    hidden: list[int] = setting(factory=lambda: [512, 256], min=1, help="hidden layer widths")
    dropout: float = setting(0.2, min=0, max=0.9, help="dropout before every linear layer")


@dataclass
class MPNNSection:
    """The D-MPNN (Yang et al., J. Chem. Inf. Model. 2019), chemprop's defaults."""

    hidden: int = setting(300, min=1, help="message width")
    depth: int = setting(3, min=1, max=10, help="message passing steps")
    ffn_hidden: int = setting(300, min=1)
    ffn_layers: int = setting(1, min=0, max=5)
    dropout: float = setting(0.0, min=0, max=0.9)
    batch_size: int = setting(50, min=1)
    weight_decay: float = setting(0.0, min=0)
    max_epochs: int = setting(50, min=1, help="cap on train.max_epochs for the D-MPNN")


@dataclass
class QSARNetwork(NetworkSection):
    name: str = setting("auto", help="auto (candidates chosen on val) | dnn | mpnn | rf | et | hgb | svm | nb | dt "
                                     "| knn | linear")
    candidates: list[str] | None = setting(None, help="auto: the models tried (None: by the rule on the training "
                                                      "set's size and task count)")
    n_estimators: int = setting(200, min=1, help="trees of rf / et")
    dnn: DNNSection = field(default_factory=DNNSection)
    mpnn: MPNNSection = field(default_factory=MPNNSection)


@dataclass
class QSARTrain(TrainSection):
    max_epochs: int = setting(100, min=1, help="upper bound on epochs of the neural models")
    patience: int | None = setting(15, min=1, help="epochs without validation progress before a neural model "
                                                   "stops (None: no early stopping)")
    ensemble: int = setting(1, min=1, max=64, help="dnn / mpnn: members seeded seed..seed+n-1, averaged (their "
                                                   "spread = uncertainty); not used by auto or the baselines")
    checkpoint: Literal["best_val", "final"] = setting("best_val", help="best_val: a neural model keeps its best "
                                                                        "epoch on the validation score (early "
                                                                        "stopping after train.patience); final: "
                                                                        "the weights after train.max_epochs")
    batch_size: int = setting(64, min=1, help="DNN batch size")
    lr: float = setting(1e-3, min=0, exclusive_min=True, help="AdamW learning rate (DNN and D-MPNN)")
    weight_decay: float = setting(1e-4, min=0, help="DNN AdamW weight decay")


@dataclass
class QSARPlan(Plan):
    data: QSARData = field(default_factory=QSARData)
    features: FeatureSection = field(default_factory=FeatureSection)
    network: QSARNetwork = field(default_factory=QSARNetwork)
    train: QSARTrain = field(default_factory=QSARTrain)

    def apply_overrides(self, overrides: dict[str, Any], source: str = "--set") -> QSARPlan:
        fixed = [k for k in overrides if k == "data" or k.startswith("data.")]
        if fixed:
            raise InputError(source, f"'{fixed[0]}' is decided by the data and the CLI options",
                             "use --split / --seed / --target / --task / --smiles instead")
        return super().apply_overrides(overrides, source)

    def check(self) -> None:
        if self.network.name not in MODELS:
            raise InputError("network.name", f"unknown model '{self.network.name}'", f"choose from {', '.join(MODELS)}")
        unknown = [c for c in self.network.candidates or [] if c not in MODELS[1:]]
        if unknown:
            raise InputError("network.candidates", f"unknown model(s) {unknown}",
                             f"choose from {', '.join(MODELS[1:])}")
        if not self.features.kinds:
            raise InputError("features.kinds", "needs at least one feature kind", "e.g. [morgan_count, rdkit2d]")
        if self.data.task_type == "regression" and "nb" in self.models():
            raise InputError("network.name", "naive Bayes (nb) is for classification only",
                             "choose another model for regression")

    @property
    def is_classification(self) -> bool:
        return self.data.task_type == "classification"

    def models(self) -> list[str]:
        """The models this plan trains: auto's candidates, or the one chosen."""
        if self.network.name != "auto":
            return [self.network.name]
        if self.network.candidates:
            return list(self.network.candidates)
        return auto_candidates(self.data.sizes.get("train", 0), len(self.data.targets))


def auto_candidates(n_train: int, n_tasks: int) -> list[str]:
    """The models ``auto`` tries, from the training set's size and task count.

    Rules (cost-driven, fixed before any benchmark; kept since they won 6 of 7 MoleculeNet sets against
    chemprop v2 in less CPU time, ``benchmarks/results/qsar_moleculenet.md``): the multitask DNN always;
    for <= 2 tasks also extra trees, a random forest and gradient boosting, since those fit one model per
    task; for more tasks only the forest besides the DNN. Above 10,000 training molecules the forests
    (cost ~ n log n per tree) give way to histogram gradient boosting (HIV, 33k: ``qsar_scale.md``).
    """
    if n_train > LARGE_TRAINING_SET:
        return ["hgb", "dnn"]
    return ["et", "rf", "hgb", "dnn"] if n_tasks <= 2 else ["rf", "dnn"]


def plan_qsar(source: str, smiles_column: str, targets: list[str], task_type: str, split: str,
              sizes: dict[str, int], invalid_rows: list[int]) -> QSARPlan:
    """The default plan for a dataset: its data section filled, ``auto``'s candidates by the rule."""
    plan = QSARPlan(data=QSARData(source, smiles_column, list(targets), task_type, split, dict(sizes),  # type: ignore[arg-type]
                                  list(invalid_rows)))
    plan.network.candidates = auto_candidates(sizes.get("train", 0), len(targets))
    return plan
