"""Classification plan: the rules from fingerprint to every training choice, all overridable."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from medlearn.plan import NetworkSection, Plan, TrainSection, setting


@dataclass
class DataSection:
    resize: list[int] | None = setting(None, min=4, help="resample every image to this spatial size (None: keep)")
    normalization: Literal["zscore", "unit", "ct", "none"] = setting("zscore", help="intensity normalisation")
    mean: float | None = setting(None, help="filled from the training split")
    std: float | None = setting(None, help="filled from the training split")
    val_fraction: float = setting(0.1, min=0, max=0.5, help="used only when the data define no val split")
    test_fraction: float = setting(0.2, min=0, max=0.5, help="used only when the data define no splits at all")


@dataclass
class ClassificationNetwork(NetworkSection):
    name: str = setting("resnet18", help="resnet18 | resnet10 | resnet34 | smallcnn | mlp | densenet121 ...")
    widths: list[int] | None = setting(None, min=1, help="channel widths per stage (None: the network's own)")
    dropout: float = setting(0.2, min=0, max=0.9, help="dropout before the head")
    init: Literal["kaiming", "xavier", "default"] = setting("kaiming", help="weight initialisation")


@dataclass
class AugmentSection:
    level: Literal["none", "light", "medium", "heavy"] = setting("medium", help="augmentation strength")
    flip: bool = setting(True, help="random flips along the in-plane axes")
    rotate_degrees: float = setting(15.0, min=0, max=180)
    scale: float = setting(0.1, min=0, max=0.9)
    translate: float = setting(0.1, min=0, max=0.5)
    elastic: bool = setting(False, help="elastic deformation (heavy level)")
    noise_std: float = setting(0.05, min=0)
    contrast: float = setting(0.2, min=0, max=0.9)
    erase_prob: float = setting(0.25, min=0, max=1, help="random erasing (Zhong et al. 2020)")
    mixup: float = setting(0.0, min=0, help="mixup (Zhang et al. 2018) Beta(a, a) parameter; 0 = off")


@dataclass
class ClassificationTrain(TrainSection):
    batch_size: int = setting(64, min=1)
    max_epochs: int = setting(60, min=1)
    patience: int | None = setting(20, min=1)
    lr: float = setting(2e-3, min=0, exclusive_min=True)
    weight_decay: float = setting(5e-4, min=0)
    optimizer: Literal["adamw", "sgd"] = "adamw"
    scheduler: Literal["cosine", "none"] = "cosine"
    label_smoothing: float = setting(0.0, min=0, max=0.5)
    ema_decay: float | None = setting(None, min=0, max=1, help="exponential moving average of weights (None: off)")
    monitor: Literal["val_auc", "val_loss", "val_acc", "train_loss"] = setting(
        "val_auc", help="validation metric for early stopping and the best checkpoint")
    # best_val: the checkpoint best on the monitored validation metric (early stopping after `patience`);
    # final: the weights at the end of the full schedule (no early stopping; validation only reports);
    # auto: final for ensemble members, best_val for a single model (ClassificationPlan.final_weights)
    checkpoint: Literal["auto", "best_val", "final"] = setting("auto", help="auto | best_val | final")
    # learn from the validation images too (final weights only: nothing is then selected on them, and
    # their metrics are no longer unseen-data estimates); auto: whenever the weights are final
    train_on_val: bool | Literal["auto"] = setting("auto", help="members also train on the val images (auto: "
                                                                "with final weights)")
    max_minutes: float | None = setting(30.0, min=0, exclusive_min=True, help="wall-clock budget of the training")
    accelerator: Literal["auto", "cpu", "gpu"] = "auto"


@dataclass
class ImbalanceSection:
    ratio: float = setting(1.0, help="majority/minority count in the training split (reported)")
    strategy: Literal["none", "weighted_loss", "oversample"] = "none"


@dataclass
class PatientSection:
    # mean / max: the mean (max) of the patient's image probabilities, nothing trained;
    # learned_mean / learned_max: a linear head trained on the mean- (max-) pooled image embeddings;
    # gru: a GRU over the patient's ordered image embeddings (Zhou et al.)
    aggregation: Literal["none", "mean", "max", "learned_mean", "learned_max", "gru"] = setting(
        "none", help="patient-level prediction from the images of a patient")
    epochs: int = setting(100, min=1, help="training epochs of a learned aggregation")


@dataclass
class ClassificationPlan(Plan):
    task: Literal["binary", "multiclass", "multilabel", "ordinal"] = "binary"
    label_names: list[str] = field(default_factory=list)
    spatial_dims: int = setting(2, min=2, max=3)
    in_channels: int = setting(1, min=1)
    input_size: list[int] = field(default_factory=list)
    tta: bool | Literal["auto"] = setting("auto", help="average flipped views at prediction; auto: for ensembles")
    data: DataSection = field(default_factory=DataSection)
    network: ClassificationNetwork = field(default_factory=ClassificationNetwork)
    augment: AugmentSection = field(default_factory=AugmentSection)
    train: ClassificationTrain = field(default_factory=ClassificationTrain)
    imbalance: ImbalanceSection = field(default_factory=ImbalanceSection)
    patient: PatientSection = field(default_factory=PatientSection)

    def check(self) -> None:
        from medlearn.errors import InputError

        if self.learns_from_val and not self.final_weights:
            raise InputError("train.train_on_val", "needs final weights (nothing may be selected on images "
                             "trained on)", "set train.checkpoint=final or train.train_on_val=false")
        if self.data.resize is not None and self.input_size and len(self.data.resize) != self.spatial_dims:
            raise InputError("data.resize", f"needs {self.spatial_dims} sizes for {self.spatial_dims}D images, "
                             f"got {self.data.resize}")

    @property
    def final_weights(self) -> bool:
        """Members keep their end-of-schedule weights: ``train.checkpoint`` final, or auto with an ensemble.

        Resolved here, where it is used, so overriding ``train.ensemble`` alone changes it too. Why
        ensembles: with ~100 validation images each member's best-epoch pick fits the noise of that pick
        (BreastMNIST 5-fold CV on train+val, pooled out-of-fold AUC of the 5-member ensemble: best-val
        .877, final .887, 4 of 5 folds better).
        """
        checkpoint = self.train.checkpoint
        return checkpoint == "final" or (checkpoint == "auto" and self.train.ensemble > 1)

    @property
    def learns_from_val(self) -> bool:
        """The members also train on the validation images: ``train.train_on_val``, or auto with final weights.

        With final weights nothing is selected on validation, so holding it out only costs data (nnU-Net's
        "all" fold does the same). BreastMNIST 5-fold CV on train+val (folds 0-2, the same folds and member
        seeds, the held-out fold never trained on): flip-TTA AUC .839/.920/.888 -> .868/.921/.922 (pooled
        .879 -> .902), ACC .800/.856/.816 -> .832/.832/.848 (pooled .824 -> .837).
        """
        if self.train.train_on_val == "auto":
            return self.final_weights
        return bool(self.train.train_on_val)

    @property
    def flip_tta(self) -> bool:
        """Average predictions over flipped views: asked for (``tta``; auto: ensembles, as final + flips
        gave .891 in the same CV) and learnt (training flips)."""
        wanted = self.train.ensemble > 1 if self.tta == "auto" else bool(self.tta)
        return wanted and self.augment.flip

    @property
    def num_outputs(self) -> int:
        """Head width: K logits, except ordinal (K-1 cumulative logits, Cao et al. 2020)."""
        return len(self.label_names) - 1 if self.task == "ordinal" else len(self.label_names)


# Input size above which a CPU run resamples 2D images (a 1024^2 X-ray costs ~200x a 64^2 one).
CPU_MAX_2D_SIDE = 256
CPU_MAX_3D_SIDE = 96


def plan_classification(fingerprint: dict[str, Any], n_train: int, train_class_counts: list[int],
                        has_patients: bool = False, gpu: bool = False) -> ClassificationPlan:
    """Rules (documented inline) from the dataset fingerprint and the machine to a plan."""
    dims = int(fingerprint["spatial_dims"])
    size = list(fingerprint["shape"])
    plan = ClassificationPlan(task=fingerprint["task"], label_names=list(fingerprint["labels"]), spatial_dims=dims,
                              in_channels=int(fingerprint["channels"]), input_size=size)
    # Resolution: CPU budgets cannot afford full-size radiographs; resample the longest side down.
    limit = CPU_MAX_2D_SIDE if dims == 2 else CPU_MAX_3D_SIDE
    if not gpu and max(size) > limit:
        factor = limit / max(size)
        plan.data.resize = [max(8, int(round(s * factor))) for s in size]
        plan.input_size = list(plan.data.resize)
    side = max(plan.input_size)
    # Intensity: CT (Hounsfield range) gets a window; 8-bit images are z-scored on train statistics.
    lo, hi = fingerprint["intensity"]["min"], fingerprint["intensity"]["max"]
    plan.data.normalization = "ct" if lo < -500 and hi > 500 else "zscore"
    # Network from input size: tiny vectors -> MLP; small images -> narrow ResNet-18 with CIFAR stem;
    # larger 2D -> ResNet-18; 3D -> narrow ResNet-10 (compute grows with the cube of the side).
    if side <= 8:
        plan.network.name, plan.network.widths = "mlp", None
    elif dims == 2:
        plan.network.name = "resnet18"
        # CPU: quarter-width ResNet-18 up to 32 px (MedMNIST), half width up to 64 px.
        plan.network.widths = None if gpu or side > 64 else [16, 32, 64, 128] if side <= 32 else [32, 64, 128, 256]
    else:
        plan.network.name = "resnet10"
        plan.network.widths = [32, 64, 128, 256] if not gpu else None
    # Batch size: 64 up to 64x64 pixels, then shrinking with sqrt(pixels), a power of two >= 4
    # (activation memory and step time grow with pixels; 224^2 -> 16, 64^3 -> 8).
    pixels = math.prod(plan.input_size)
    raw = 64 * (64 * 64 / max(pixels, 1)) ** 0.5
    plan.train.batch_size = int(max(4, min(64, 2 ** round(math.log2(max(raw, 1e-9))))))
    plan.train.batch_size = min(plan.train.batch_size, max(8, n_train // 4))
    # Small sets: a deep ensemble of 5 (variance, not bias, dominates below ~2000 images; Lakshminarayanan
    # et al. 2017 use 5). More members stopped paying there: BreastMNIST CV on train+val (3 folds, the
    # same members' out-of-fold predictions pooled, flip TTA), AUC 1 member .854, 3 .878, 5 .879, 7 .881, 10 .879.
    # Label smoothing 0.1 for the members was tried and not kept: the same CV gave AUC .879 -> .886 and ACC
    # .824 -> .829, but on the official val split accuracy fell over three seeds (.910/.910/.923 ->
    # .910/.897/.872) while AUC moved +.002, so the evidence on accuracy is mixed. Mixup 0.2 (augment.mixup) is
    # not a default either: same CV, folds 0-2, flip AUC .829/.914/.880 vs .839/.920/.888, ACC .800/.824/.848 vs
    # .800/.856/.816.
    # Epochs: ~400 optimisation steps per member, or ~1200 for a single model (a CPU budget of minutes),
    # 10..100 epochs.
    plan.train.ensemble = 5 if n_train < 2000 else 1
    steps_per_epoch = max(1, -(-n_train // plan.train.batch_size))
    member_steps = 400 if plan.train.ensemble > 1 else 1200
    plan.train.max_epochs = int(min(100, max(10, round(member_steps / steps_per_epoch))))
    plan.train.patience = max(10, plan.train.max_epochs // 4)
    # Weight EMA (Polyak averaging) smooths the noisy late-training weights small val sets select from;
    # its horizon (1 / (1 - decay)) is ~5% of all steps.
    total_steps = steps_per_epoch * plan.train.max_epochs
    plan.train.ema_decay = round(min(0.999, max(0.9, 1 - 1 / max(10, 0.05 * total_steps))), 4)
    # Checkpoint and flip TTA stay "auto": ensembles keep their members' final weights and average flipped
    # views, a single model keeps its best-validation checkpoint (see final_weights and flip_tta).
    # Augmentation: more for small data; elastic deformation only for larger images (meaningless at 28 px).
    plan.augment.level = "heavy" if n_train < 1000 else "medium"
    plan.augment.elastic = side >= 64
    # Class imbalance: weight the loss from ratio 3, oversample from ratio 10 (imbalance ratio = majority/minority).
    counts = [c for c in train_class_counts if c > 0]
    ratio = (max(counts) / min(counts)) if counts else 1.0
    plan.imbalance.ratio = round(float(ratio), 3)
    if plan.task != "multilabel":
        plan.imbalance.strategy = "oversample" if ratio >= 10 else "weighted_loss" if ratio >= 3 else "none"
    # Patients: the plain mean of a patient's image probabilities (nothing more to fit on small cohorts;
    # the learned poolings are options, not measured against it on a real cohort here).
    plan.patient.aggregation = "mean" if has_patients else "none"
    return plan


def steps_per_member(plan: ClassificationPlan, n_train: int) -> int:
    """Optimisation steps one member makes over its whole schedule."""
    return max(1, -(-n_train // plan.train.batch_size)) * plan.train.max_epochs


def fit_to_budget(plan: ClassificationPlan, n_train: int, step_seconds: float, workers: int,
                  echo: Any = None) -> ClassificationPlan:
    """Shrink the schedule until the plan's training fits ``train.max_minutes`` on this machine.

    ``step_seconds``: one training step of one member, measured here at planning with the threads a member
    will have (a laptop differs from the machine the defaults were tuned on). The rules above ask for a
    number of steps (their evidence); when the budget cannot buy them, epochs shrink first (down to 10),
    then the ensemble (members train ``workers`` at a time), and the plan says by how much it will be
    short of its evidence.
    """
    budget = plan.train.max_minutes
    if not budget or step_seconds <= 0:
        return plan
    rounds = lambda members: -(-members // max(1, workers))  # noqa: E731
    per_member = steps_per_member(plan, n_train)
    minutes = rounds(plan.train.ensemble) * per_member * step_seconds / 60
    if minutes <= budget:
        return plan
    wanted_epochs, wanted_members = plan.train.max_epochs, plan.train.ensemble
    fit_epochs = int(plan.train.max_epochs * budget / minutes)
    if fit_epochs >= 10:
        plan.train.max_epochs = fit_epochs
    else:
        plan.train.max_epochs = min(plan.train.max_epochs, 10)
        per_member = steps_per_member(plan, n_train)
        affordable = int(budget * 60 / (per_member * step_seconds))
        # a single member then keeps its best-validation checkpoint (train.checkpoint auto)
        plan.train.ensemble = max(1, min(plan.train.ensemble, affordable * max(1, workers)))
    plan.train.patience = max(5, plan.train.max_epochs // 4)
    if echo is not None:
        echo(f"note: {wanted_members} member(s) x {wanted_epochs} epochs would take ~{minutes:.0f} min here "
             f"({step_seconds * 1000:.0f} ms per step), over the {budget:g}-min budget: planned "
             f"{plan.train.ensemble} member(s) x {plan.train.max_epochs} epochs instead (raise train.max_minutes "
             "to train as the defaults' evidence asks)")
    return plan
