"""IBN-Net (Pan et al. 2018): ResNets mixing Instance and Batch Normalisation.

IBN-a: in the first three stages, the normalisation after each block's first
convolution is half InstanceNorm (affine) and half BatchNorm over the channels;
the last stage keeps plain BatchNorm. IBN-b: InstanceNorm (affine) after the
stem convolution and after the residual sum of the last block of stages 1-2.
Adaptive average pooling, then a linear embedding. Module names follow the
official code (MIT), so its ImageNet state dicts load (the classifier ``fc``
is ignored): ``pretrained=True`` looks for ``resnet18_ibn_{a,b}-*.pth`` in the
torch hub cache (never downloads), ``weights=PATH`` takes any file. Our
implementation (MIT) from the paper.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from ._scratch import build_embedder
from .registry import MissingWeightsError, register_backbone
from .torch_base import TorchEmbedder

_RELEASE = "https://github.com/XingangPan/IBN-Net/releases/download/v1.0/"
OFFICIAL_FILES = {"resnet18-ibn-a": "resnet18_ibn_a-2f571257.pth", "resnet18-ibn-b": "resnet18_ibn_b-bc2f3c11.pth"}

__all__ = ["IBN", "BasicBlockIBN", "ResNetIBN"]


class IBN(nn.Module):
    """Normalise the first ``ratio`` of the channels with InstanceNorm (affine), the rest with BatchNorm."""

    def __init__(self, planes: int, ratio: float = 0.5):
        super().__init__()
        self.half = int(planes * ratio)
        self.IN = nn.InstanceNorm2d(self.half, affine=True)
        self.BN = nn.BatchNorm2d(planes - self.half)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = torch.split(x, (self.half, x.shape[1] - self.half), dim=1)
        return torch.cat((self.IN(a.contiguous()), self.BN(b.contiguous())), dim=1)


class BasicBlockIBN(nn.Module):
    """ResNet basic block; ``ibn`` is None, 'a' (IBN after conv1) or 'b' (IN after the residual sum)."""

    def __init__(self, inplanes: int, planes: int, ibn: str | None = None, stride: int = 1,
                 downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = IBN(planes) if ibn == "a" else nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.IN = nn.InstanceNorm2d(planes, affine=True) if ibn == "b" else None
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out)) + residual
        if self.IN is not None:
            out = self.IN(out)
        return self.relu(out)


class ResNetIBN(nn.Module):
    """ResNet (basic blocks) with IBN stages, adaptive average pooling and a linear embedding."""

    def __init__(self, layers: Sequence[int] = (2, 2, 2, 2), ibn_cfg: Sequence[str | None] = ("a", "a", "a", None),
                 width: int = 64, embedding_dim: int = 256, in_chans: int = 3):
        super().__init__()
        if len(layers) != 4 or len(ibn_cfg) != 4:
            raise ValueError("layers and ibn_cfg need four stages")
        self.inplanes = width
        self.conv1 = nn.Conv2d(in_chans, width, 7, 2, 3, bias=False)
        self.bn1 = nn.InstanceNorm2d(width, affine=True) if ibn_cfg[0] == "b" else nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(width, layers[0], 1, ibn_cfg[0])
        self.layer2 = self._make_layer(width * 2, layers[1], 2, ibn_cfg[1])
        self.layer3 = self._make_layer(width * 4, layers[2], 2, ibn_cfg[2])
        self.layer4 = self._make_layer(width * 8, layers[3], 2, ibn_cfg[3])
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(width * 8, embedding_dim)
        self.embedding_dim = embedding_dim

    def _make_layer(self, planes: int, blocks: int, stride: int, ibn: str | None) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))
        mods = []
        for i in range(blocks):
            # IBN-b puts IN after the residual sum of the stage's last block only.
            blk_ibn = None if ibn == "b" and i < blocks - 1 else ibn
            mods.append(BasicBlockIBN(self.inplanes, planes, blk_ibn, stride if i == 0 else 1,
                                      downsample if i == 0 else None))
            self.inplanes = planes
        return nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.head(self.avgpool(x).flatten(1))


_META = dict(
    family="ibn",
    mean=(0.485, 0.456, 0.406),
    std=(0.229, 0.224, 0.225),
    paper="Pan et al., Two at Once: Enhancing Learning and Generalization Capacities via IBN-Net, ECCV 2018",
    license="code MIT (this project's implementation from the paper); official code MIT (XingangPan/IBN-Net), "
    "its ImageNet weights (MIT) load with pretrained=True (hub cache) or weights=PATH",
    weights_source="random initialisation (or the official ImageNet weights: pretrained=True or weights=PATH)",
)
_TINY = {"width": 8, "layers": (1, 1, 1, 1)}


def official_weights_path(name: str) -> Path:
    """Where torch.hub keeps the official ImageNet file: ``$TORCH_HOME/hub/checkpoints/<file>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / OFFICIAL_FILES[name]


def _create(name: str, cfg: dict, device: str | None, weights: str | os.PathLike | None, pretrained: bool,
            init: str, kwargs: dict) -> TorchEmbedder:
    if pretrained and weights is None:
        path = official_weights_path(name)
        if not path.is_file():
            raise MissingWeightsError(name, str(path), f"Download {_RELEASE}{OFFICIAL_FILES[name]} to that path "
                                      "(nothing is downloaded here), or pass weights=PATH.")
        weights = path
    net = ResNetIBN(**{**cfg, **kwargs})
    return build_embedder(name, net, weights=weights, init=init, device=device)


@register_backbone(name="resnet18-ibn-a", input_size=112, embedding_dim=256,
                   extra={"params_m": 11.31, "gmacs": 0.485, "test_kwargs": dict(_TINY),
                          "weights": "hub:resnet18_ibn_a-2f571257.pth"},
                   **_META)
def resnet18_ibn_a(device: str | None = None, weights: str | os.PathLike | None = None, pretrained: bool = False,
                   init: str = "kaiming", **kwargs) -> TorchEmbedder:
    """ResNet-18 with IBN-a in stages 1-3, 256-d embedding @112."""
    return _create("resnet18-ibn-a", dict(layers=(2, 2, 2, 2), ibn_cfg=("a", "a", "a", None), embedding_dim=256),
                   device, weights, pretrained, init, kwargs)


@register_backbone(name="resnet18-ibn-b", input_size=112, embedding_dim=256,
                   extra={"params_m": 11.31, "gmacs": 0.485, "test_kwargs": dict(_TINY),
                          "weights": "hub:resnet18_ibn_b-bc2f3c11.pth"},
                   **_META)
def resnet18_ibn_b(device: str | None = None, weights: str | os.PathLike | None = None, pretrained: bool = False,
                   init: str = "kaiming", **kwargs) -> TorchEmbedder:
    """ResNet-18 with IBN-b (IN after the stem and after stages 1-2), 256-d embedding @112."""
    return _create("resnet18-ibn-b", dict(layers=(2, 2, 2, 2), ibn_cfg=("b", "b", None, None), embedding_dim=256),
                   device, weights, pretrained, init, kwargs)
