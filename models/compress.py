"""A-priori compression with one-way factorised filters (Jaderberg et al. 2014 style, set before training).

Every ``Conv2d`` with a spatial kernel (both sides > 1) and ``groups == 1`` is
replaced by ``1x1 c->R`` -> depthwise ``kx1`` -> depthwise ``1xk`` -> ``1x1 R->o``
(stride and padding split between the two one-way filters; the last 1x1 keeps
the original bias). The network is then trained as usual. ``rank`` is R: an
int, or a float in (0, 1] taken as a fraction of ``min(c, o)``.

>>> emb = create_backbone("simplenet-v1-050", compress_rank=16)
"""
from __future__ import annotations

import math
from typing import Any

from torch import nn

__all__ = ["FactorisedConv2d", "compress_network", "create_compressed", "count_params"]


def _pair(v: Any) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


class FactorisedConv2d(nn.Sequential):
    """``1x1 c->R``, depthwise ``kh x 1``, depthwise ``1 x kw``, ``1x1 R->o``: one-way factorised filters."""

    def __init__(self, conv: nn.Conv2d, rank: int):
        kh, kw = conv.kernel_size
        sh, sw = conv.stride
        ph, pw = _pair(conv.padding) if not isinstance(conv.padding, str) else (kh // 2, kw // 2)
        dh, dw = conv.dilation
        c, o = conv.in_channels, conv.out_channels
        super().__init__(
            nn.Conv2d(c, rank, 1, bias=False),
            nn.Conv2d(rank, rank, (kh, 1), stride=(sh, 1), padding=(ph, 0), dilation=(dh, 1), groups=rank,
                      bias=False, padding_mode=conv.padding_mode),
            nn.Conv2d(rank, rank, (1, kw), stride=(1, sw), padding=(0, pw), dilation=(1, dw), groups=rank,
                      bias=False, padding_mode=conv.padding_mode),
            nn.Conv2d(rank, o, 1, bias=conv.bias is not None),
        )
        self.rank = rank
        self.original = (c, o, kh, kw)
        for i, m in enumerate(self):
            gain = math.sqrt(2.0) if i == 3 else 1.0  # linear factors; the ReLU gain once, at the end
            nn.init.normal_(m.weight, 0.0, gain / math.sqrt(m.weight[0].numel()))
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def _rank_for(conv: nn.Conv2d, rank: int | float) -> int:
    if isinstance(rank, float) and rank <= 1:
        if not rank > 0:
            raise ValueError(f"a fractional compress rank must be in (0, 1], got {rank}")
        return max(1, int(round(rank * min(conv.in_channels, conv.out_channels))))
    r = int(rank)
    if r < 1:
        raise ValueError(f"compress rank must be >= 1 (or a fraction in (0, 1]), got {rank}")
    return r


def compress_network(net: nn.Module, rank: int | float) -> int:
    """Replace the spatial convolutions of ``net`` in place; return how many were replaced."""
    replaced = 0
    for parent in list(net.modules()):
        if isinstance(parent, FactorisedConv2d):
            continue
        for name, child in list(parent.named_children()):
            if (type(child) is nn.Conv2d and child.groups == 1 and min(child.kernel_size) > 1):
                setattr(parent, name, FactorisedConv2d(child, _rank_for(child, rank)))
                replaced += 1
    if replaced == 0:
        raise ValueError("no convolution with a spatial kernel (k > 1, groups 1) to compress")
    return replaced


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def create_compressed(name: str, rank: int | float, weights: Any = None, device: Any = None, **kwargs: Any) -> Any:
    """Build backbone ``name`` with compressed convolutions (then load ``weights`` saved from such a network)."""
    from .registry import create_backbone
    from .torch_base import TorchEmbedder, load_state_dict_file

    emb = create_backbone(name, device="cpu", **kwargs)
    if not isinstance(emb, TorchEmbedder):
        raise ValueError(f"backbone {name!r} is not a torch network; compression needs one")
    n = compress_network(emb.net, rank)
    if weights is not None:
        from ._scratch import _WEIGHTS_HOW, _KeyAdapter

        load_state_dict_file(_KeyAdapter(emb.net, str(weights)), weights, name, _WEIGHTS_HOW, strict=True)
    import dataclasses

    emb.info = dataclasses.replace(emb.info, extra={**emb.info.extra, "compress_rank": rank, "compressed_convs": n})
    from .torch_base import pick_device

    return emb.to(pick_device(device))
