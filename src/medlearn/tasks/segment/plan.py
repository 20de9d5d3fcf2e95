"""Segmentation plan: fingerprint + machine -> every training choice, as nnU-Net does.

The rules follow nnU-Net (Isensee et al., Nat. Methods 2021) scaled to a CPU budget:

- target spacing: the median spacing of the training cases (no resampling for 2D rasters);
- normalisation per channel: CT -> clip to the foreground 0.5/99.5 percentiles + global z-score;
  everything else (MR, RGB fundus, EM) -> per-image z-score inside the ROI mask (or the whole image);
  voxels outside the ROI are set to 0 so the network never has to model the black frame;
- patch size: the median image shape, capped by a voxel budget (CPU: 128^2 in 2D, 64^3 in 3D);
  batch size from a second budget (patch voxels x batch);
- topology: halve the patch until the bottleneck is >= 8 voxels (at most 4 poolings on CPU), features
  doubling from 16 up to 256; a 2D U-Net gets a first stage at full resolution (16 features, stride 1),
  as the original U-Net and nnU-Net have and MONAI's UNet does not. A step costs ~1.7x, but the 2D
  models are not short of steps (see bf16 below). DRIVE validation (4 unseen images, 30 min, two
  members): AUC .9739 vs .9731-.9733 without it (single models .9726 vs .9721); DRIVE test, two
  members: AUC .9798 -> .9803, F1 .8248 -> .8260. With a third of the budget it does not catch up: ISBI
  EM at 10 min, F1 .8134 -> .8091. 3D keeps its first stage strided (a full-resolution 3D stage costs
  ~8x the voxels);
- loss: Dice + cross-entropy (masked to the ROI); foreground oversampling 1/3 of the patches;
- augmentation: flips and 90-degree rotations in-plane, plus light affine, intensity and noise;
  2D datasets with fewer than SMALL_DATASET_CASES training cases also get elastic deformation and
  random erasing (the U-Net paper's remedy for few annotated images, Ronneberger et al. 2015;
  chosen on DRIVE validation images; 3D is unmeasured, so it keeps the default level);
- optimiser Adam 1e-3 with polynomial decay over the time budget (30 min on CPU); an "epoch" (one
  validation + checkpoint) is 250 steps in 2D, 100 in 3D; the model is an exponential moving average
  of the weights (Polyak & Juditsky 1992) with a warm-up, so it suits short and long budgets alike;
  before a new run the engine times a few steps here and warns when the budget buys fewer than 80% of
  the steps the defaults' evidence made in it (``EVIDENCE_STEPS_PER_MINUTE``: DRIVE 2D ~7200 per member
  in 30 min, 3D brain 637 in 15 min on this project's CPU);
- datasets with fewer than SMALL_DATASET_CASES cases train the final model on the validation cases too
  (nnU-Net's "all" fold): DRIVE validation lost AUC .0021 / F1 .0095 when 4 of 16 training images were
  removed, so a 20% hold-out costs more than the unseen-case monitoring it buys; validation then reports
  on seen cases (``seen_in_training`` in the metrics) and only monitors and picks post-processing;
- datasets with fewer than SMALL_DATASET_CASES 2D cases, on a machine with >= 2 cores, train an ensemble of
  2 members (seeds ``seed`` and ``seed + 1``) side by side, one process per core, each for the whole time
  budget; prediction averages their logits (one ONNX graph). A small 2D U-Net uses a second core poorly,
  so the core buys a second model instead (Lakshminarayanan et al. 2017, deep ensembles). DRIVE
  validation (4 unseen images, 30-min models): pooled AUC .9720 for one model, .9731-.9733 for two;
  four float32 members of 15 min each (two rounds) reached only .9725; DRIVE test AUC .9789 -> .9798;
- ``train.precision=bf16`` runs the network's forward in bfloat16 autocast (weights, optimiser and loss
  stay float32): ~1.5x the 2D U-Net steps per second on a CPU with native bfloat16 (AVX512-BF16 / AMX,
  this project's). It is not a default because the extra steps bought no quality: DRIVE validation, one
  U-Net for 30 min, AUC .9718 in bf16 (16 373 steps) vs .9721 in float32 (10 772); 4 bf16 members of
  15 min, .9735 / F1 .7878 on validation and test AUC .9798 / F1 .8243, the same as the 2 float32
  members (.9798 / .8248).
- colour photographs can use ``clahe`` normalisation (local contrast equalisation before the z-score);
  it is not a default: on DRIVE validation it matched plain z-scoring (AUC .9717 vs .9714, F1 .7797 vs .7811).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from medlearn.imaging.preprocess import PreprocessingSection
from medlearn.nets.segmentation import SEGMENTATION_NETWORKS, required_divisor
from medlearn.plan import NetworkSection, Plan, TrainSection, setting

Normalization = Literal["zscore", "clahe", "ct", "none"]


@dataclass
class SegmentationNetwork(NetworkSection):
    name: str = setting("unet", help=" | ".join(SEGMENTATION_NETWORKS))
    channels: list[int] = setting(factory=lambda: [16, 32, 64, 128, 256], min=1, help="features per stage")
    strides: list[int] = setting(factory=lambda: [2, 2, 2, 2], min=1, help="down-sampling per stage (1: none)")
    dropout: float = setting(0.0, min=0, max=0.9, help="dropout (sa_unet: its DropBlock fraction)")


@dataclass
class SegmentationTrain(TrainSection):
    patch_size: list[int] = setting(factory=lambda: [128, 128], min=8, help="training patch (voxels per axis)")
    batch_size: int = setting(8, min=1, help="patches per step")
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = setting(1e-3, min=0, exclusive_min=True, help="initial learning rate")
    weight_decay: float = setting(0.0, min=0)
    lr_schedule: Literal["poly", "constant"] = setting("poly", help="poly: decay over the budget (steps or time)")
    max_minutes: float | None = setting(30.0, min=0, exclusive_min=True,
                                        help="wall-clock budget of the whole training (members share it)")
    max_epochs: int = setting(1000, min=1, help="upper bound on epochs of steps_per_epoch steps")
    steps_per_epoch: int = setting(250, min=1, help="steps between validations (and checkpoints)")
    val_fraction: float = setting(0.2, min=0, max=0.9, help="cases held out for validation")
    # the model also learns from the validation cases (nnU-Net's "all" fold): a 20% hold-out is a large
    # loss for a few dozen cases. Validation then monitors and chooses post-processing on seen cases.
    train_on_val_cases: bool = setting(False, help="members also train on the validation cases")
    foreground_oversampling: float = setting(0.33, min=0, max=1, help="share of patches centred on foreground")
    augmentation: Literal["none", "light", "default", "strong"] = "default"
    loss: Literal["dice_ce", "ce", "dice"] = "dice_ce"
    ema_decay: float | None = setting(None, min=0, max=1, help="exponential moving average of the weights "
                                                               "(None: off)")
    # which weights become the model: "final" (the end of the decayed schedule, as nnU-Net's
    # checkpoint_final) or "best_val" (the best validation Dice: a noisy pick with few validation cases)
    checkpoint: Literal["final", "best_val"] = setting("final", help="final | best_val (validation Dice)")
    # channels-last (NHWC / NDHWC) activations let oneDNN pick its fastest CPU convolutions:
    # ~10% (2D U-Net) to ~25% (3D) shorter training steps measured on this project's CPU
    memory_format: Literal["channels_last", "contiguous"] = "channels_last"
    # torch.compile of the training forward/backward: ~1.3x faster 2D U-Net steps on this project's CPU
    # after a ~45 s compile, so "auto" compiles only runs of >= COMPILE_MIN_STEPS planned steps
    compile: Literal["auto", "on", "off"] = setting("auto", help="torch.compile the training step (auto: 2D runs "
                                                                 "of >= 2000 planned steps)")


@dataclass
class InferenceSection:
    whole_image_max_voxels: int = setting(2_000_000, min=0, help="one fully convolutional pass when the image "
                                                                 "is smaller; else a sliding window")
    overlap: float = setting(0.5, min=0, max=0.95, help="sliding-window overlap")
    sw_batch_size: int = setting(4, min=1, help="windows per forward pass")
    mirror_tta: bool = setting(False, help="average over mirrored inputs (off on CPU: 4x / 8x the time)")
    largest_component: Literal["auto", "on", "off"] = setting("auto", help="keep each class's largest connected "
                                                                           "component (auto: chosen on validation)")
    engine: Literal["onnx", "torch"] = setting("onnx", help="onnx: ONNX Runtime (model.onnx), torch: PyTorch")


@dataclass
class SegmentationPlan(Plan):
    """Everything a segmentation training does, editable with ``--set section.field=value``."""

    dataset: str = ""
    ndim: int = setting(2, min=2, max=3)
    num_classes: int = setting(2, min=2)
    label_names: list[str] = field(default_factory=lambda: ["background", "foreground"])
    channel_names: list[str] = field(default_factory=list)
    file_ending: str = ".png"
    preprocessing: PreprocessingSection = field(default_factory=PreprocessingSection)
    network: SegmentationNetwork = field(default_factory=SegmentationNetwork)
    train: SegmentationTrain = field(default_factory=SegmentationTrain)
    inference: InferenceSection = field(default_factory=InferenceSection)

    @property
    def in_channels(self) -> int:
        return len(self.preprocessing.input_channels)

    @property
    def divisor(self) -> int:
        return required_divisor(self.network.name, self.network.strides)

    def check(self) -> None:
        """Refuse fields that contradict each other (after types and ranges), naming them."""
        from medlearn.errors import InputError

        if self.network.name not in SEGMENTATION_NETWORKS:
            raise InputError("network.name", f"unknown network '{self.network.name}'",
                             f"choose one of {', '.join(SEGMENTATION_NETWORKS)}")
        if len(self.train.patch_size) != self.ndim:
            raise InputError("train.patch_size", f"has {len(self.train.patch_size)} values for {self.ndim}D images")
        bad = [p for p in self.train.patch_size if p % self.divisor]
        if bad:
            raise InputError("train.patch_size", f"{self.train.patch_size} must be multiples of {self.divisor} "
                             f"for network {self.network.name} with strides {self.network.strides}")
        if len(self.network.channels) != len(self.network.strides) + 1 and self.network.name != "vnet":
            raise InputError("network.channels", f"needs len(strides)+1 = {len(self.network.strides) + 1} values, "
                             f"got {len(self.network.channels)}")
        if self.train.train_on_val_cases and self.train.checkpoint == "best_val":
            raise InputError("train.checkpoint", "best_val needs unseen validation cases",
                             "use train.checkpoint=final or train.train_on_val_cases=false")
        if len(self.label_names) != self.num_classes:
            raise InputError("label_names", f"{len(self.label_names)} names for {self.num_classes} classes")
        schemes = get_args(Normalization)
        unknown = [n for n in self.preprocessing.normalization if n not in schemes]
        if unknown or len(self.preprocessing.normalization) != len(self.preprocessing.input_channels):
            raise InputError("preprocessing.normalization", f"{self.preprocessing.normalization} needs one of "
                             f"{', '.join(schemes)} per input channel ({len(self.preprocessing.input_channels)})")


COMPILE_MIN_STEPS = 2000
# Weight EMA cap; with the warm-up (engine.trainer.warmup_ema) the average spans ~ the last 10% of a
# run, capped at ~2000 steps. DRIVE validation: pooled AUC .9720 / F1 .7844 vs .9714 / .7811 without.
EMA_DECAY = 0.9995
SMALL_DATASET_CASES = 50
ENSEMBLE_MEMBERS = 2  # for small 2D datasets, when as many cores are free to train them side by side


# Steps per member and minute behind the measured defaults (this project's 2-core CPU, OMP passive): the
# DRIVE default run (2D, two members side by side on one core each, 30 min) made 7215 / 7203 steps per
# member for test AUC .9804 / F1 .8265; the 3D brain run (one member on both cores, 15 min) made 637
# steps. A machine that buys fewer steps in the budget trains a weaker model (DRIVE on a CPU at half this
# speed: ~3300 steps per member, test F1 .786), so the engine warns before training when it will be short.
EVIDENCE_STEPS_PER_MINUTE = {2: 7200 / 30, 3: 637 / 15}


def planned_steps(train: SegmentationTrain) -> int:
    """Steps per member the schedule allows (``max_epochs * steps_per_epoch``)."""
    return train.max_epochs * train.steps_per_epoch


def evidence_steps(plan: SegmentationPlan) -> int:
    """Steps per member the defaults' evidence made in this plan's budget (at most the schedule's steps)."""
    t = plan.train
    if t.max_minutes is None:
        return planned_steps(t)
    return min(planned_steps(t), max(1, round(EVIDENCE_STEPS_PER_MINUTE[plan.ndim] * t.max_minutes)))


#: training steps per second of a compiled 2D U-Net over the eager one on this project's CPU (the ~1.3x of
#: the compile note above), used to read an eager timing at planning
COMPILE_SPEEDUP = 1.3


def should_compile(train: SegmentationTrain) -> bool:
    """Resolve ``train.compile``: "auto" compiles when the run is long enough to repay the compile time."""
    if train.compile != "auto":
        return train.compile == "on"
    long_budget = train.max_minutes is None or train.max_minutes >= 10
    # measured for 2D only: a 3D compile took minutes on one core and its gain is unmeasured
    return len(train.patch_size) == 2 and planned_steps(train) >= COMPILE_MIN_STEPS and long_budget


CPU_PATCH_VOXELS = {2: 128 * 128, 3: 64 * 64 * 64}
CPU_BATCH_VOXELS = {2: 8 * 128 * 128, 3: 2 * 64 * 64 * 64}


def plan_topology(patch_size: list[int], max_pools: int, base: int = 16, max_features: int = 256,
                  min_bottleneck: int = 8) -> tuple[list[int], list[int]]:
    """Channels and strides for a patch: pool while the smallest axis stays >= ``min_bottleneck``."""
    pools = 0
    smallest = min(patch_size)
    while pools < max_pools and smallest // 2 >= min_bottleneck:
        smallest //= 2
        pools += 1
    pools = max(1, pools)
    channels = [min(max_features, base * 2 ** i) for i in range(pools + 1)]
    return channels, [2] * pools


def with_full_resolution_stage(channels: list[int], strides: list[int]) -> tuple[list[int], list[int]]:
    """Prepend a stride-1 stage with the first stage's width to a MONAI ``UNet`` topology.

    MONAI's ``UNet`` strides its first block, so without it the finest features are at half the input
    resolution; the original U-Net (Ronneberger et al. 2015) and nnU-Net keep their first stage at full
    resolution, which structures one to three pixels wide (retinal capillaries, cell membranes) need.
    """
    return [channels[0], *channels], [1, *strides]


def plan_patch_size(median_shape: list[float], ndim: int, divisor_pools: int = 4) -> list[int]:
    """A patch within the CPU voxel budget: as cubic as the image allows, grown along long axes.

    Starts from the largest cube (square) of side a multiple of ``2**divisor_pools`` that fits the
    budget and the median shape; then lengthens the axes with the most room left while the budget
    allows (a 20 x 400 image gets a 16 x 400-ish patch, a 565 x 584 fundus 128 x 128).
    """
    budget = CPU_PATCH_VOXELS[ndim]
    unit = 2 ** divisor_pools
    shape = [float(s) for s in median_shape]
    side = max(unit, int(round(budget ** (1 / ndim))) // unit * unit)
    patch = [max(unit, min(side, int(s) // unit * unit)) for s in shape]
    limit = [max(unit, math.ceil(s / unit) * unit) for s in shape]
    while True:
        room = [(limit[i] - patch[i], i) for i in range(ndim) if patch[i] + unit <= limit[i]]
        room = [(r, i) for r, i in room if math.prod(patch) // patch[i] * (patch[i] + unit) <= budget * 1.05]
        if not room:
            return patch
        patch[max(room)[1]] += unit


def make_plan(fingerprint: dict[str, Any], dataset: str = "", network: str = "unet", cores: int | None = None
              ) -> SegmentationPlan:
    """Apply the rules in the module docstring to a fingerprint from ``fingerprint_msd_dataset``.

    ``cores``: CPU cores for training (default: those this process may use); sets the ensemble size.
    """
    from medlearn.engine.parallel import available_cores

    ndim = int(fingerprint["ndim"])
    n_ch = int(fingerprint["num_channels"])
    labels = fingerprint["labels"]
    num_classes = max(labels.values()) + 1
    by_value = {v: k for k, v in labels.items()}
    normalization, ct_stats = [], []
    for c in range(n_ch):
        stats = fingerprint["intensity"][str(c)]
        if stats["name"].strip().lower() == "ct":
            normalization.append("ct")
            ct_stats.append([stats["percentile_00_5"], stats["percentile_99_5"], stats["mean"], stats["std"]])
        else:
            normalization.append("zscore")
            ct_stats.append([])
    n_cases = int(fingerprint.get("num_training", SMALL_DATASET_CASES))
    patch = plan_patch_size(fingerprint["median_shape"], ndim)
    if network == "unet3d" and ndim != 3:
        network = "unet"
    channels, strides = plan_topology(patch, max_pools=4)
    if ndim == 2 and network == "unet":  # after the name is settled: a 2D "unet3d" request is this U-Net
        channels, strides = with_full_resolution_stage(channels, strides)
    batch = max(2, min(32, CPU_BATCH_VOXELS[ndim] // math.prod(patch)))
    small_2d = ndim == 2 and n_cases < SMALL_DATASET_CASES
    ensemble = ENSEMBLE_MEMBERS if small_2d and (cores or available_cores()) >= ENSEMBLE_MEMBERS else 1
    plan = SegmentationPlan(
        dataset=dataset,
        ndim=ndim,
        num_classes=num_classes,
        label_names=[by_value.get(i, f"label_{i}") for i in range(num_classes)],
        channel_names=[fingerprint["channel_names"][str(c)] for c in range(n_ch)],
        file_ending=fingerprint["file_ending"],
        preprocessing=PreprocessingSection(
            input_channels=list(range(n_ch)),
            normalization=normalization,
            ct_stats=ct_stats,
            target_spacing=[float(s) for s in fingerprint["median_spacing"]],
            zero_outside_roi=bool(fingerprint.get("has_roi", False)),
        ),
        network=SegmentationNetwork(name=network, channels=channels, strides=strides),
        # 3D steps cost ~5x a 2D step on CPU: validate (and checkpoint) every 100 steps, not 250
        train=SegmentationTrain(patch_size=patch, batch_size=int(batch), steps_per_epoch=250 if ndim == 2 else 100,
                                ema_decay=EMA_DECAY, train_on_val_cases=n_cases < SMALL_DATASET_CASES,
                                augmentation="strong" if small_2d else "default", ensemble=ensemble),
    )
    return plan
