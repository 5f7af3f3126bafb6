"""RotNet (Gidaris et al., ICLR 2018): self-supervised 4-way rotation prediction on unlabelled faces.

Every batch holds each face at 0, 90, 180 and 270 degrees; a linear head on the
backbone's (unnormalised) features predicts the rotation. The head is dropped
afterwards; the backbone keeps what it learned about face structure.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .layers import recalibrate_batchnorm

__all__ = ["RotNetSettings", "RotNetResult", "rotate_batch", "rotnet_pretrain"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RotNetSettings:
    """Adam settings; ``batch_size`` faces per step (x4 rotations); random horizontal flips."""

    epochs: int = 3
    lr: float = 1e-3
    batch_size: int = 16
    flip: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 2:
            raise ValueError(f"need epochs >= 1 and batch_size >= 2, got {self.epochs!r}, {self.batch_size!r}")


@dataclass
class RotNetResult:
    losses: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)  # rotation accuracy per epoch (training batches)


def rotate_batch(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(4B, C, H, W)`` images rotated by k*90 degrees and their rotation labels k."""
    xs = [torch.rot90(x, k, dims=(2, 3)) for k in range(4)]
    y = torch.arange(4).repeat_interleave(x.shape[0])
    return torch.cat(xs), y


def rotnet_pretrain(embedder: Any, crops: Sequence[np.ndarray], settings: RotNetSettings | None = None) -> RotNetResult:
    """Train a TorchEmbedder in place on rotation prediction over ``crops`` (no labels used)."""
    s = settings or RotNetSettings()
    if not (isinstance(embedder, nn.Module) and hasattr(embedder, "net")):
        raise ValueError(f"RotNet needs a torch backbone, got {type(embedder).__name__}")
    if len(crops) < 2:
        raise ValueError(f"RotNet needs at least 2 faces, got {len(crops)}")
    torch.manual_seed(s.seed)
    rng = np.random.default_rng(s.seed)
    dev = embedder.device
    x = embedder.preprocess(list(crops))
    head = nn.Linear(embedder.info.embedding_dim, 4).to(dev)
    opt = torch.optim.Adam(list(embedder.parameters()) + list(head.parameters()), lr=s.lr)
    res = RotNetResult()
    embedder.train()
    try:
        for ep in range(s.epochs):
            order = rng.permutation(len(crops))
            tot = right = cnt = 0.0
            for i in range(0, order.size, s.batch_size):
                b = torch.from_numpy(order[i:i + s.batch_size])
                if b.numel() < 2:
                    continue
                xb = x[b]
                if s.flip:
                    flip = torch.from_numpy(rng.random(b.numel()) < 0.5)
                    xb = torch.where(flip.view(-1, 1, 1, 1), xb.flip(3), xb)
                xr, yr = rotate_batch(xb)
                logits = head(embedder.features(xr.to(dev)))
                loss = F.cross_entropy(logits, yr.to(dev))
                opt.zero_grad()
                loss.backward()
                opt.step()
                tot += float(loss.detach()) * yr.numel()
                right += float((logits.argmax(1).cpu() == yr).sum())
                cnt += yr.numel()
            res.losses.append(tot / max(cnt, 1))
            res.accuracy.append(right / max(cnt, 1))
            log.info("rotnet epoch %d: loss %.4f, rotation accuracy %.3f", ep + 1, res.losses[-1], res.accuracy[-1])
    finally:
        embedder.eval()
    recalibrate_batchnorm(embedder.net, x)
    return res
