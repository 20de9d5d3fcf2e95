"""Registration plan: the dataset fingerprint -> every training and inference choice.

A :class:`RegistrationPlan` is made by :func:`make_plan` from a :class:`RegistrationFingerprint` of the
training pairs; every field can be changed with ``--set section.field=value`` (``medlearn register
plan-fields`` lists them with their ranges). The rules and their evidence:

- **working shape** (:func:`working_shape`): registration needs the whole field of view, so each pair
  is *resampled* (not cropped) to one grid the network runs on; the field comes back to the fixed
  image's grid with :func:`~.transforms.resize_field`. The median fixed image is halved (all axes
  together, keeping the geometry) until it fits :data:`VOXEL_BUDGET`, then rounded to the network's
  divisor;
- **network depth** (:func:`network_depth`): U-Net poolings until the bottleneck side would drop below 8
  voxels (nnU-Net's topology rule), VoxelMorph's widths (16 at the top, 32 below);
- **intensity normalisation**: per image, clipped to its 0.5/99.5 percentiles and scaled to [0, 1]. Local
  NCC and MI do not need it; MSE and the MI histogram's bins need a common range, and a per-image scale
  is the only one a pair of scans from two sessions shares (not measured: the choice every learned
  method on Learn2Reg makes in some form);
- **similarity** (:func:`similarity_rule`): local NCC for one modality, mutual information for two
  (the stated modalities: Learn2Reg ``modality``, a CSV's ``fixed_modality``/``moving_modality``);
- **smoothness weight** (:func:`smoothness_weight_rule`) and **Dice supervision** (:func:`dice_weight_rule`);
- **batch size and budget** (:func:`schedule_rule`): 2D batch 4, 3D batch 1 (VoxelMorph's); a wall-clock
  budget of ``train.max_minutes`` (3D 30 min: the issue's goal on a 2-core CPU; 2D 10 min), with the
  steps the defaults' evidence made in it (:data:`EVIDENCE_STEPS_PER_MINUTE`) so the engine warns when a
  slower machine buys fewer;
- **instance optimisation** (``inference.refine_steps``, :func:`refine_rule`): gradient steps on each
  pair's field at prediction time, from the network's field (see its evidence).

"Validation pairs" in the evidence are synthetic pairs from the ``val`` seed stream of
:func:`~.synthetic.synthetic_pairs` (never the ``test`` stream), made from the mid-axial slice of
``voxelmorph_brain_t1_aseg`` downsampled to 80x96 with 15 aseg structures (48 training, 16 validation
pairs, smooth deformation <= 4 px + random affine, bias field, gamma and noise); a VoxelMorph U-Net
``[16, 32, 32, 32, 32, 32]`` trained 400 Adam steps (1e-3, batch 4) per setting; TRE against the known
field inside the brain, means over the 16 pairs with 95% bootstrap CIs. Step times were measured on this
project's shared 2-core CPU under load (other jobs running), so they are upper bounds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from medlearn.errors import InputError
from medlearn.plan import NetworkSection, Plan, TrainSection, setting
from medlearn.tasks.register.nets import REGISTRATION_NETWORKS, required_divisor

__all__ = ["CLASSICAL_METHODS", "EVIDENCE_STEPS_PER_MINUTE", "METHODS", "VOXEL_BUDGET", "RegistrationFingerprint",
           "RegistrationPlan", "dice_weight_rule", "make_plan", "network_depth", "prealign_rule", "refine_rule",
           "schedule_rule", "similarity_rule", "smoothness_weight_rule", "working_shape"]

#: ``network.name`` of a run that trains no network: prediction and evaluation use SimpleITK (:mod:`.classical`)
CLASSICAL = "classical"
#: what ``predict`` / ``evaluate --method`` accept: the run's network, or a SimpleITK method
CLASSICAL_METHODS = ("bspline", "affine", "demons")
METHODS = ("network", CLASSICAL, *CLASSICAL_METHODS)

#: CPU voxel budget of one training image: 2D 128^2, 3D 64^3.
#: Evidence: a VoxelMorph step (forward + backward + Adam, local NCC; fastest of 3 steps, measured under
#: load) took 0.17-0.36 s at 128^2 and 1.0-2.0 s at 256^2 in 2D with batch 1; with the 2D batch of 4,
#: 0.30 s at 112x128 and 2.55 s at 224x256 (the ITK brain slice, load average 3.7): 8.5x the steps in one
#: budget at the lower grid, whose field instance optimisation then refines on the full-resolution grid
#: (``inference.refine_full_max_voxels``). 3D, batch 1: 1.5-3.1 s at 48^3, 2.7-3.0 s at 64^3, 5.9-9.2 s at
#: 96^3, 0.92 s at 40x48x56: 64^3 keeps a 3D step near 1-3 s (600-2000 steps in 30 min); 96^3 would leave
#: ~250. The brain of ``voxelmorph_brain_t1_aseg`` (160x192x224) becomes 40x48x56.
VOXEL_BUDGET = {2: 128 * 128, 3: 64 * 64 * 64}
#: Instance optimisation runs on the fixed image's own grid up to this many voxels (2D: a refinement step
#: costs ~0.03 s at 800^2 here, the serial sections' 100 steps ~3 s per pair in the 2D benchmark of
#: 2026-12-04; 3D: never, a step on a 160x192x224 brain costs seconds).
REFINE_FULL_MAX_VOXELS = {2: 1024 * 1024, 3: 0}
#: Poolings of the U-Net: halve until the bottleneck side would drop below 8 voxels, at most 4
#: (nnU-Net's topology rule, Isensee et al. 2021; not measured here).
MIN_BOTTLENECK = 8
MAX_POOLINGS = 4
#: Optimisation steps per minute of budget the defaults' evidence made on this project's CPU (one
#: member, all cores): the engine warns when this machine buys fewer than 80% of them. 2D: the 2D
#: benchmark's runs (``benchmarks/register_2d.py``, working shape ~224x256, batch 4); 3D: the brain
#: benchmark (``benchmarks/register_brain.py``, 40x48x56, batch 1).
EVIDENCE_STEPS_PER_MINUTE = {2: 60, 3: 40}


@dataclass(frozen=True)
class RegistrationFingerprint:
    """What the rules look at. ``image_size``: median fixed-image shape; ``spacing``: median voxel size (mm)."""

    ndim: int
    image_size: tuple[int, ...]
    spacing: tuple[float, ...]
    same_modality: bool = True
    labels_present: bool = False
    n_pairs: int = 0
    modalities: tuple[str, ...] = ()
    label_ids: tuple[int, ...] = ()


# -- sections ---------------------------------------------------------------------------------------------
@dataclass
class RegistrationDataSection:
    """What the training pairs are and how every image is brought to the network's grid."""

    ndim: int = setting(2, min=2, max=3, help="spatial dimensions of the images")
    image_size: list[int] = setting(factory=lambda: [64, 64], min=1, help="median fixed-image shape (fingerprint)")
    spacing: list[float] = setting(factory=lambda: [1.0, 1.0], min=0, exclusive_min=True,
                                   help="median fixed-image voxel size in mm (fingerprint)")
    working_shape: list[int] = setting(factory=lambda: [64, 64], min=4, help="the grid the network runs on: every "
                                       "pair is resampled to it and the field back to the fixed image's grid")
    normalization: Literal["percentile", "minmax", "none"] = setting(
        "percentile", help="per image: percentile (clip to 0.5/99.5 percentiles, then [0, 1]), minmax or none")
    same_modality: bool = setting(True, help="fixed and moving images share a modality (False: multi-modal)")
    modalities: list[str] = setting(factory=list, help="modalities the training pairs state (fingerprint)")
    labels: bool = setting(False, help="every training pair has label maps (fingerprint)")
    label_ids: list[int] = setting(factory=list, min=1, help="structure ids of the training labels (Dice "
                                                             "supervision: id k is class k + 1)")
    val_fraction: float = setting(0.2, min=0, max=0.9, help="pairs held out for validation when the layout "
                                                            "names none")


