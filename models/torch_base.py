"""Shared plumbing for torch backbones: preprocessing, batching, weights."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .registry import BackboneInfo, MissingWeightsError


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` if given, else CUDA when available, else CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def torch_home() -> Path:
    """The torch hub cache root (``$TORCH_HOME``, default ``~/.cache/torch``)."""
    return Path(torch.hub.get_dir()).parent


def crops_to_tensor(crops: Sequence[np.ndarray], size: int, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Stack uint8 RGB crops (H x W x 3) into a normalised float batch at ``size``."""
    if len(crops) == 0:
        return torch.zeros((0, 3, size, size))
    arrs = []
    for c in crops:
        a = np.asarray(c)
        if a.ndim != 3 or a.shape[2] != 3:
            raise ValueError(f"face crop must be H x W x 3 RGB, got shape {a.shape}")
        arrs.append(a)
    if len({a.shape for a in arrs}) == 1:
        x = torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2).float()
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    else:
        x = torch.cat([
            F.interpolate(torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float(),
                          size=(size, size), mode="bilinear", align_corners=False, antialias=True)
            for a in arrs
        ])
    x = x / 255.0
    m = torch.tensor(mean, dtype=x.dtype).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - m) / s


class TorchEmbedder(nn.Module):
    """A torch network that maps normalised face batches to embeddings.

    ``net`` maps ``(B, 3, S, S)`` to ``(B, D)`` unnormalised features. ``forward``
    returns L2-normalised embeddings and keeps gradients (for fine-tuning);
    ``embed`` is the inference API shared with non-torch backbones.
    """

    def __init__(self, net: nn.Module, info: BackboneInfo, device: str | torch.device | None = None):
        super().__init__()
        self.net = net
        self.info = info
        self.to(pick_device(device))

    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        return torch.device("cpu")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Unnormalised embedding of a preprocessed batch."""
        out = self.net(x)
        return out.flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.features(x), dim=1)

    def preprocess(self, crops: Sequence[np.ndarray]) -> torch.Tensor:
        return crops_to_tensor(crops, self.info.input_size, self.info.mean, self.info.std)

    @torch.no_grad()
    def embed(self, crops: Sequence[np.ndarray], batch_size: int = 64) -> np.ndarray:
        was_training = self.training
        self.eval()
        try:
            out = [np.zeros((0, self.info.embedding_dim), np.float32)]
            for i in range(0, len(crops), batch_size):
                x = self.preprocess(crops[i:i + batch_size]).to(self.device)
                out.append(self(x).float().cpu().numpy())
            return np.ascontiguousarray(np.concatenate(out), dtype=np.float32)
        finally:
            self.train(was_training)


def load_state_dict_file(module: nn.Module, path: str | os.PathLike, backbone: str, how: str, strict: bool = False) -> None:
    """Load weights from a local file, or raise :class:`MissingWeightsError` naming it."""
    p = Path(path)
    if not p.is_file():
        raise MissingWeightsError(backbone, str(p), how)
    state = torch.load(p, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    module.load_state_dict(state, strict=strict)
