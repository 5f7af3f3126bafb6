"""UniRepLKNet (Ding et al. 2024): large-kernel ConvNet with the dilated reparam block.

Dilated reparam block: a large-kernel depthwise conv (BN) plus parallel small
dilated depthwise convs (each with BN), summed. A dilated k x k kernel with
rate r equals a non-dilated (r(k-1)+1)-wide kernel with zeros between the
taps, so at inference every branch and BN folds into one large kernel
(:meth:`UniRepLKNet.reparameterize`). Block: ``x + gamma * BN(Linear(GRN(GELU(
Linear(SE(BN(DW x)))))))``. Stem: two 3x3 stride-2 convs with LN; 3x3
stride-2 downsampling with LN. UniRepLKNet-A: widths 40/80/160/320, depths
2/2/6/2; at 112 input the late maps are 7 and 4 wide, so the kernels are
3 / 13 / 7 / 5 instead of 3 / 13 / 13 / 13. Our implementation (MIT) from the
paper; the official code is Apache-2.0.
"""
from __future__ import annotations

import os
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._scratch import FourStageNet, DropPath, LayerNorm2d, build_embedder
from .registry import register_backbone
from .torch_base import TorchEmbedder

__all__ = ["DilatedReparamBlock", "UniRepLKNetBlock", "UniRepLKNet", "fuse_conv_bn", "dilated_to_dense"]

# Branch (kernel sizes, dilation rates) of the dilated reparam block for each large kernel size.
BRANCHES: dict[int, tuple[tuple[int, ...], tuple[int, ...]]] = {
    17: ((5, 9, 3, 3, 3), (1, 2, 4, 5, 7)),
    15: ((5, 7, 3, 3, 3), (1, 2, 3, 5, 7)),
    13: ((5, 7, 3, 3, 3), (1, 2, 3, 4, 5)),
    11: ((5, 5, 3, 3, 3), (1, 2, 3, 4, 5)),
    9: ((5, 5, 3, 3), (1, 2, 3, 4)),
    7: ((5, 3, 3), (1, 2, 3)),
    5: ((3, 3), (1, 2)),
}


def fuse_conv_bn(weight: torch.Tensor, bias: torch.Tensor | None,
                 bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Kernel and bias of ``bn(conv(x))`` as one convolution (BN in eval mode)."""
    std = (bn.running_var + bn.eps).sqrt()
    t = bn.weight / std
    b = torch.zeros_like(bn.running_mean) if bias is None else bias
    return weight * t.reshape(-1, 1, 1, 1), bn.bias + (b - bn.running_mean) * t


def dilated_to_dense(kernel: torch.Tensor, rate: int) -> torch.Tensor:
    """The non-dilated kernel equal to ``kernel`` applied with dilation ``rate`` (zeros between taps)."""
    if rate == 1:
        return kernel
    o, i, kh, kw = kernel.shape
    dense = kernel.new_zeros(o, i, rate * (kh - 1) + 1, rate * (kw - 1) + 1)
    dense[:, :, ::rate, ::rate] = kernel
    return dense


class DilatedReparamBlock(nn.Module):
    """Depthwise large kernel (BN) + parallel dilated small depthwise kernels (BN each), summed."""

    def __init__(self, channels: int, kernel_size: int):
        super().__init__()
        if kernel_size not in BRANCHES:
            raise ValueError(f"dilated reparam block: kernel_size must be one of {sorted(BRANCHES)}, got {kernel_size}")
        self.kernel_size = kernel_size
        self.lk_origin = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels,
                                   bias=False)
        self.origin_bn = nn.BatchNorm2d(channels)
        self.kernel_sizes, self.dilates = BRANCHES[kernel_size]
        self.dil_convs = nn.ModuleList()
        self.dil_bns = nn.ModuleList()
        for k, r in zip(*BRANCHES[kernel_size]):
            self.dil_convs.append(nn.Conv2d(channels, channels, k, padding=(r * (k - 1) + 1) // 2, dilation=r,
                                            groups=channels, bias=False))
            self.dil_bns.append(nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.origin_bn(self.lk_origin(x))
        for conv, bn in zip(self.dil_convs, self.dil_bns):
            out = out + bn(conv(x))
        return out

    @torch.no_grad()
    def merged_kernel(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One ``kernel_size`` depthwise kernel and bias equal to the whole block (BNs in eval mode)."""
        w, b = fuse_conv_bn(self.lk_origin.weight, None, self.origin_bn)
        for conv, bn, r in zip(self.dil_convs, self.dil_bns, self.dilates):
            wd, bd = fuse_conv_bn(conv.weight, None, bn)
            wd = dilated_to_dense(wd, r)
            pad = (self.kernel_size - wd.shape[-1]) // 2
            w = w + F.pad(wd, [pad] * 4)
            b = b + bd
        return w, b


class GRN(nn.Module):
    """Global response normalisation (ConvNeXt V2) on NHWC tensors."""

    def __init__(self, dim: int, use_bias: bool = True):
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(dim))
        self.beta = nn.Parameter(torch.zeros(dim)) if use_bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gx = torch.norm(x, p=2, dim=(1, 2), keepdim=True)
        nx = gx / (gx.mean(dim=-1, keepdim=True) + 1e-6)
        out = (self.gamma * nx + 1) * x
        return out if self.beta is None else out + self.beta