@dataclass
class RegistrationNetwork(NetworkSection):
    name: str = setting("voxelmorph", help=" | ".join([*REGISTRATION_NETWORKS, CLASSICAL]) + " (classical: no "
                                           "network, SimpleITK registers every pair)")
    channels: list[int] = setting(factory=lambda: [16, 32, 32, 32], min=1, help="features (voxelmorph: down/up "
                                                                                 "pairs per level)")
    control_spacing: int = setting(8, min=1, help="B-spline control-point spacing in voxels (bspline; a power of 2)")
    integration_steps: int = setting(7, min=1, max=16, help="scaling-and-squaring steps (diffeomorphic)")
    affine_channels: list[int] = setting(factory=lambda: [16, 32, 64, 64], min=1,
                                         help="features of the affine stage (affine+voxelmorph)")


@dataclass
class RegistrationLossSection:
    similarity: Literal["ncc", "mse", "mi"] = setting("ncc", help="ncc (local, one modality), mse, mi (mutual "
                                                                  "information, multi-modal)")
    ncc_kernel: int = setting(7, min=3, max=31, help="local NCC window (voxels, odd)")
    mi_bins: int = setting(32, min=4, max=256, help="histogram bins of mutual information")
    smoothness: Literal["diffusion", "bending"] = setting("diffusion", help="field regulariser")
    smoothness_weight: float = setting(1.0, min=0, help="weight of the regulariser")
    dice_weight: float = setting(0.0, min=0, help="weight of the Dice loss of warped training labels (0: off)")


