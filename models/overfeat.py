"""OverFeat-fast features at reduced width (Sermanet et al. 2014; Razavian et al. 2014).

Razavian et al. ("CNN Features off-the-shelf") L2-normalise the output of
OverFeat's first fully connected layer and put a linear SVM (or L2 distance) on
top. OverFeat-fast: 96@11x11/4, max-pool 2, 256@5x5, max-pool 2,
512/1024/1024@3x3, max-pool 2, FC 3072, FC 4096. Here the convolutions keep
that layout at ``width`` times the channels (1/4 by default), the first
convolution uses stride 2 for face crops, a global pooling replaces the fixed
spatial grid, and one FC layer (OverFeat's 3072/4096-d FC, reduced) gives the
embedding. OverFeat's own code and weights are research-only: nothing of them
is used; this is our implementation (MIT) from the paper, randomly initialised.
"""
from __future__ import annotations

import os

import torch
from torch import nn

from ._scratch import build_embedder
from .registry import register_backbone
from .torch_base import TorchEmbedder

__all__ = ["OverFeatFast"]

_BASE_WIDTHS = (96, 256, 512, 1024, 1024)


class OverFeatFast(nn.Module):
    """OverFeat-fast convolutions (scaled by ``width``) + global pooling + FC embedding."""

    def __init__(self, width: float = 0.25, embedding_dim: int = 256, stem_stride: int = 2,
                 global_pool: str = "avg", drop_rate: float = 0.2, in_chans: int = 3):
        super().__init__()
        c1, c2, c3, c4, c5 = (max(4, int(round(c * width))) for c in _BASE_WIDTHS)
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, c1, 11, stride=stem_stride, padding=5), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 5, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(c2, c3, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(c3, c4, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(c4, c5, 3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        if global_pool not in ("avg", "max"):
            raise ValueError(f"global_pool must be 'avg' or 'max', got {global_pool!r}")
        self.pool = nn.AdaptiveAvgPool2d(1) if global_pool == "avg" else nn.AdaptiveMaxPool2d(1)
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(c5, embedding_dim)  # OverFeat's first FC layer, reduced to the embedding
        self.embedding_dim = embedding_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x)).flatten(1)
        return self.fc(self.drop(x))


_META = dict(
    family="overfeat",
    paper="Sermanet et al., OverFeat: Integrated Recognition, Localization and Detection using Convolutional "
    "Networks, ICLR 2014; Razavian et al., CNN Features off-the-shelf: an Astounding Baseline for Recognition, "
    "CVPRW 2014",
    license="code MIT (this project's implementation from the paper); OverFeat's own code and weights are "
    "research-only and not used",
    weights_source="random initialisation",
)


@register_backbone(name="overfeat-fast-025", input_size=112, embedding_dim=256,
                   extra={"params_m": 1.07, "gmacs": 0.245,
                          "test_kwargs": {"width": 0.0625, "drop_rate": 0.0}}, **_META)
def overfeat_fast_025(device: str | None = None, weights: str | os.PathLike | None = None, init: str = "kaiming",
                      **kwargs) -> TorchEmbedder:
    """OverFeat-fast at 1/4 width, first conv stride 2, global average pooling, 256-d FC embedding @112."""
    cfg = dict(width=0.25, embedding_dim=256, stem_stride=2)
    net = OverFeatFast(**{**cfg, **kwargs})
    return build_embedder("overfeat-fast-025", net, weights=weights, init=init, device=device)