class SEBlock(nn.Module):
    """UniRepLKNet's squeeze-and-excitation (1x1 convs with bias, ReLU, sigmoid)."""

    def __init__(self, channels: int, internal: int):
        super().__init__()
        self.down = nn.Conv2d(channels, internal, 1)
        self.up = nn.Conv2d(internal, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = F.relu(self.down(x.mean((2, 3), keepdim=True)))
        return x * torch.sigmoid(self.up(s))


class UniRepLKNetBlock(nn.Module):
    """Depthwise (dilated reparam for kernels >= 5) -> BN -> SE -> Linear/GELU/GRN/Linear -> BN, layer scale."""

    def __init__(self, dim: int, kernel_size: int, drop_path: float = 0.0, layer_scale: float = 1e-6,
                 ffn_factor: float = 4.0):
        super().__init__()
        if kernel_size >= 5:
            self.dwconv: nn.Module = DilatedReparamBlock(dim, kernel_size)
        else:
            self.dwconv = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim, bias=False)
        self.norm: nn.Module = nn.BatchNorm2d(dim)
        self.se = SEBlock(dim, dim // 4)
        hidden = int(ffn_factor * dim)
        self.pwconv1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.grn = GRN(hidden)
        self.pwconv2 = nn.Linear(hidden, dim, bias=False)
        self.out_norm: nn.Module = nn.BatchNorm2d(dim)
        self.gamma: nn.Parameter | None = nn.Parameter(layer_scale * torch.ones(dim)) if layer_scale > 0 else None
        self.drop_path = DropPath(drop_path)
        self.merged = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.se(self.norm(self.dwconv(x)))
        y = self.grn(self.act(self.pwconv1(y.permute(0, 2, 3, 1))))
        y = self.out_norm(self.pwconv2(y).permute(0, 3, 1, 2))
        if self.gamma is not None:
            y = self.gamma.view(1, -1, 1, 1) * y
        return x + self.drop_path(y)

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Fold branches, BNs, the GRN bias and the layer scale into single convs/linears (inference form)."""
        if self.merged:
            return
        if isinstance(self.dwconv, DilatedReparamBlock):
            w, b = self.dwconv.merged_kernel()
        else:
            w, b = self.dwconv.weight, None
        w, b = fuse_conv_bn(w, b, self.norm)
        dim = w.shape[0]
        conv = nn.Conv2d(dim, dim, w.shape[-1], padding=w.shape[-1] // 2, groups=dim, bias=True).to(w)
        conv.weight.copy_(w)
        conv.bias.copy_(b)
        self.dwconv, self.norm = conv, nn.Identity()
        # pwconv2(GRN(z) + beta) = pwconv2(GRN(z)) + W beta; then BN (affine per channel) and gamma scale.
        lin = self.pwconv2
        bias = torch.zeros(lin.out_features, device=lin.weight.device, dtype=lin.weight.dtype)
        if self.grn.beta is not None:
            bias = bias + lin.weight @ self.grn.beta
            self.grn.beta = None
        bn = self.out_norm
        t = bn.weight / (bn.running_var + bn.eps).sqrt()
        scale = t if self.gamma is None else t * self.gamma
        shift = bn.bias + (bias - bn.running_mean) * t
        if self.gamma is not None:
            shift = shift * self.gamma
        new = nn.Linear(lin.in_features, lin.out_features, bias=True).to(lin.weight)
        new.weight.copy_(lin.weight * scale.view(-1, 1))
        new.bias.copy_(shift)
        self.pwconv2, self.out_norm, self.gamma = new, nn.Identity(), None
        self.merged = True


class UniRepLKNet(FourStageNet):
    """4-stage UniRepLKNet, global mean pool, LayerNorm, linear embedding."""

    def __init__(self, dims: Sequence[int] = (40, 80, 160, 320), depths: Sequence[int] = (2, 2, 6, 2),
                 kernel_sizes: Sequence[int] = (3, 13, 7, 5), drop_path_rate: float = 0.0,
                 layer_scale: float = 1e-6, embedding_dim: int = 256, in_chans: int = 3):
        super().__init__()
        self.downsample_layers = nn.ModuleList([nn.Sequential(
            nn.Conv2d(in_chans, dims[0] // 2, 3, 2, 1), LayerNorm2d(dims[0] // 2, eps=1e-6), nn.GELU(),
            nn.Conv2d(dims[0] // 2, dims[0], 3, 2, 1), LayerNorm2d(dims[0], eps=1e-6))])
        for i in range(3):
            self.downsample_layers.append(nn.Sequential(nn.Conv2d(dims[i], dims[i + 1], 3, 2, 1),
                                                        LayerNorm2d(dims[i + 1], eps=1e-6)))
        self._build_stages(dims, depths, drop_path_rate,
                           lambda i, dp: UniRepLKNetBlock(dims[i], kernel_sizes[i], dp, layer_scale),
                           embedding_dim)

    def reparameterize(self) -> "UniRepLKNet":
        """Merge every block into its inference form (call in eval mode; training afterwards is not supported)."""
        for m in self.modules():
            if isinstance(m, UniRepLKNetBlock):
                m.reparameterize()
        return self


def reparameterize(embedder: nn.Module) -> nn.Module:
    """Merge the branches of every UniRepLKNet inside ``embedder`` (e.g. a TorchEmbedder) in place."""
    for m in embedder.modules():
        if isinstance(m, UniRepLKNet):
            m.reparameterize()
    return embedder


_META = dict(
    family="unireplknet",
    paper="Ding et al., UniRepLKNet: A Universal Perception Large-Kernel ConvNet for Audio, Video, Point Cloud, "
    "Time-Series and Image Recognition, CVPR 2024; Ding et al., Scaling Up Your Kernels to 31x31, CVPR 2022",
    license="code MIT (this project's implementation from the paper); official code Apache-2.0 "
    "(AILab-CVC/UniRepLKNet)",
    weights_source="random initialisation",
)


@register_backbone(name="unireplknet-a", input_size=112, embedding_dim=256,
                   extra={"params_m": 4.09, "gmacs": 0.167, "merged_params_m": 3.99, "merged_gmacs": 0.161,
                          "test_kwargs": {"dims": (8, 16, 32, 64), "depths": (1, 1, 1, 1)}}, **_META)
def unireplknet_a(device: str | None = None, weights: str | os.PathLike | None = None, init: str = "kaiming",
                  **kwargs) -> TorchEmbedder:
    """UniRepLKNet-A (40/80/160/320, depths 2/2/6/2), kernels 3/13/7/5 for 112 input, 256-d embedding.

    Call ``models.unireplknet.reparameterize(embedder)`` (eval mode) for the merged inference form.
    """
    cfg = dict(dims=(40, 80, 160, 320), depths=(2, 2, 6, 2), kernel_sizes=(3, 13, 7, 5), embedding_dim=256)
    net = UniRepLKNet(**{**cfg, **kwargs})
    return build_embedder("unireplknet-a", net, weights=weights, init=init, device=device)
