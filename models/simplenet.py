"""SimpleNet v1 (Hasanpour et al.): a plain stack of 3x3 conv-BN-ReLU layers.

13 convolutions (two of them 1x1), two 2x2 max-pools followed by dropout, a
global max pool and dropout; here a linear layer maps the pooled features to
the embedding. The ImageNet layout (64, 128x5, pool, 256x3, 512, pool,
2048@1x1, 256@1x1, 256) scaled by ``scale``; ``stride_mode`` picks which early
layers stride 2 as in the official ImageNet models (mode 1: layers 0-2; mode 0
keeps full resolution and is far slower). Our implementation (MIT) from the
paper; the official repositories are MIT too.
"""
from __future__ import annotations

import os

import torch
from torch import nn

from ._scratch import build_embedder
from .registry import register_backbone
from .torch_base import TorchEmbedder

__all__ = ["SimpleNet"]

# (channels, kernel) or "P" (2x2 max-pool + dropout).
_IMAGENET_CFG: tuple = ((64, 3), (128, 3), (128, 3), (128, 3), (128, 3), (128, 3), "P",
                        (256, 3), (256, 3), (256, 3), (512, 3), "P",
                        (2048, 1), (256, 1), (256, 3))
# Layer indices (into the config, counting pools) that use stride 2, per official stride mode.
_STRIDE_MODES: dict[int, tuple[int, ...]] = {0: (), 1: (0, 1, 2), 2: (0, 1, 3), 3: (0, 1, 4), 4: (0, 2, 4)}


class SimpleNet(nn.Module):
    """SimpleNet v1 (ImageNet layout) at width ``scale``, global max pool, linear embedding."""

    def __init__(self, scale: float = 0.5, stride_mode: int = 1, embedding_dim: int = 128,
                 drop_rate: float = 0.1, in_chans: int = 3):
        super().__init__()
        if stride_mode not in _STRIDE_MODES:
            raise ValueError(f"stride_mode must be one of {sorted(_STRIDE_MODES)}, got {stride_mode}")
        strided = _STRIDE_MODES[stride_mode]
        layers: list[nn.Module] = []
        cin = in_chans
        for i, spec in enumerate(_IMAGENET_CFG):
            if spec == "P":
                layers += [nn.MaxPool2d(2, 2), nn.Dropout2d(drop_rate)]
                continue
            ch, k = spec
            cout = max(1, int(round(ch * scale)))
            layers += [nn.Conv2d(cin, cout, k, stride=2 if i in strided else 1, padding=k // 2, bias=False),
                       nn.BatchNorm2d(cout, eps=1e-5, momentum=0.05), nn.ReLU(inplace=True)]
            cin = cout
        self.features = nn.Sequential(*layers)
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(cin, embedding_dim)
        self.embedding_dim = embedding_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = torch.amax(x, dim=(2, 3))  # global max pool
        return self.fc(self.drop(x))


_META = dict(
    family="simplenet",
    paper="Hasanpour et al., Lets keep it simple, Using simple architectures to outperform deeper and more "
    "complex architectures, arXiv:1608.06037 (2016)",
    license="code MIT (this project's implementation from the paper); official code MIT (Coderx7/SimpleNet_Pytorch)",
    weights_source="random initialisation",
)


@register_backbone(name="simplenet-v1-050", input_size=112, embedding_dim=128,
                   extra={"params_m": 1.39, "gmacs": 0.083,
                          "test_kwargs": {"scale": 0.125, "drop_rate": 0.0}}, **_META)
def simplenet_v1_050(device: str | None = None, weights: str | os.PathLike | None = None, init: str = "kaiming",
                     **kwargs) -> TorchEmbedder:
    """SimpleNet v1 at scale 0.5, stride mode 1, 128-d embedding @112."""
    cfg = dict(scale=0.5, stride_mode=1, embedding_dim=128)
    net = SimpleNet(**{**cfg, **kwargs})
    return build_embedder("simplenet-v1-050", net, weights=weights, init=init, device=device)