@dataclass
class RegistrationTrain(TrainSection):
    batch_size: int = setting(4, min=1, help="pairs per step")
    lr: float = setting(1e-3, min=0, exclusive_min=True, help="Adam learning rate")
    max_minutes: float | None = setting(10.0, min=0, exclusive_min=True,
                                        help="wall-clock budget of the whole training (members share it)")
    max_epochs: int = setting(1000, min=1, help="upper bound on epochs of steps_per_epoch steps")
    steps_per_epoch: int = setting(50, min=1, help="steps between validations (and checkpoints)")
    pyramid: list[int] = setting(factory=lambda: [1], min=1, help="downsampling factors of progressive training, "
                                                                 "coarse to fine, e.g. [4, 2, 1]")
    swap_pairs: bool = setting(True, help="train on each pair in both directions (moving <-> fixed)")
    checkpoint: Literal["final", "best_val"] = setting("final", help="final (end of the budget) | best_val "
                                                                     "(lowest validation loss)")


@dataclass
class PrealignSection:
    """The optimised affine stage (:mod:`.affine`): before the network, in training and at prediction."""

    method: Literal["affine", "none"] = setting("affine", help="affine: an affine optimised on each pair (coarse "
                                                               "to fine, the plan's similarity) aligns it before the "
                                                               "network, which learns the rest; none")
    levels: list[int] = setting(factory=lambda: [4, 2, 1], min=1, help="downsampling factors, coarse to fine")
    steps: int = setting(100, min=0, max=10000, help="Adam steps per level")
    lr: float = setting(0.01, min=0, exclusive_min=True, help="step in normalised units (1 = half the image)")


@dataclass
class RegistrationInference:
    method: Literal["network", "classical", "bspline", "affine", "demons"] = setting(
        "network", help="network, or SimpleITK: classical (classical.method), bspline (affine + B-spline), "
                        "affine, demons")
    refine_steps: int = setting(0, min=0, max=10000, help="instance optimisation: Adam steps on each pair's field "
                                                          "from the network's (0: off; --refine N)")
    refine_lr: float = setting(0.1, min=0, exclusive_min=True, help="instance optimisation step (voxels)")
    refine_grid: int = setting(2, min=1, help="instance optimisation: the field lives on a grid this many "
                                              "voxels apart, linearly upsampled")
    refine_full_max_voxels: int = setting(0, min=0, help="instance optimisation runs on the fixed image's own grid "
                                                         "when it has at most this many voxels, else on the working "
                                                         "grid (0: always the working grid)")
    refine_smoothness: Literal["diffusion", "bending"] | None = setting(
        None, help="instance optimisation regulariser (None: loss.smoothness)")
    refine_weight: float | None = setting(None, min=0, help="instance optimisation smoothness weight (None: "
                                                            "loss.smoothness_weight)")
    refine_fine_steps: int = setting(0, min=0, max=10000, help="instance optimisation, then this many steps on a "
                                     "grid refine_fine_factor times finer than the working grid (at most the fixed "
                                     "grid; when refinement does not already run on the fixed grid; 0: off)")
    refine_fine_factor: int = setting(2, min=2, max=8, help="how much finer the second refinement grid is")
    refine_fine_kernel: int | None = setting(None, min=1, max=31, help="local NCC window (voxels, odd) on the finer "
                                             "refinement grid (None: loss.ncc_kernel)")


