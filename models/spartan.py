"""SpaRTAN (Pay et al. 2025): spatial reinforcement and wave-based channel aggregation.

Block: ``x = x + g1 * SpatialMixer(GN x)``, then ``x = x + g2 * ChannelMixer(GN x)``
(GN: GroupNorm with one group; g1, g2: layer scales).

* Spatial mixer: a 1x1 value projection feeds two parallel depthwise 3x3
  branches, one plain and one dilated (receptive fields of different order);
  their sum passes GELU and squeeze-and-excitation and is gated by
  ``SiLU(1x1 x)`` before a 1x1 output projection.
* Channel mixer (gated wave aggregation): a 1x1 gives amplitudes ``A`` and a
  1x1-BN-ReLU gives phases ``theta``; the wave ``A cos(theta)``,
  ``A sin(theta)`` is aggregated over neighbouring pixels by depthwise 3x3
  convolutions, gated by ``GELU(1x1 x)`` and projected back (expansion 2).

Our implementation (MIT) from the paper's description; the official code
(henry-pay/SpaRTAN) is Apache-2.0 and its exact layer layout is not copied,
so its weights do not load here.
"""
from __future__ import annotations

import os
from typing import Sequence

import torch
from torch import nn

from ._scratch import FourStageNet, DropPath, SqueezeExcite, build_embedder
from .registry import register_backbone
from .torch_base import TorchEmbedder

__all__ = ["SpatialMixer", "WaveChannelMixer", "SpaRTANBlock", "SpaRTAN"]


class SpatialMixer(nn.Module):
    """proj_out(SiLU(gate x) * SE(GELU(DW3x3(v) + DW3x3_dilated(v)))), v = proj_in x."""

    def __init__(self, dim: int, dilation: int = 2):
        super().__init__()
        self.proj_in = nn.Conv2d(dim, dim, 1)
        self.dw = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.dw_dilated = nn.Conv2d(dim, dim, 3, padding=dilation, dilation=dilation, groups=dim)
        self.act = nn.GELU()
        self.se = SqueezeExcite(dim, 0.25)
        self.gate = nn.Conv2d(dim, dim, 1)
        self.proj_out = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = self.proj_in(x)
        y = self.se(self.act(self.dw(v) + self.dw_dilated(v)))
        return self.proj_out(nn.functional.silu(self.gate(x)) * y)


class WaveChannelMixer(nn.Module):
    """Gated wave aggregation: fc_out(GELU(gate x) * (DW_c(A cos t) + DW_s(A sin t)))."""

    def __init__(self, dim: int, ratio: float = 2.0):
        super().__init__()
        hidden = int(dim * ratio)
        self.amplitude = nn.Conv2d(dim, hidden, 1)
        self.phase = nn.Sequential(nn.Conv2d(dim, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU())
        self.agg_cos = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.agg_sin = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden, bias=False)
        self.gate = nn.Conv2d(dim, hidden, 1)
        self.act = nn.GELU()
        self.fc_out = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, theta = self.amplitude(x), self.phase(x)
        wave = self.agg_cos(a * torch.cos(theta)) + self.agg_sin(a * torch.sin(theta))
        return self.fc_out(self.act(self.gate(x)) * wave)


class SpaRTANBlock(nn.Module):
    """``x + g1 * SpatialMixer(GN x)``; ``x + g2 * ChannelMixer(GN x)``."""

    def __init__(self, dim: int, dilation: int = 2, mlp_ratio: float = 2.0, drop_path: float = 0.0,
                 layer_scale: float = 1e-5):
        super().__init__()
        self.norm1 = nn.GroupNorm(1, dim)
        self.spatial = SpatialMixer(dim, dilation)
        self.norm2 = nn.GroupNorm(1, dim)
        self.channel = WaveChannelMixer(dim, mlp_ratio)
        self.g1 = nn.Parameter(layer_scale * torch.ones(1, dim, 1, 1))
        self.g2 = nn.Parameter(layer_scale * torch.ones(1, dim, 1, 1))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.g1 * self.spatial(self.norm1(x)))
        return x + self.drop_path(self.g2 * self.channel(self.norm2(x)))


class SpaRTAN(FourStageNet):
    """4-stage SpaRTAN: two stride-2 3x3 stem convs, stride-2 3x3 downsampling, mean pool, linear embedding."""

    def __init__(self, dims: Sequence[int] = (40, 80, 128, 224), depths: Sequence[int] = (3, 3, 8, 2),
                 dilations: Sequence[int] = (3, 2, 2, 1), mlp_ratio: float = 2.0, drop_path_rate: float = 0.0,
                 layer_scale: float = 1e-5, embedding_dim: int = 256, in_chans: int = 3):
        super().__init__()
        self.downsample_layers = nn.ModuleList([nn.Sequential(
            nn.Conv2d(in_chans, dims[0] // 2, 3, 2, 1, bias=False), nn.BatchNorm2d(dims[0] // 2), nn.GELU(),
            nn.Conv2d(dims[0] // 2, dims[0], 3, 2, 1, bias=False), nn.BatchNorm2d(dims[0]))])
        for i in range(3):
            self.downsample_layers.append(nn.Sequential(nn.Conv2d(dims[i], dims[i + 1], 3, 2, 1, bias=False),
                                                        nn.BatchNorm2d(dims[i + 1])))
        self._build_stages(dims, depths, drop_path_rate,
                           lambda i, dp: SpaRTANBlock(dims[i], dilations[i], mlp_ratio, dp, layer_scale),
                           embedding_dim, norm_eps=1e-5)


_META = dict(
    family="spartan",
    paper="Pay et al., SpaRTAN: Spatial Reinforcement Token-based Aggregation Network for Visual Recognition, "
    "IJCNN 2025 (arXiv:2507.10999)",
    license="code MIT (this project's implementation from the paper); official code Apache-2.0 (henry-pay/SpaRTAN)",
    weights_source="random initialisation",
)


@register_backbone(name="spartan-t", input_size=112, embedding_dim=256,
                   extra={"params_m": 3.52, "gmacs": 0.204,
                          "test_kwargs": {"dims": (8, 16, 32, 64), "depths": (1, 1, 1, 1)}}, **_META)
def spartan_t(device: str | None = None, weights: str | os.PathLike | None = None, init: str = "kaiming",
              **kwargs) -> TorchEmbedder:
    """SpaRTAN-T-like (40/80/128/224, depths 3/3/8/2, wave expansion 2), 256-d embedding @112."""
    cfg = dict(dims=(40, 80, 128, 224), depths=(3, 3, 8, 2), mlp_ratio=2.0, embedding_dim=256)
    net = SpaRTAN(**{**cfg, **kwargs})
    return build_embedder("spartan-t", net, weights=weights, init=init, device=device)
