"""Classification networks, all exposed as :class:`EmbeddingClassifier` (backbone + linear head).

Input ``(N, C, *spatial)`` with 2 or 3 spatial dims; output logits ``(N, num_outputs)``.
``embed(x)`` returns the ``(N, F)`` embedding used for patient-level aggregation, retrieval and
contrastive pre-training; ``head`` is the replaceable last layer (``--init-from``).
Backbones: MONAI ResNet (He et al. 2016), DenseNet (Huang et al. 2017), EfficientNet (Tan & Le
2019); our small VGG-style CNN (Simonyan & Zisserman 2015) and an MLP.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from medlearn.nets.init import initialise
from medlearn.nets.layers import batchnorm_class, conv_class
from medlearn.nets.registry import register_network


class EmbeddingClassifier(nn.Module):
    """``backbone`` maps ``(N, C, *spatial)`` to ``(N, embed_dim)``; dropout + linear head give logits."""

    def __init__(self, backbone: nn.Module, embed_dim: int, num_outputs: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.backbone = backbone
        self.embed_dim = embed_dim
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(embed_dim, num_outputs)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.embed(x)))

    def replace_head(self, num_outputs: int) -> None:
        self.head = nn.Linear(self.embed_dim, num_outputs)


class EnsembleClassifier(nn.Module):
    """Deep ensemble (Lakshminarayanan et al. 2017): the members' predicted probabilities are averaged.

    Output stays logits ``(N, K)`` so every consumer treats it as a single network: with
    ``link="softmax"`` (binary, multi-class) ``log(mean softmax)``, whose softmax is the mean
    probability; with ``link="sigmoid"`` (multi-label, ordinal) ``logit(mean sigmoid)``.
    ``embed`` concatenates the members' embeddings ``(N, sum F_k)``.
    """

    def __init__(self, members: Sequence[EmbeddingClassifier], link: str = "softmax") -> None:
        super().__init__()
        if link not in ("softmax", "sigmoid"):
            raise ValueError(f"link must be 'softmax' or 'sigmoid', not {link!r}")
        self.members = nn.ModuleList(members)
        self.embed_dim = sum(m.embed_dim for m in members)
        self.link = link

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([m.embed(x) for m in self.members], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.stack([m(x) for m in self.members])  # (M, N, K)
        log_m = torch.log(torch.tensor(float(len(self.members)), dtype=logits.dtype))
        if self.link == "softmax":
            return torch.logsumexp(torch.log_softmax(logits, dim=-1), dim=0) - log_m
        # logit(mean p) = log(mean p) - log(mean (1 - p)), computed in log space
        log_p = torch.logsumexp(nn.functional.logsigmoid(logits), dim=0) - log_m
        log_q = torch.logsumexp(nn.functional.logsigmoid(-logits), dim=0) - log_m
        return log_p - log_q


class SmallCNN(nn.Module):
    """VGG-style stacks of (conv3-BN-ReLU) x2 + max-pool, then global average pooling -> ``(N, widths[-1])``."""

    def __init__(self, spatial_dims: int, in_channels: int, widths: Sequence[int] = (32, 64, 128)) -> None:
        super().__init__()
        conv, bn = conv_class(spatial_dims), batchnorm_class(spatial_dims)
        pool = nn.MaxPool2d if spatial_dims == 2 else nn.MaxPool3d
        gap = nn.AdaptiveAvgPool2d if spatial_dims == 2 else nn.AdaptiveAvgPool3d
        layers: list[nn.Module] = []
        c = in_channels
        for i, w in enumerate(widths):
            layers += [conv(c, w, 3, padding=1, bias=False), bn(w), nn.ReLU(inplace=True),
                       conv(w, w, 3, padding=1, bias=False), bn(w), nn.ReLU(inplace=True)]
            if i < len(widths) - 1:
                layers.append(pool(2))
            c = w
        layers += [gap(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class MLPBackbone(nn.Module):
    """Flatten the image and apply ReLU hidden layers with dropout -> ``(N, hidden[-1])``."""

    def __init__(self, in_features: int, hidden: Sequence[int] = (256, 128), dropout: float = 0.2) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        c = in_features
        for h in hidden:
            layers += [nn.Linear(c, h), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            c = h
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


@register_network("mlp")
def mlp(spatial_dims: int, in_channels: int, num_outputs: int, input_size: Sequence[int], dropout: float = 0.2,
        init: str = "kaiming", hidden: Sequence[int] = (256, 128), **_: object) -> EmbeddingClassifier:
    n_in = in_channels * int(torch.tensor(list(input_size)).prod())
    net = EmbeddingClassifier(MLPBackbone(n_in, hidden, dropout), hidden[-1], num_outputs, dropout)
    return initialise(net, init)


@register_network("smallcnn")
def small_cnn(spatial_dims: int, in_channels: int, num_outputs: int, dropout: float = 0.2, init: str = "kaiming",
              widths: Sequence[int] = (32, 64, 128), **_: object) -> EmbeddingClassifier:
    net = EmbeddingClassifier(SmallCNN(spatial_dims, in_channels, widths), widths[-1], num_outputs, dropout)
    return initialise(net, init)


def _monai_resnet(layers: Sequence[int], block: str, spatial_dims: int, in_channels: int, num_outputs: int,
                  input_size: Sequence[int], dropout: float, init: str, widths: Sequence[int] | None
                  ) -> EmbeddingClassifier:
    from monai.networks.nets import ResNet

    small_input = min(input_size) <= 64  # CIFAR-style stem keeps resolution on tiny images (MedMNIST 28x28)
    widths = list(widths or (64, 128, 256, 512))
    backbone = ResNet(block=block, layers=list(layers), block_inplanes=widths, spatial_dims=spatial_dims,
                      n_input_channels=in_channels, conv1_t_size=3 if small_input else 7,
                      conv1_t_stride=1 if small_input else 2, no_max_pool=small_input, shortcut_type="B",
                      bias_downsample=False, feed_forward=False)
    expansion = 4 if block == "bottleneck" else 1
    net = EmbeddingClassifier(backbone, widths[-1] * expansion, num_outputs, dropout)
    return initialise(net, init)


def _resnet_factory(name: str, layers: Sequence[int], block: str) -> None:
    @register_network(name)
    def build(spatial_dims: int, in_channels: int, num_outputs: int, input_size: Sequence[int],
              dropout: float = 0.0, init: str = "kaiming", widths: Sequence[int] | None = None,
              **_: object) -> EmbeddingClassifier:
        return _monai_resnet(layers, block, spatial_dims, in_channels, num_outputs, input_size, dropout, init, widths)


_resnet_factory("resnet10", (1, 1, 1, 1), "basic")
_resnet_factory("resnet18", (2, 2, 2, 2), "basic")
_resnet_factory("resnet34", (3, 4, 6, 3), "basic")
_resnet_factory("resnet50", (3, 4, 6, 3), "bottleneck")


@register_network("densenet121")
def densenet121(spatial_dims: int, in_channels: int, num_outputs: int, dropout: float = 0.0,
                init: str = "default", **_: object) -> EmbeddingClassifier:
    from monai.networks.nets import DenseNet121

    net = DenseNet121(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=1)
    embed_dim = net.class_layers.out.in_features
    net.class_layers.out = nn.Identity()
    return initialise(EmbeddingClassifier(net, embed_dim, num_outputs, dropout), init)


@register_network("efficientnet-b0")
def efficientnet_b0(spatial_dims: int, in_channels: int, num_outputs: int, dropout: float = 0.0,
                    init: str = "default", **_: object) -> EmbeddingClassifier:
    from monai.networks.nets import EfficientNetBN

    net = EfficientNetBN("efficientnet-b0", pretrained=False, spatial_dims=spatial_dims, in_channels=in_channels,
                         num_classes=1)
    embed_dim = net._fc.in_features
    net._fc = nn.Identity()
    return initialise(EmbeddingClassifier(net, embed_dim, num_outputs, dropout), init)