@dataclass
class ClassicalSection:
    """SimpleITK registration (:mod:`.classical`): the comparison on a user's own data, or a run's method."""

    method: Literal["bspline", "affine", "demons"] = setting("bspline", help="bspline: affine then cubic B-spline; "
                                                                             "affine; demons (one modality)")
    metric: Literal["auto", "mattes", "correlation"] = setting("auto", help="auto: Mattes MI for two modalities, "
                                                                            "correlation for one")
    mesh_size: int = setting(8, min=1, max=64, help="B-spline mesh cells per axis")
    iterations: int = setting(200, min=1, help="affine optimiser iterations per pyramid level")
    bspline_iterations: int = setting(100, min=1, help="B-spline L-BFGS-B iterations")
    demons_iterations: int = setting(100, min=1, help="demons iterations")
    demons_sigma: float = setting(1.5, min=0, exclusive_min=True, help="demons field smoothing (voxels)")
    sampling: float | None = setting(None, min=0, max=1, exclusive_min=True,
                                     help="fraction of voxels the metric samples (None: all)")


@dataclass
class RegistrationEvaluation:
    hd95: bool = setting(True, help="compute HD95 per structure (slow for many 3D structures)")


@dataclass
class RegistrationPlan(Plan):
    """Everything a registration training and its predictions do, editable with ``--set section.field=value``."""

    dataset: str = ""
    data: RegistrationDataSection = field(default_factory=RegistrationDataSection)
    prealign: PrealignSection = field(default_factory=PrealignSection)
    network: RegistrationNetwork = field(default_factory=RegistrationNetwork)
    loss: RegistrationLossSection = field(default_factory=RegistrationLossSection)
    train: RegistrationTrain = field(default_factory=RegistrationTrain)
    inference: RegistrationInference = field(default_factory=RegistrationInference)
    classical: ClassicalSection = field(default_factory=ClassicalSection)
    evaluation: RegistrationEvaluation = field(default_factory=RegistrationEvaluation)

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def learned(self) -> bool:
        """False for a ``network.name=classical`` run (no network)."""
        return self.network.name != CLASSICAL

    @property
    def prealigned(self) -> bool:
        """True when the optimised affine stage runs before the network."""
        return self.learned and self.prealign.method == "affine" and self.prealign.steps > 0

    @property
    def num_labels(self) -> int:
        """Classes of the Dice supervision, background included (0: no labels)."""
        return len(self.data.label_ids) + 1 if self.data.labels and self.data.label_ids else 0

    @property
    def divisor(self) -> int:
        return 1 if not self.learned else required_divisor(self.network.name, self.network.channels)

    def check(self) -> None:
        """Refuse fields that contradict each other (after types and ranges), naming them."""
        names = [*REGISTRATION_NETWORKS, CLASSICAL]
        if self.network.name not in names:
            raise InputError("network.name", f"unknown network '{self.network.name}'",
                             f"choose one of {', '.join(names)}")
        if len(self.data.working_shape) != self.ndim:
            raise InputError("data.working_shape", f"has {len(self.data.working_shape)} values for {self.ndim}D images")
        div = self.divisor
        if any(s % div for s in self.data.working_shape):
            fit = [max(div, round(s / div) * div) for s in self.data.working_shape]
            raise InputError("data.working_shape", f"{self.data.working_shape} must be multiples of {div} for "
                             f"network.name={self.network.name} with {len(self.network.channels)} channel levels",
                             f"e.g. {fit}")
        if self.network.name in ("voxelmorph", "diffeomorphic", "affine+voxelmorph") and len(self.network.channels) % 2:
            raise InputError("network.channels", f"{self.network.name} needs features in down/up pairs, got "
                             f"{self.network.channels}", "give an even number of values, e.g. [16, 32, 32, 32]")
        if self.network.control_spacing & (self.network.control_spacing - 1):
            raise InputError("network.control_spacing", f"must be a power of 2, got {self.network.control_spacing}")
        for key, kernel in (("loss.ncc_kernel", self.loss.ncc_kernel),
                            ("inference.refine_fine_kernel", self.inference.refine_fine_kernel)):
            if kernel is not None and kernel % 2 == 0:
                raise InputError(key, f"must be odd, got {kernel}")
        for key, method in (("inference.method", self.inference.method), ("classical.method", self.classical.method)):
            if not self.data.same_modality and method == "demons":
                raise InputError(key, "demons assumes one modality but the training pairs are multi-modal "
                                 f"({', '.join(self.data.modalities)})", "use bspline or affine (Mattes MI)")
        if not self.data.same_modality and self.classical.metric == "correlation":
            raise InputError("classical.metric", "correlation assumes one modality but the training pairs are "
                             f"multi-modal ({', '.join(self.data.modalities)})", "use auto or mattes")
        if self.learned and not self.data.same_modality and self.loss.similarity != "mi":
            raise InputError("loss.similarity", f"the training pairs are multi-modal ("
                             f"{', '.join(self.data.modalities)}) but the similarity is {self.loss.similarity}, "
                             "which compares intensities of one modality",
                             "use loss.similarity=mi (mutual information)")


