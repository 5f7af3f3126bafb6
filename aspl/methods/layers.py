"""Collect a torch network's intermediate representations (convolution outputs) with hooks."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

__all__ = ["conv_layers", "capture", "even_pairs"]


def conv_layers(net: nn.Module) -> list[nn.Module]:
    """The network's 2-D convolutions with a spatial kernel or full channel mixing, in definition order."""
    return [m for m in net.modules() if isinstance(m, nn.Conv2d)]


@contextmanager
def capture(modules: list[nn.Module]) -> Iterator[dict[int, torch.Tensor]]:
    """Record each module's latest output under its position in ``modules``."""
    store: dict[int, torch.Tensor] = {}
    hooks = []
    for i, m in enumerate(modules):
        def hook(_m: nn.Module, _inp: tuple, out: torch.Tensor, i: int = i) -> None:
            store[i] = out
        hooks.append(m.register_forward_hook(hook))
    try:
        yield store
    finally:
        for h in hooks:
            h.remove()


def even_pairs(n_target: int, n_guide: int, max_pairs: int = 6) -> list[tuple[int, int]]:
    """Evenly mapped layer pairs ``(target index, guide index)``, first to first and last to last."""
    if n_target < 1 or n_guide < 1:
        raise ValueError(f"need layers on both sides, got {n_target} and {n_guide}")
    k = max(1, min(n_target, n_guide, max_pairs))
    if k == 1:
        return [(n_target - 1, n_guide - 1)]
    return [(round(i * (n_target - 1) / (k - 1)), round(i * (n_guide - 1) / (k - 1))) for i in range(k)]


@torch.no_grad()
def recalibrate_batchnorm(net: nn.Module, x: torch.Tensor, batch_size: int = 64) -> None:
    """Re-estimate BatchNorm running statistics on ``x`` (cumulative average over batches).

    Short trainings leave running statistics far from the trained weights' batch statistics
    (small BN momentum), which makes eval-mode embeddings worse than the training loss suggests.
    """
    bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    saved = [(m.momentum, m.training) for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    dev = next(net.parameters()).device
    try:
        for i in range(0, x.shape[0], batch_size):
            if x[i:i + batch_size].shape[0] > 1:
                net(x[i:i + batch_size].to(dev))
    finally:
        for m, (mom, tr) in zip(bns, saved):
            m.momentum = mom
            m.train(tr)
