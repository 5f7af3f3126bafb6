"""LSNet (Wang et al. 2025): "see large, focus small".

LS convolution: large-kernel perception (LKP: 1x1 -> 7x7 depthwise -> 1x1,
then a 1x1 to ``k*k`` weights per pixel for each of ``C/groups`` weight
channels, GroupNorm) predicts a small k x k kernel at every pixel, and
small-kernel aggregation (SKA) applies it to the input: input channel ``c``
uses weight channel ``c mod (C/groups)``. The official SKA is a GPU-only
Triton kernel; :func:`ska` here is a CPU/GPU ``unfold`` implementation.
Blocks alternate RepVGG-style depthwise 3x3 + SE and LS convolution (the last
stage uses attention instead), each followed by a residual FFN. Our
implementation (MIT) from the paper; the official repository has no licence
file (its model card says MIT).
"""
from __future__ import annotations

import itertools
import math
import os
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._scratch import ConvNormAct, SqueezeExcite, build_embedder
from .registry import register_backbone
from .torch_base import TorchEmbedder

__all__ = ["ska", "SKA", "LKP", "LSConv", "LSNet"]


def ska(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Small-kernel aggregation: ``out[b,c,i,j] = sum_k x[b,c,(i,j)+off_k] * w[b, c % Cw, k, i, j]``.

    ``x``: ``(B, C, H, W)``; ``w``: ``(B, Cw, k*k, H, W)`` with ``C % Cw == 0``
    and odd ``k``; zero padding, stride 1. Uses ``F.unfold`` (any device).
    """
    b, c, h, wd = x.shape
    cw, kk = w.shape[1], w.shape[2]
    k = math.isqrt(kk)
    if k * k != kk or k % 2 == 0:
        raise ValueError(f"ska: w.shape[2] = {kk} must be the square of an odd kernel size")
    if c % cw:
        raise ValueError(f"ska: {c} input channels are not a multiple of {cw} weight channels")
    cols = F.unfold(x, k, padding=k // 2).view(b, c // cw, cw, kk, h, wd)
    return (cols * w.unsqueeze(1)).sum(dim=3).reshape(b, c, h, wd)


class SKA(nn.Module):
    """Module form of :func:`ska` (reports its multiply-adds to :func:`models._scratch.measure`)."""

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return ska(x, w)

    @staticmethod
    def uncounted_macs(inputs: tuple, output: torch.Tensor) -> int:
        return output.numel() * inputs[1].shape[2]


class LKP(nn.Module):
    """Large-kernel perception: per-pixel ``sks x sks`` kernels for ``dim // groups`` weight channels."""

    def __init__(self, dim: int, lks: int = 7, sks: int = 3, groups: int = 8):
        super().__init__()
        if dim % groups or dim % 2:
            raise ValueError(f"LKP: dim {dim} must be even and divisible by groups {groups}")
        self.cv1 = ConvNormAct(dim, dim // 2, 1)
        self.cv2 = ConvNormAct(dim // 2, dim // 2, lks, groups=dim // 2, act=None)
        self.cv3 = ConvNormAct(dim // 2, dim // 2, 1)
        self.cv4 = nn.Conv2d(dim // 2, sks * sks * dim // groups, 1)
        self.norm = nn.GroupNorm(dim // groups, sks * sks * dim // groups)
        self.sks, self.wc = sks, dim // groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.norm(self.cv4(self.cv3(self.cv2(self.cv1(x)))))
        b, _, h, wd = w.shape
        return w.view(b, self.wc, self.sks * self.sks, h, wd)


class LSConv(nn.Module):
    """``BN(SKA(x, LKP(x))) + x``."""

    def __init__(self, dim: int, lks: int = 7, sks: int = 3, groups: int = 8):
        super().__init__()
        self.lkp = LKP(dim, lks, sks, groups)
        self.ska = SKA()
        self.bn = nn.BatchNorm2d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.ska(x, self.lkp(x))) + x


class RepVGGDW(nn.Module):
    """Depthwise 3x3 (BN) + depthwise 1x1 (BN) + identity."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv = ConvNormAct(dim, dim, 3, groups=dim, act=None)
        self.conv1 = ConvNormAct(dim, dim, 1, groups=dim, act=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + self.conv1(x) + x


class Attention(nn.Module):
    """Multi-head self-attention on the map (1x1 qkv, depthwise 3x3 on q, relative-offset biases)."""

    def __init__(self, dim: int, key_dim: int, num_heads: int, attn_ratio: float, resolution: int):
        super().__init__()
        self.num_heads, self.key_dim = num_heads, key_dim
        self.scale = key_dim ** -0.5
        self.nh_kd = key_dim * num_heads
        self.dh = int(attn_ratio * key_dim) * num_heads
        self.qkv = ConvNormAct(dim, self.dh + 2 * self.nh_kd, 1, act=None)
        self.dw = ConvNormAct(self.nh_kd, self.nh_kd, 3, groups=self.nh_kd, act=None)
        self.proj = nn.Sequential(nn.ReLU(), ConvNormAct(self.dh, dim, 1, act=None, bn_weight=0.0))
        self.resolution = resolution
        # One learned bias per head and |dy|, |dx| offset (offsets beyond the training resolution are clamped).
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, resolution * resolution))
        self._idx: dict[tuple[int, int], torch.Tensor] = {}

    def _bias(self, h: int, w: int) -> torch.Tensor:
        if (h, w) not in self._idx:
            pts = list(itertools.product(range(h), range(w)))
            r = self.resolution
            self._idx[(h, w)] = torch.tensor(
                [[min(abs(p[0] - q[0]), r - 1) * r + min(abs(p[1] - q[1]), r - 1) for q in pts] for p in pts])
        return self.attention_biases[:, self._idx[(h, w)].to(self.attention_biases.device)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        n = h * w
        q, k, v = self.qkv(x).split((self.nh_kd, self.nh_kd, self.dh), dim=1)
        q = self.dw(q)
        q = q.reshape(b, self.num_heads, -1, n)
        k = k.reshape(b, self.num_heads, -1, n)
        v = v.reshape(b, self.num_heads, -1, n)
        attn = (q.transpose(-2, -1) @ k) * self.scale + self._bias(h, w)
        attn = attn.softmax(dim=-1)
        out = (v @ attn.transpose(-2, -1)).reshape(b, self.dh, h, w)
        return self.proj(out)


class _Residual(nn.Module):
    def __init__(self, fn: nn.Module):
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fn(x)


class FFN(nn.Sequential):
    """1x1 (BN) -> ReLU -> 1x1 (BN, zero-initialised scale)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__(ConvNormAct(dim, hidden, 1), ConvNormAct(hidden, dim, 1, act=None, bn_weight=0.0))


class LSBlock(nn.Module):
    """Even depth: RepVGG-DW + SE; odd depth: LS conv (attention in the last stage); then residual FFN."""

    def __init__(self, dim: int, key_dim: int, num_heads: int, attn_ratio: float, resolution: int, stage: int,
                 depth: int, last_stage: int = 3, lks: int = 7, groups: int = 8):
        super().__init__()
        if depth % 2 == 0:
            self.mixer: nn.Module = RepVGGDW(dim)
            self.se: nn.Module = SqueezeExcite(dim, 0.25, 8)
        else:
            self.se = nn.Identity()
            if stage == last_stage:
                self.mixer = _Residual(Attention(dim, key_dim, num_heads, attn_ratio, resolution))
            else:
                self.mixer = LSConv(dim, lks, 3, groups)
        self.ffn = _Residual(FFN(dim, 2 * dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ffn(self.se(self.mixer(x)))


class LSNet(nn.Module):
    """LSNet: stride-8 conv stem, 4 stages (depthwise stride-2 + 1x1 between), mean pool, linear embedding."""

    def __init__(self, img_size: int = 112, embed_dim: Sequence[int] = (64, 128, 256, 384),
                 depth: Sequence[int] = (0, 2, 8, 10), num_heads: Sequence[int] = (3, 3, 3, 4), key_dim: int = 16,
                 lks: int = 7, groups: int = 8, embedding_dim: int = 256, in_chans: int = 3):
        super().__init__()
        e = embed_dim
        self.patch_embed = nn.Sequential(
            ConvNormAct(in_chans, e[0] // 4, 3, 2), ConvNormAct(e[0] // 4, e[0] // 2, 3, 2),
            ConvNormAct(e[0] // 2, e[0], 3, 2, act=None))
        resolution = math.ceil(img_size / 8)
        stages: list[nn.Module] = []
        for i in range(4):
            mods: list[nn.Module] = []
            if i > 0:
                mods += [ConvNormAct(e[i - 1], e[i - 1], 3, 2, groups=e[i - 1], act=None),
                         ConvNormAct(e[i - 1], e[i], 1, act=None)]
                resolution = (resolution - 1) // 2 + 1
            ratio = e[i] / (key_dim * num_heads[i])
            mods += [LSBlock(e[i], key_dim, num_heads[i], ratio, resolution, i, d, 3, lks, groups)
                     for d in range(depth[i])]
            stages.append(nn.Sequential(*mods))
        self.stages = nn.Sequential(*stages)
        self.head = nn.Linear(e[-1], embedding_dim)
        self.embedding_dim = embedding_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.patch_embed(x))
        return self.head(x.mean((2, 3)))


_META = dict(
    family="lsnet",
    paper="Wang et al., LSNet: See Large, Focus Small, CVPR 2025",
    license="code MIT (this project's implementation from the paper, with a CPU unfold small-kernel aggregation); "
    "official code THU-MIG/lsnet has no licence file (model card: MIT)",
    weights_source="random initialisation",
)


@register_backbone(name="lsnet-t", input_size=112, embedding_dim=256,
                   extra={"params_m": 11.12, "gmacs": 0.089,
                          "test_kwargs": {"embed_dim": (16, 32, 32, 48), "depth": (0, 2, 1, 2),
                                          "num_heads": (2, 2, 2, 2), "key_dim": 8}}, **_META)
def lsnet_t(device: str | None = None, weights: str | os.PathLike | None = None, init: str = "kaiming",
            **kwargs) -> TorchEmbedder:
    """LSNet-T (64/128/256/384, depths 0/2/8/10), 256-d embedding @112."""
    cfg = dict(img_size=112, embed_dim=(64, 128, 256, 384), depth=(0, 2, 8, 10), num_heads=(3, 3, 3, 4),
               key_dim=16, embedding_dim=256)
    net = LSNet(**{**cfg, **kwargs})
    return build_embedder("lsnet-t", net, weights=weights, init=init, device=device)