# -- rules ------------------------------------------------------------------------------------------------
def working_shape(fp: RegistrationFingerprint, divisor: int | None = None) -> tuple[int, ...]:
    """The shape images are resampled to for training on CPU.

    Halve the whole image (all axes together, keeping the aspect ratio and therefore the registration
    problem's geometry) until it fits :data:`VOXEL_BUDGET`, then round each side down to a multiple of
    the network's ``divisor`` (default: ``2 ** network_depth``; nearest multiple, so a side changes by at
    most half a divisor). Registration needs the whole field of view (a patch would not see where its
    contents moved to), so the image is resampled, not cropped; fields are resized back with
    :func:`~.transforms.resize_field`.
    """
    shape = [float(n) for n in fp.image_size]
    budget = VOXEL_BUDGET[fp.ndim]
    while math.prod(shape) > budget:
        shape = [s / 2 for s in shape]
    depth = network_depth(tuple(int(s) for s in shape))
    div = divisor or 2**depth
    return tuple(max(div, int(s / div + 0.5) * div) for s in shape)


def network_depth(shape: tuple[int, ...]) -> int:
    """U-Net poolings for an input of ``shape``: halve until the smallest side would go below
    :data:`MIN_BOTTLENECK`, at most :data:`MAX_POOLINGS`, at least 1."""
    depth, side = 0, min(shape)
    while depth < MAX_POOLINGS and side / 2 >= MIN_BOTTLENECK:
        side /= 2
        depth += 1
    return max(depth, 1)


def similarity_rule(fp: RegistrationFingerprint) -> str:
    """``"ncc"`` for one modality, ``"mi"`` for two.

    Evidence, one modality: on the validation pairs (bias field, gamma and noise changes) local NCC
    (window 7, weight 1) gave TRE 3.44 mm [3.01, 3.89] and MSE (weight 0.1) 3.33 mm [2.93, 3.75], from
    4.23 mm before: no difference the 16 pairs can resolve. NCC stays the default because it does not
    assume that two images share one intensity scale (these synthetic pairs nearly do; two scans from
    different sessions or scanners do not). Two modalities: the ITK T1 slice as fixed and the PD slice
    shifted by (13, 17) px as moving (SimpleITK affine), Mattes MI reached TRE 0.07 px, correlation
    7.74 px; with the PD slice rotated, shifted and scaled (R10X13Y17S12) 5.67 vs 12.30 px. The learned
    side uses MONAI's Parzen-window MI, the same criterion. (No test pair was used for these choices.)
    """
    return "ncc" if fp.same_modality else "mi"


