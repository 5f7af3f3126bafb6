"""Inception-v4 and Inception-ResNet-v2 (Szegedy et al. 2016), wrapped from timm.

Both run on 160 px crops (like facenet's Inception-ResNet-v1): their valid-padded
stems leave a 3 x 3 map at stride 32. ``depths`` keeps only the first blocks of
each repeated Inception stage (a tiny variant for tests); widths are unchanged.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from ._wrapped import WeightsArg, make_embedder, timm_body
from .registry import register_backbone
from .torch_base import TorchEmbedder

_PAPER = ("Szegedy et al., Inception-v4, Inception-ResNet and the Impact of Residual Connections on Learning, "
          "AAAI 2017")
_LICENSE = "code Apache-2.0 (timm); weights Apache-2.0 (TF-Slim, ported by timm; trained on ImageNet-1k, whose terms apply)"
_META = dict(input_size=160, embedding_dim=512, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), paper=_PAPER,
             license=_LICENSE)


def _prune_v4(model: nn.Module, depths: Sequence[int]) -> None:
    """Keep the first ``depths[i]`` blocks of the InceptionA/B/C runs of ``model.features``."""
    keep: list[nn.Module] = []
    counts: dict[str, int] = {}
    limits = dict(zip(("InceptionA", "InceptionB", "InceptionC"), depths))
    for block in model.features:
        kind = type(block).__name__
        if kind in limits:
            counts[kind] = counts.get(kind, 0) + 1
            if counts[kind] > limits[kind]:
                continue
        keep.append(block)
    model.features = nn.Sequential(*keep)


def _prune_resnet_v2(model: nn.Module, depths: Sequence[int]) -> None:
    """Keep the first ``depths[i]`` Block35/Block17/Block8 of Inception-ResNet-v2's repeats."""
    for attr, d in zip(("repeat", "repeat_1", "repeat_2"), depths):
        setattr(model, attr, getattr(model, attr)[:d])


@register_backbone(name="inception-v4", family="inception", weights_source="timm inception_v4.tf_in1k (ImageNet)",
                   extra={"params_m": 41.93, "gmacs": 2.761, "weights": "timm:inception_v4.tf_in1k",
                          "timm_model": "inception_v4", "test_kwargs": {"depths": (1, 1, 1)}},
                   **_META)
def inception_v4(device: str | torch.device | None = None, weights: WeightsArg = None, pretrained: bool = False,
                 depths: Sequence[int] | None = None, **kwargs: Any) -> TorchEmbedder:
    """Inception-v4 (4/7/3 Inception-A/B/C blocks), 1536-d pooled -> 512-d embedding."""
    body = timm_body("inception-v4", "inception_v4", weights, pretrained, **kwargs)
    if depths is not None:
        _prune_v4(body, depths)
    return make_embedder("inception-v4", body, None, device)


@register_backbone(name="inception-resnet-v2", family="inception_resnet",
                   weights_source="timm inception_resnet_v2.tf_in1k (ImageNet)",
                   extra={"params_m": 55.09, "gmacs": 2.877, "weights": "timm:inception_resnet_v2.tf_in1k",
                          "timm_model": "inception_resnet_v2", "test_kwargs": {"depths": (1, 1, 1)}},
                   **_META)
def inception_resnet_v2(device: str | torch.device | None = None, weights: WeightsArg = None,
                        pretrained: bool = False, depths: Sequence[int] | None = None,
                        **kwargs: Any) -> TorchEmbedder:
    """Inception-ResNet-v2 (10/20/9 residual Inception blocks, scales 0.17/0.10/0.20) -> 512-d."""
    body = timm_body("inception-resnet-v2", "inception_resnet_v2", weights, pretrained, **kwargs)
    if depths is not None:
        _prune_resnet_v2(body, depths)
    return make_embedder("inception-resnet-v2", body, None, device)
