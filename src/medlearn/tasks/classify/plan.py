"""Classification plan: the rules from fingerprint to every training choice, all overridable."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from medlearn.plan import Plan


@dataclass
class DataSection:
    resize: list[int] | None = None  # resample every image to this spatial size (None: keep)
    normalization: Literal["zscore", "unit", "ct", "none"] = "zscore"
    mean: float | None = None  # filled from the training split
    std: float | None = None
    val_fraction: float = 0.1  # used only when the data define no val split
    test_fraction: float = 0.2  # used only when the data define no splits at all


@dataclass
class ModelSection:
    network: str = "resnet18"
    widths: list[int] | None = None
    dropout: float = 0.2
    init: Literal["kaiming", "xavier", "default"] = "kaiming"


@dataclass
class AugmentSection:
    level: Literal["none", "light", "medium", "heavy"] = "medium"
    flip: bool = True
    rotate_degrees: float = 15.0
    scale: float = 0.1
    translate: float = 0.1
    elastic: bool = False
    noise_std: float = 0.05
    contrast: float = 0.2
    erase_prob: float = 0.25  # random erasing (Zhong et al. 2020)
    # mixup (Zhang et al. 2018): train on convex mixtures of two images and of their losses, with the
    # weight drawn from Beta(mixup, mixup); 0 = off
    mixup: float = 0.0


@dataclass
class TrainSection:
    batch_size: int = 64
    max_epochs: int = 60
    patience: int | None = 20
    lr: float = 2e-3
    weight_decay: float = 5e-4
    optimizer: Literal["adamw", "sgd"] = "adamw"
    scheduler: Literal["cosine", "none"] = "cosine"
    label_smoothing: float = 0.0
    ema_decay: float | None = None  # exponential moving average of weights (None: off)
    # members trained with seeds seed..seed+n-1 (side by side on CPU cores); probabilities averaged
    ensemble: int = 1
    monitor: str = "val_auc"
    # best_val: the checkpoint best on the monitored validation metric (early stopping after `patience`);
    # final: the weights at the end of the full schedule (no early stopping; validation only reports);
    # auto: final for ensemble members, best_val for a single model (ClassificationPlan.final_weights)
    checkpoint: Literal["auto", "best_val", "final"] = "auto"
    # learn from the validation images too (final weights only: nothing is then selected on them, and
    # their metrics are no longer unseen-data estimates); auto: whenever the weights are final
    # (ClassificationPlan.learns_from_val)
    train_on_val: bool | Literal["auto"] = "auto"
    max_minutes: float | None = None
    devices: int | None = None
    accelerator: Literal["auto", "cpu", "gpu"] = "auto"


@dataclass
class ImbalanceSection:
    ratio: float = 1.0  # majority/minority count in the training split (reported)
    strategy: Literal["none", "weighted_loss", "oversample"] = "none"


@dataclass
class PatientSection:
    aggregation: Literal["none", "mean", "max", "gru"] = "none"
    epochs: int = 100


@dataclass
class ClassificationPlan(Plan):
    task: Literal["binary", "multiclass", "multilabel", "ordinal"] = "binary"
    label_names: list[str] = field(default_factory=list)
    spatial_dims: int = 2
    in_channels: int = 1
    input_size: list[int] = field(default_factory=list)
    seed: int = 0
    tta: bool | Literal["auto"] = "auto"  # average flipped views at prediction; auto: for ensembles
    data: DataSection = field(default_factory=DataSection)
    model: ModelSection = field(default_factory=ModelSection)
    augment: AugmentSection = field(default_factory=AugmentSection)
    train: TrainSection = field(default_factory=TrainSection)
    imbalance: ImbalanceSection = field(default_factory=ImbalanceSection)
    patient: PatientSection = field(default_factory=PatientSection)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "plan") -> ClassificationPlan:
        train = data.get("train")
        if isinstance(train, dict) and "train_on_val" not in train:
            # a plan written before the field: its members held the validation images out
            data = {**data, "train": {**train, "train_on_val": False}}
        return super().from_dict(data, source)

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
        plan.model.network, plan.model.widths = "mlp", None
    elif dims == 2:
        plan.model.network = "resnet18"
        # CPU: quarter-width ResNet-18 up to 32 px (MedMNIST), half width up to 64 px.
        plan.model.widths = None if gpu or side > 64 else [16, 32, 64, 128] if side <= 32 else [32, 64, 128, 256]
    else:
        plan.model.network = "resnet10"
        plan.model.widths = [32, 64, 128, 256] if not gpu else None
    # Batch size: 64 up to 64x64 pixels, then shrinking with sqrt(pixels), a power of two >= 4
    # (activation memory and step time grow with pixels; 224^2 -> 16, 64^3 -> 8).
    pixels = 1
    for s in plan.input_size:
        pixels *= s
    raw = 64 * (64 * 64 / max(pixels, 1)) ** 0.5
    plan.train.batch_size = int(max(4, min(64, 2 ** round(_log2(raw)))))
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
    plan.patient.aggregation = "mean" if has_patients else "none"
    plan.train.monitor = "val_auc"
    return plan


def _log2(x: float) -> float:
    import math

    return math.log2(max(x, 1e-9))