def smoothness_weight_rule(similarity: str) -> float:
    """Weight of the diffusion regulariser for ``similarity``.

    Evidence (validation pairs, diffusion regulariser). Local NCC: weight 0.25 -> TRE 3.55 mm
    [3.11, 4.03], folding 0.03 %, SDlogJ 0.37; 1.0 -> 3.44 mm [3.01, 3.89], 0.00 %, 0.12; 4.0 -> 3.66 mm
    [3.16, 4.20], 0.00 %, 0.06: 1.0 is the best TRE without folding (VoxelMorph's value for NCC too).
    MSE on [0, 1] intensities: 0.01 (VoxelMorph's MSE value) -> TRE 3.65 mm, folding 2.2 %, SDlogJ 2.97;
    0.1 -> 3.33 mm, 0.06 %, 0.49: 0.1. MI (nats, about -1 at best, like NCC) takes the NCC weight — not
    measured: there are no multi-modal training pairs with a known field here.
    """
    return {"ncc": 1.0, "mse": 0.1, "mi": 1.0}.get(similarity, 1.0)


def dice_weight_rule(fp: RegistrationFingerprint) -> float:
    """Dice supervision on (weight 1) when the training pairs have label maps, off otherwise.

    Evidence (validation pairs, 15 structures, local NCC, weight 1): validation Dice 0.535 [0.487, 0.586]
    with the Dice term against 0.521 [0.473, 0.573] without it (0.437 before registration), TRE 3.46 vs
    3.44 mm, folding 0.02 vs 0.00 %: a small gain the 16 pairs cannot confirm after 400 steps. It stays
    on because the labels cost nothing at training time and the semi-supervised VoxelMorph (Balakrishnan
    et al. 2019, auxiliary segmentation loss; Hu et al. 2018) gained Dice on unseen structures of real scans.
    """
    return 1.0 if fp.labels_present else 0.0


def schedule_rule(ndim: int) -> dict[str, float | int]:
    """Batch size, budget and validation interval for ``ndim``.

    Batch 4 in 2D and 1 in 3D (VoxelMorph trains 3D with batch 1; a 3D step of 40x48x56 is already
    ~1-3 s here). Budget: 3D 30 minutes (the issue's goal: a 3D default run within 30 CPU-minutes);
    2D 10 minutes (the 2D benchmark's validation pairs; see ``benchmarks/results/register_2d.md``).
    A validation (and checkpoint, what ``--resume`` continues from) every 50 steps in 2D, 25 in 3D:
    about once a minute on this CPU.
    """
    if ndim == 3:
        return {"batch_size": 1, "max_minutes": 30.0, "steps_per_epoch": 25}
    return {"batch_size": 4, "max_minutes": 10.0, "steps_per_epoch": 50}


