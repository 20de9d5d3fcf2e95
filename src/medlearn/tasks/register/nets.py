"""Registration networks by name, 2D and 3D, and coarse-to-fine helpers.

Every network is called ``net(moving, fixed)`` with ``(B, 1, *S)`` images (``BCHW[D]``) and returns
the DDF ``(B, ndim, *S)`` in voxels in the convention of :mod:`.transforms` (``warped(x) =
moving(x + u(x))``). All start at (or within 1e-5 voxel of) the identity, so an untrained network
leaves the moving image where it is.

* ``"affine"``: CNN regressing the 2D/3D affine in centred coordinates, initialised at identity (the
  affine network of de Vos et al. 2019, MedIA 52:128). Written here; any image size.
* ``"globalnet"``: MONAI :class:`~monai.networks.nets.GlobalNet` (Hu et al. 2018, ISBI, arXiv:1711.01666),
  affine head at identity; needs a fixed ``image_size`` divisible by ``2 ** len(channels)``.
* ``"voxelmorph"``: MONAI :class:`~monai.networks.nets.VoxelMorphUNet` (U-Net + final convs) whose last
  conv is re-initialised ~N(0, 1e-5), predicting the DDF (Balakrishnan et al. 2019, IEEE TMI 38:1788).
* ``"diffeomorphic"``: the same U-Net predicting a stationary velocity field, integrated by scaling and
  squaring (7 steps; Dalca et al. 2018, MICCAI; 2019, MedIA 57:226).
* ``"bspline"``: CNN predicting cubic B-spline control-point displacements on a grid of
  ``control_spacing`` voxels (de Vos et al. 2019; Rueckert et al. 1999). Written here.
* ``"affine+voxelmorph"``: ``"affine"``, then ``"voxelmorph"`` on the affinely warped image, the two
  fields composed (the affine-then-deformable cascade of de Vos et al. 2019).

Coarse-to-fine: :func:`image_pyramid`, :func:`coarse_to_fine` (run any registration function at 1/4,
1/2, full resolution, each level starting from the upsampled field of the one before) and
:func:`pyramid_factor` (which resolution a training step uses, for progressive training).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from medlearn.errors import InputError
from medlearn.tasks.register.transforms import (
    affine_to_ddf,
    bspline_grid_shape,
    bspline_to_ddf,
    centred_affine_to_voxel,
    compose_fields,
    integrate_velocity,
    resize_field,
    warp,
)

__all__ = ["REGISTRATION_NETWORKS", "AffineNet", "AffineThenDeformable", "BSplineNet", "DenseFieldNet",
           "GlobalNetAdapter", "MeanField", "build_registration_network", "coarse_to_fine", "image_pyramid",
           "pyramid_factor", "required_divisor"]


def _conv(ndim: int, cin: int, cout: int, stride: int = 1) -> nn.Module:
    from monai.networks.blocks import Convolution

    return Convolution(ndim, cin, cout, strides=stride, kernel_size=3, act=("leakyrelu", {"negative_slope": 0.2}),
                       norm=None)


def _zero_head(layer: nn.Module, std: float = 1e-5) -> None:
    """Initialise the last conv near zero (VoxelMorph's N(0, 1e-5)): the first fields are ~identity."""
    for p in layer.parameters():
        if p.ndim > 1:
            nn.init.normal_(p, 0.0, std)
        else:
            nn.init.zeros_(p)


class AffineNet(nn.Module):
    """Affine registration CNN: strided conv encoder of ``cat(moving, fixed)``, adaptive average pooling to
    ``pool_size ** ndim`` positions (keeps *where* features are, which a translation needs), a linear layer
    to the ``ndim * (ndim + 1)`` parameters of a centred, normalised affine
    (:func:`~.transforms.centred_affine_to_voxel`), zero-initialised so the network starts at identity.

    ``forward(moving, fixed) -> ddf (B, ndim, *S)``; :meth:`matrix` gives the voxel-index affine
    ``(B, ndim, ndim + 1)``. Works for any image size.
    """

    def __init__(self, ndim: int, channels: Sequence[int] = (16, 32, 64, 64), pool_size: int = 4,
                 in_channels: int = 2) -> None:
        super().__init__()
        self.ndim = ndim
        layers: list[nn.Module] = []
        cin = in_channels
        for c in channels:
            layers.append(_conv(ndim, cin, c, stride=2))
            cin = c
        self.encoder = nn.Sequential(*layers)
        self.pool = (nn.AdaptiveAvgPool2d if ndim == 2 else nn.AdaptiveAvgPool3d)(pool_size)
        self.fc = nn.Linear(cin * pool_size**ndim, ndim * (ndim + 1))
        nn.init.zeros_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)
        self.register_buffer("identity", torch.eye(ndim, ndim + 1), persistent=False)

    def theta(self, moving: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        """The centred, normalised affine ``(B, ndim, ndim + 1)`` (identity ``[I | 0]``)."""
        feat = self.pool(self.encoder(torch.cat([moving, fixed], 1))).flatten(1)
        return self.identity + self.fc(feat).view(-1, self.ndim, self.ndim + 1)

    def matrix(self, moving: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        """The affine on voxel indices ``(B, ndim, ndim + 1)``: fixed voxel -> moving voxel."""
        return centred_affine_to_voxel(self.theta(moving, fixed), fixed.shape[2:])

    def forward(self, moving: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        return affine_to_ddf(self.matrix(moving, fixed), fixed.shape[2:], fixed.dtype)


class GlobalNetAdapter(nn.Module):
    """MONAI :class:`~monai.networks.nets.GlobalNet` (affine head initialised at identity) as
    ``net(moving, fixed) -> ddf``. Its affine acts on voxel indices about the corner voxel."""

    def __init__(self, ndim: int, image_size: Sequence[int], channels: Sequence[int] = (16, 32, 64, 64)) -> None:
        super().__init__()
        from monai.networks.nets import GlobalNet

        self.net = GlobalNet(image_size=list(image_size), spatial_dims=ndim, in_channels=2,
                             num_channel_initial=int(channels[0]), depth=len(channels))

    def forward(self, moving: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([moving, fixed], 1))


class DenseFieldNet(nn.Module):
    """VoxelMorph: MONAI's :class:`~monai.networks.nets.VoxelMorphUNet` on ``cat(moving, fixed)`` whose last
    conv is re-initialised ~N(0, 1e-5). With ``integration_steps > 0`` the output is a stationary velocity
    field integrated by scaling and squaring (diffeomorphic variant, Dalca et al. 2018).

    ``channels``: the U-Net's per-level features in down/up pairs (MONAI's convention, e.g.
    ``(16, 32, 32, 32, 32, 32)`` = 3 poolings); inputs must be divisible by ``2 ** (len(channels) // 2)``.
    """

    def __init__(self, ndim: int, channels: Sequence[int] = (16, 32, 32, 32, 32, 32),
                 final_channels: Sequence[int] = (16, 16), integration_steps: int = 0) -> None:
        super().__init__()
        from monai.networks.nets import VoxelMorphUNet

        channels = tuple(int(c) for c in channels)
        if len(channels) < 2 or len(channels) % 2:
            raise InputError("network.channels", f"voxelmorph needs channels in down/up pairs, got {list(channels)}",
                             "give an even number of feature sizes, e.g. [16, 32, 32, 32]")
        self.ndim = ndim
        self.integration_steps = int(integration_steps)
        self.backbone = VoxelMorphUNet(spatial_dims=ndim, in_channels=2, unet_out_channels=channels[-1],
                                       channels=channels, final_conv_channels=tuple(final_channels))
        _zero_head(self.backbone.net[1].final_conv_out)

    def forward(self, moving: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        out = self.backbone(torch.cat([moving, fixed], 1))
        if self.integration_steps > 0:
            out = integrate_velocity(out, self.integration_steps)
        return out


class BSplineNet(nn.Module):
    """B-spline registration CNN (de Vos et al. 2019): strided convs down to the control-point spacing
    (``control_spacing``, a power of 2), a conv head (initialised near zero) giving control-point
    displacements resampled to the :func:`~.transforms.bspline_grid_shape` grid, then the exact cubic
    B-spline field (:func:`~.transforms.bspline_to_ddf`). Smooth by construction; any image size."""

    def __init__(self, ndim: int, channels: Sequence[int] = (16, 32, 32), control_spacing: int = 8) -> None:
        super().__init__()
        if control_spacing < 1 or control_spacing & (control_spacing - 1):
            raise InputError("network.control_spacing", f"control_spacing must be a power of 2, got {control_spacing}")
        self.ndim = ndim
        self.spacing = int(control_spacing)
        n_down = int(math.log2(self.spacing))
        layers: list[nn.Module] = []
        cin = 2
        for k in range(max(n_down, 1)):
            c = int(channels[min(k, len(channels) - 1)])
            layers.append(_conv(ndim, cin, c, stride=2 if k < n_down else 1))
            cin = c
        layers.append(_conv(ndim, cin, int(channels[-1])))
        self.encoder = nn.Sequential(*layers)
        self.head = (nn.Conv2d if ndim == 2 else nn.Conv3d)(int(channels[-1]), ndim, 3, padding=1)
        _zero_head(self.head)

    def control_points(self, moving: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        """Control-point displacements ``(B, ndim, *G)`` in voxels."""
        coarse = self.head(self.encoder(torch.cat([moving, fixed], 1)))
        grid = bspline_grid_shape(fixed.shape[2:], self.spacing)
        return F.interpolate(coarse, size=grid, mode="bilinear" if self.ndim == 2 else "trilinear",
                             align_corners=True)

    def forward(self, moving: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        return bspline_to_ddf(self.control_points(moving, fixed), fixed.shape[2:], self.spacing)


class AffineThenDeformable(nn.Module):
    """``affine`` aligns first; ``deformable`` registers the affinely warped moving image to the fixed one;
    the result is the composed field (:func:`~.transforms.compose_fields`)."""

    def __init__(self, affine: nn.Module, deformable: nn.Module) -> None:
        super().__init__()
        self.affine = affine
        self.deformable = deformable

    def forward(self, moving: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        u_affine = self.affine(moving, fixed)
        u_local = self.deformable(warp(moving, u_affine), fixed)
        return compose_fields(u_affine, u_local)


class MeanField(nn.Module):
    """An ensemble as one network: the mean of its members' fields ``(B, ndim, *S)`` (deep ensembles,
    Lakshminarayanan et al. 2017; averaging displacements is the usual fusion of registration models)."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, moving: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(moving, fixed) for m in self.members]).mean(0)


def _affine(ndim: int, channels: Sequence[int] = (16, 32, 64, 64), **_: Any) -> nn.Module:
    return AffineNet(ndim, channels)


def _globalnet(ndim: int, channels: Sequence[int] = (16, 32, 64, 64), image_size: Sequence[int] | None = None,
               **_: Any) -> nn.Module:
    if image_size is None:
        raise InputError("network", "globalnet needs image_size", "pass image_size=(X, Y[, Z]) or use 'affine'")
    return GlobalNetAdapter(ndim, image_size, channels)


def _voxelmorph(ndim: int, channels: Sequence[int] = (16, 32, 32, 32, 32, 32), **_: Any) -> nn.Module:
    return DenseFieldNet(ndim, channels)


def _diffeomorphic(ndim: int, channels: Sequence[int] = (16, 32, 32, 32, 32, 32), integration_steps: int = 7,
                   **_: Any) -> nn.Module:
    return DenseFieldNet(ndim, channels, integration_steps=integration_steps)


def _bspline(ndim: int, channels: Sequence[int] = (16, 32, 32), control_spacing: int = 8, **_: Any) -> nn.Module:
    return BSplineNet(ndim, channels, control_spacing)


def _affine_voxelmorph(ndim: int, channels: Sequence[int] = (16, 32, 32, 32, 32, 32),
                       affine_channels: Sequence[int] = (16, 32, 64, 64), **_: Any) -> nn.Module:
    return AffineThenDeformable(AffineNet(ndim, affine_channels), DenseFieldNet(ndim, channels))


#: name -> builder ``(ndim, channels=..., **options) -> nn.Module``.
REGISTRATION_NETWORKS: dict[str, Callable[..., nn.Module]] = {
    "affine": _affine,
    "globalnet": _globalnet,
    "voxelmorph": _voxelmorph,
    "diffeomorphic": _diffeomorphic,
    "bspline": _bspline,
    "affine+voxelmorph": _affine_voxelmorph,
}


def build_registration_network(name: str, ndim: int, channels: Sequence[int] | None = None,
                               **options: Any) -> nn.Module:
    """The network called ``name`` for ``ndim`` (2 or 3) spatial dimensions.

    ``channels`` overrides the builder's default features; ``options``: ``image_size`` (globalnet),
    ``control_spacing`` (bspline), ``integration_steps`` (diffeomorphic), ``affine_channels``.
    """
    if name not in REGISTRATION_NETWORKS:
        raise InputError("network", f"unknown registration network '{name}'",
                         f"choose one of {', '.join(REGISTRATION_NETWORKS)}")
    if ndim not in (2, 3):
        raise InputError("network", f"registration networks are 2D or 3D, got ndim={ndim}")
    kwargs = dict(options)
    if channels is not None:
        kwargs["channels"] = tuple(int(c) for c in channels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return REGISTRATION_NETWORKS[name](ndim, **kwargs)


def required_divisor(name: str, channels: Sequence[int] | None = None) -> int:
    """What every image side must be divisible by for network ``name`` (1: any size)."""
    if name in ("voxelmorph", "diffeomorphic", "affine+voxelmorph"):
        return 2 ** (len(channels or (16, 32, 32, 32, 32, 32)) // 2)
    if name == "globalnet":
        return 2 ** len(channels or (16, 32, 64, 64))
    return 1


# -- coarse to fine -----------------------------------------------------------------------------------------
def _downsample(image: torch.Tensor, factor: int) -> torch.Tensor:
    """Gaussian blur (sigma = factor / 2) then linear resampling to ``(n - 1) // factor + 1`` voxels per axis
    with the corner voxels kept in place (``align_corners=True``), the geometry :func:`resize_field` assumes."""
    if factor == 1:
        return image
    from monai.networks.layers import GaussianFilter

    ndim = image.ndim - 2
    blurred = GaussianFilter(ndim, sigma=factor / 2.0, truncated=2.0)(image)
    size = [max(2, (n - 1) // factor + 1) for n in image.shape[2:]]
    return F.interpolate(blurred, size=size, mode="bilinear" if ndim == 2 else "trilinear", align_corners=True)


def image_pyramid(image: torch.Tensor, factors: Sequence[int] = (4, 2, 1)) -> list[torch.Tensor]:
    """``image (B, C, *S)`` at each downsampling factor (blurred before resampling, i.e. anti-aliased)."""
    return [_downsample(image, int(f)) for f in factors]


def coarse_to_fine(register: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
                   fixed: torch.Tensor, moving: torch.Tensor, factors: Sequence[int] = (4, 2, 1),
                   init: torch.Tensor | None = None) -> torch.Tensor:
    """Multi-resolution registration: ``register(fixed_l, moving_l, init_l) -> ddf_l`` at each level.

    Level ``l`` works on images downsampled by ``factors[l]`` (e.g. 1/4, 1/2, full) and starts from the
    previous level's field resized to it (:func:`~.transforms.resize_field`); the coarse levels capture
    large displacements cheaply, the fine ones the details (the pyramid of classical registration, e.g.
    Rueckert et al. 1999, and of coarse-to-fine networks, e.g. Mok & Chung 2020). Returns the DDF
    ``(B, ndim, *S)`` at full resolution.
    """
    ndim = fixed.ndim - 2
    field = init if init is not None else fixed.new_zeros(fixed.shape[0], ndim, *fixed.shape[2:])
    for f in factors:
        fl, ml = _downsample(fixed, int(f)), _downsample(moving, int(f))
        field = register(fl, ml, resize_field(field, fl.shape[2:]))
    return resize_field(field, fixed.shape[2:])


def pyramid_factor(progress: float, factors: Sequence[int] = (4, 2, 1)) -> int:
    """The downsampling factor a training step uses at ``progress`` in [0, 1] of its budget: equal
    shares of the budget per level, coarsest first (progressive multi-resolution training)."""
    if not factors:
        return 1
    index = min(len(factors) - 1, int(max(0.0, progress) * len(factors)))
    return int(factors[index])
