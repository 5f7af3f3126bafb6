"""HorNet (Rao et al. 2022): ConvNeXt-style blocks with recursive gated convolution (g^n conv).

g^n conv: a 1x1 projection gives ``p0`` and ``q0 .. q(n-1)`` (channel widths
C/2^(n-1), ..., C/2, C); a 7x7 depthwise convolution filters the q's; then
``p(k+1) = pw_k(p_k) * DW(q_k)`` with the channels doubling per order, and a
1x1 projection of ``p_n``. Block: ``x + g1 * gnconv(LN x)``, then
``x + g2 * MLP(LN x)`` (4x expansion). Stages use orders 2, 3, 4, 5. Our
implementation (MIT) from the paper; the official code is MIT too.
"""
from __future__ import annotations

import os
from typing import Sequence

import torch
from torch import nn

from ._scratch import FourStageNet, DropPath, LayerNorm2d, build_embedder
from .registry import register_backbone
from .torch_base import TorchEmbedder

__all__ = ["GnConv", "HorBlock", "HorNet"]


class GnConv(nn.Module):
    """Recursive gated convolution of order ``order`` with a ``kernel_size`` depthwise filter."""

    def __init__(self, dim: int, order: int = 5, kernel_size: int = 7, scale: float = 1.0 / 3.0):
        super().__init__()
        if dim % (2 ** (order - 1)):
            raise ValueError(f"gnconv: dim {dim} must be divisible by 2**(order-1) = {2 ** (order - 1)}")
        self.order = order
        self.dims = [dim // 2 ** i for i in range(order)][::-1]  # C/2^(n-1), ..., C
        self.proj_in = nn.Conv2d(dim, 2 * dim, 1)
        self.dwconv = nn.Conv2d(sum(self.dims), sum(self.dims), kernel_size, padding=kernel_size // 2,
                                groups=sum(self.dims))
        self.pws = nn.ModuleList(nn.Conv2d(self.dims[i], self.dims[i + 1], 1) for i in range(order - 1))
        self.proj_out = nn.Conv2d(dim, dim, 1)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p, q = torch.split(self.proj_in(x), (self.dims[0], sum(self.dims)), dim=1)
        gates = torch.split(self.dwconv(q) * self.scale, self.dims, dim=1)
        p = p * gates[0]
        for i, pw in enumerate(self.pws):
            p = pw(p) * gates[i + 1]
        return self.proj_out(p)


class HorBlock(nn.Module):
    """``x + g1 * gnconv(LN x)``; ``x + g2 * MLP(LN x)``."""

    def __init__(self, dim: int, order: int, kernel_size: int = 7, mlp_ratio: float = 4.0, drop_path: float = 0.0,
                 layer_scale: float = 1e-6):
        super().__init__()
        self.norm1 = LayerNorm2d(dim, eps=1e-6)
        self.gnconv = GnConv(dim, order, kernel_size)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        hidden = int(mlp_ratio * dim)
        self.pwconv1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(hidden, dim)
        self.gamma1 = nn.Parameter(layer_scale * torch.ones(dim))
        self.gamma2 = nn.Parameter(layer_scale * torch.ones(dim))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.gamma1.view(1, -1, 1, 1) * self.gnconv(self.norm1(x)))
        y = x.permute(0, 2, 3, 1)
        y = self.pwconv2(self.act(self.pwconv1(self.norm2(y)))) * self.gamma2
        return x + self.drop_path(y.permute(0, 3, 1, 2))


class HorNet(FourStageNet):
    """4-stage HorNet (stride-4 stem, 2x2 stride-2 downsampling), mean pool, LN, linear embedding."""

    def __init__(self, base_dim: int = 32, depths: Sequence[int] = (2, 2, 6, 2), orders: Sequence[int] = (2, 3, 4, 5),
                 kernel_size: int = 7, mlp_ratio: float = 4.0, drop_path_rate: float = 0.0,
                 layer_scale: float = 1e-6, embedding_dim: int = 256, in_chans: int = 3):
        super().__init__()
        dims = [base_dim * 2 ** i for i in range(4)]
        self.downsample_layers = nn.ModuleList([nn.Sequential(nn.Conv2d(in_chans, dims[0], 4, 4),
                                                              LayerNorm2d(dims[0], eps=1e-6))])
        for i in range(3):
            self.downsample_layers.append(nn.Sequential(LayerNorm2d(dims[i], eps=1e-6),
                                                        nn.Conv2d(dims[i], dims[i + 1], 2, 2)))
        self._build_stages(dims, depths, drop_path_rate,
                           lambda i, dp: HorBlock(dims[i], orders[i], kernel_size, mlp_ratio, dp, layer_scale),
                           embedding_dim)


_META = dict(
    family="hornet",
    paper="Rao et al., HorNet: Efficient High-Order Spatial Interactions with Recursive Gated Convolutions, "
    "NeurIPS 2022",
    license="code MIT (this project's implementation from the paper); official code MIT (raoyongming/HorNet)",
    weights_source="random initialisation",
)


@register_backbone(name="hornet-nano-7x7", input_size=112, embedding_dim=256,
                   extra={"params_m": 3.20, "gmacs": 0.122,
                          "test_kwargs": {"base_dim": 16, "depths": (1, 1, 1, 1)}}, **_META)
def hornet_nano_7x7(device: str | None = None, weights: str | os.PathLike | None = None, init: str = "kaiming",
                    **kwargs) -> TorchEmbedder:
    """HorNet with base width 32, depths 2/2/6/2, g^n orders 2..5, 7x7 depthwise, 256-d embedding @112."""
    cfg = dict(base_dim=32, depths=(2, 2, 6, 2), orders=(2, 3, 4, 5), embedding_dim=256)
    net = HorNet(**{**cfg, **kwargs})
    return build_embedder("hornet-nano-7x7", net, weights=weights, init=init, device=device)