def refine_rule(ndim: int) -> dict[str, float | int | None]:
    """Instance optimisation at prediction time (``inference.refine_*``): steps, grid and smoothness weight.

    Evidence, 2D (the 2D benchmark's validation side: 16 synthetic pairs of the ITK PD slice from the ``val``
    stream, a network trained 3 minutes, TRE inside the brain, mean over the pairs): the network after the
    affine stage left 1.57 px; 100 refinement steps on the fixed grid gave 1.07 px with grid 2 / weight 1
    (folding 0.10 %, SDlogJ 0.71), 0.72 with grid 4 / weight 1, 0.62 with grid 2 / weight 4, 0.41 with
    grid 4 / weight 4 (folding 0, SDlogJ 0.11), 0.34-0.36 with grid 8-16 / weight 4, 0.53-0.98 with weight
    8-16; 50 steps 0.50. Chosen: 100 steps, grid 4, weight 4 (a coarser grid gains little on these very smooth
    synthetic fields and would lose the local detail of real pairs). About 1.4 s per 221x257 pair here (the 2D
    benchmark of 2026-12-04; 3-5 s before the losses' own backward passes).
    3D: on the working grid (a step on a 1 mm brain costs seconds), then ``refine_fine_steps`` on a grid twice
    as fine. Evidence (the brain benchmark's validation pairs val000 / val001, the network of its 20-min pilot,
    working grid 40x48x56 = 4 mm, Dice over the 30 structures, seconds per pair): network alone 0.770 / 0.754
    (2.2 / 2.5 s); + 50 steps at 4 mm 0.860 / 0.858 (4.3 / 4.6 s); + 10 steps at 2 mm 0.888 / 0.887 (9.2 /
    8.0 s, folding 0.0014%); + 20 at 2 mm 0.889 / 0.889 (12 s); 20 steps at 4 mm + 10 at 2 mm 0.889 / 0.887
    (7.1 s). On one pair, finer control points at 4 mm (grid 1) folded 0.44% for less Dice, weight 0.25
    folded 0.61%. Control points at every 2 mm voxel on the finer level (the 4 validation pairs, the affine stage
    + an untrained network): Dice 0.881 vs 0.887, folding 0.58%; with weight 2, 0.878 / 0.18%; 20 finer steps 0.8875.
    The finer level's local NCC window (``refine_fine_kernel``; the 4 validation pairs, the benchmark's network
    trained 30 min, mean Dice): 7 voxels (14 mm, the training window) with 10 steps 0.8873; 5 voxels 0.8889,
    3 voxels 0.8902 (the structures' boundaries are a few mm); with 20 steps 0.8903 (5) / 0.8924 (3, folding
    0.025%); smoothness weight 0.5 there 0.8863 (folding 0.08%); 3 more steps on the 1 mm grid 0.8841 at 20 s
    per pair. Chosen: 3 voxels, 20 steps. Seconds per pair (registration, 2 threads, a quiet machine of the fast
    class): 3.6 s with 7 voxels / 10 steps, 4.6 s chosen (the machine class varies 1.7x: the same path took 8-9 s
    on the slow one).
    The regulariser (``refine_smoothness``, ``refine_weight``; same 4 validation pairs and network, mean Dice;
    diffusion weight 1 at both levels gave 0.8924 above): 40 finer steps 0.8925, a cosine or linear lr decay
    0.8917-0.8923 (the optimum of that objective, not Adam's noise, was the limit); bending energy on the finer
    level only, weight 1 / 4 / 8 / 20: 0.8964 / 0.8982 / 0.8955 / 0.8875 (folding 0.0007% to 0); bending at both
    levels, weight 4 on the finer and 2 / 4 / 8 on the working grid: 0.8985 / 0.8991 / 0.8990; 2 on both 0.8984
    (folding 0.0001%). Bending leaves locally affine motion free, where diffusion pulls every stretch back. On a
    real inter-subject pair without labels (Colin27 -> MNI152, 1 mm, the affine stage + refinement, NCC inside
    the brain; affine alone 0.634): diffusion 1 0.852 (folding 0.011%, SDlogJ 0.29), bending 1 / 2 / 4 0.852 /
    0.827 / 0.796 (SDlogJ 0.27 / 0.19 / 0.13): weight 4 smooths real anatomy's differences away more. Chosen:
    bending, weight 2 at both levels (within 0.001 Dice of the best on validation, the less regularised).
    """
    if ndim == 2:
        return {"refine_steps": 100, "refine_grid": 4, "refine_weight": 4.0, "refine_fine_steps": 0,
                "refine_fine_kernel": None, "refine_smoothness": None}
    return {"refine_steps": 20, "refine_grid": 2, "refine_weight": 2.0, "refine_fine_steps": 20,
            "refine_fine_kernel": 3, "refine_smoothness": "bending"}


def prealign_rule(ndim: int) -> PrealignSection:
    """The optimised affine stage: 3 levels (4, 2, 1), 100 Adam steps per level in 2D, 30 in 3D.

    Evidence, 3D (the brain benchmark's validation pairs val000 / val001, the 40x48x56 working grid, the
    network of its 20-min pilot, Dice over the 30 structures, registration seconds incl. the network and the
    1 mm warp): 100 steps per level 0.773 / 0.754 in 4.6 / 5.5 s, 30 steps 0.770 / 0.754 in 2.2 / 2.5 s.
    2D steps cost milliseconds, so 2D keeps 100.
    """
    return PrealignSection(steps=100 if ndim == 2 else 30)


def classical_sampling_rule(ndim: int) -> float | None:
    """SimpleITK's metric sampling (``classical.sampling``): every pixel in 2D, 1% of the voxels in 3D.

    Evidence: one synthetic 1 mm brain pair of the brain benchmark, affine + B-spline (mesh 8), correlation:
    5% sampling took 320 s for Dice 0.801, 1% 67 s for Dice 0.790 (the 30 VoxelMorph structures; 0.443
    before). 2D pairs take a few seconds with every pixel (ITK PD slice: 4.1 s, TRE 0.06 px).
    """
    return None if ndim == 2 else 0.01


def make_plan(fp: RegistrationFingerprint, network: str = "voxelmorph", dataset: str = "") -> RegistrationPlan:
    """Every rule applied to ``fp``."""
    shape = working_shape(fp)
    depth = network_depth(shape)
    channels = [16] + [32] * (2 * depth - 1)  # VoxelMorph's widths: 16 at the top, 32 below, in down/up pairs
    div = required_divisor(network, channels) if network != CLASSICAL else 1
    if div > 1:
        shape = working_shape(fp, divisor=div)
    similarity = similarity_rule(fp)
    schedule = schedule_rule(fp.ndim)
    plan = RegistrationPlan(dataset=dataset)
    plan.data = RegistrationDataSection(ndim=fp.ndim, image_size=list(fp.image_size),
                                        spacing=[float(s) for s in fp.spacing], working_shape=list(shape),
                                        same_modality=fp.same_modality, modalities=list(fp.modalities),
                                        labels=fp.labels_present,
                                        label_ids=list(fp.label_ids) if fp.labels_present else [])
    plan.network = RegistrationNetwork(name=network, channels=channels)
    plan.loss = RegistrationLossSection(similarity=similarity, smoothness_weight=smoothness_weight_rule(similarity),
                                        dice_weight=dice_weight_rule(fp))
    plan.train = RegistrationTrain(batch_size=int(schedule["batch_size"]), max_minutes=float(schedule["max_minutes"]),
                                   steps_per_epoch=int(schedule["steps_per_epoch"]))
    refine = refine_rule(fp.ndim)
    plan.inference = RegistrationInference(refine_steps=int(refine["refine_steps"]),
                                           refine_grid=int(refine["refine_grid"]),
                                           refine_weight=float(refine["refine_weight"]),
                                           refine_full_max_voxels=REFINE_FULL_MAX_VOXELS[fp.ndim],
                                           refine_fine_steps=int(refine["refine_fine_steps"]),
                                           refine_fine_kernel=refine["refine_fine_kernel"],
                                           refine_smoothness=refine["refine_smoothness"])
    plan.prealign = prealign_rule(fp.ndim)
    plan.classical = ClassicalSection(sampling=classical_sampling_rule(fp.ndim))
    plan.check()
    return plan


def evidence_steps(plan: RegistrationPlan) -> int:
    """Steps per member the defaults' evidence made in this plan's budget (:data:`EVIDENCE_STEPS_PER_MINUTE`)."""
    minutes = plan.train.max_minutes or 0.0
    return max(1, int(EVIDENCE_STEPS_PER_MINUTE[plan.ndim] * minutes))


def planned_steps(plan: RegistrationPlan) -> int:
    """Steps of the schedule (``max_epochs * steps_per_epoch``), the bound when no budget ends training first."""
    return plan.train.max_epochs * plan.train.steps_per_epoch
