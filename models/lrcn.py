"""LRCN (Donahue et al. 2015): per-frame CNN features -> LSTM -> outputs averaged over time.

For face tracks: every crop of a track goes through a small CNN (a reduced
CaffeNet-like stack of conv-BN-ReLU and max-pools, global pooling, an FC
"fc6" layer), an LSTM runs over the frame features, its per-step outputs are
averaged over the valid steps and a linear layer gives the embedding. The
network takes ``(B, T, 3, S, S)`` (optionally with ``lengths`` for padded
tracks) or ``(B, 3, S, S)`` (single images, T = 1), so the common
``embed(crops)`` API works on single faces and :meth:`LRCNEmbedder.embed_track`
embeds a whole track. Our implementation (MIT) from the paper; the original is
Caffe-only.
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._scratch import ConvNormAct, build_embedder
from .registry import register_backbone
from .torch_base import TorchEmbedder

__all__ = ["FrameCNN", "LRCN", "LRCNEmbedder"]


class FrameCNN(nn.Module):
    """conv5x5/2 -> pool -> conv3x3 -> pool -> conv3x3 x2 -> pool -> conv3x3 -> mean pool -> FC + ReLU."""

    def __init__(self, widths: Sequence[int] = (32, 64, 128, 128, 256), feature_dim: int = 256, in_chans: int = 3):
        super().__init__()
        c1, c2, c3, c4, c5 = widths
        self.features = nn.Sequential(
            ConvNormAct(in_chans, c1, 5, 2), nn.MaxPool2d(2),
            ConvNormAct(c1, c2, 3), nn.MaxPool2d(2),
            ConvNormAct(c2, c3, 3), ConvNormAct(c3, c4, 3), nn.MaxPool2d(2),
            ConvNormAct(c4, c5, 3))
        self.fc6 = nn.Linear(c5, feature_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.fc6(self.features(x).mean((2, 3))))


class LRCN(nn.Module):
    """Frame CNN -> LSTM -> mean of the per-step outputs over valid steps -> linear embedding."""

    def __init__(self, widths: Sequence[int] = (32, 64, 128, 128, 256), feature_dim: int = 256, hidden: int = 256,
                 num_layers: int = 1, drop_rate: float = 0.0, embedding_dim: int = 128, in_chans: int = 3):
        super().__init__()
        self.cnn = FrameCNN(widths, feature_dim, in_chans)
        self.lstm = nn.LSTM(feature_dim, hidden, num_layers=num_layers, batch_first=True,
                            dropout=drop_rate if num_layers > 1 else 0.0)
        self.drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(hidden, embedding_dim)
        self.embedding_dim = embedding_dim

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | Sequence[int] | None = None) -> torch.Tensor:
        """``x``: ``(B, T, C, S, S)`` tracks (zero-padded past ``lengths``) or ``(B, C, S, S)`` images.

        Padded frames are masked out of the time average but still pass the
        CNN (in training they enter its BatchNorm batch statistics).
        """
        if x.dim() == 4:
            x = x.unsqueeze(1)
        if x.dim() != 5:
            raise ValueError(f"LRCN expects (B, T, C, S, S) or (B, C, S, S), got shape {tuple(x.shape)}")
        b, t = x.shape[:2]
        feats = self.cnn(x.flatten(0, 1)).view(b, t, -1)
        out, _ = self.lstm(feats)  # unidirectional: padding after a track's end cannot affect its valid steps
        if lengths is None:
            pooled = out.mean(1)
        else:
            n = torch.as_tensor(lengths, device=out.device).view(b, 1)
            if bool((n < 1).any()) or bool((n > t).any()):
                raise ValueError(f"track lengths must be in 1..{t}")
            mask = (torch.arange(t, device=out.device).view(1, t) < n).to(out.dtype)
            pooled = (out * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)
        return self.head(self.drop(pooled))


def _subsample(n: int, max_frames: int | None) -> list[int]:
    if max_frames is None or n <= max_frames:
        return list(range(n))
    return np.linspace(0, n - 1, max_frames).round().astype(int).tolist()


class LRCNEmbedder(TorchEmbedder):
    """:class:`TorchEmbedder` with track embedding: one vector per sequence of face crops."""

    @torch.no_grad()
    def embed_tracks(self, tracks: Sequence[Sequence[np.ndarray]], max_frames: int | None = 32,
                     batch_size: int = 8) -> np.ndarray:
        """``(N, D)`` unit vectors, one per track (a track: uint8 RGB crops in time order).

        Tracks longer than ``max_frames`` are subsampled evenly (``None``: all frames).
        """
        if any(len(t) == 0 for t in tracks):
            raise ValueError("every track needs at least one crop")
        was_training = self.training
        self.eval()
        try:
            out = [np.zeros((0, self.info.embedding_dim), np.float32)]
            for i in range(0, len(tracks), batch_size):
                chunk = [[t[j] for j in _subsample(len(t), max_frames)] for t in tracks[i:i + batch_size]]
                lengths = [len(t) for t in chunk]
                s = self.info.input_size
                x = torch.zeros((len(chunk), max(lengths), 3, s, s))
                for k, t in enumerate(chunk):
                    x[k, :len(t)] = self.preprocess(t)
                feats = self.net(x.to(self.device), lengths)
                out.append(F.normalize(feats, dim=1).float().cpu().numpy())
            return np.ascontiguousarray(np.concatenate(out), dtype=np.float32)
        finally:
            self.train(was_training)

    def embed_track(self, crops: Sequence[np.ndarray], max_frames: int | None = 32) -> np.ndarray:
        """One ``(D,)`` unit vector for a face track (uint8 RGB crops in time order)."""
        return self.embed_tracks([crops], max_frames=max_frames)[0]


_META = dict(
    family="lrcn",
    paper="Donahue et al., Long-term Recurrent Convolutional Networks for Visual Recognition and Description, "
    "CVPR 2015",
    license="code MIT (this project's implementation from the paper); the original is Caffe-only (BSD-2)",
    weights_source="random initialisation",
)


@register_backbone(name="lrcn-small", input_size=112, embedding_dim=128,
                   extra={"params_m": 1.16, "gmacs": 0.080, "track_input": True,
                          "test_kwargs": {"widths": (8, 8, 16, 16, 16), "feature_dim": 16, "hidden": 16}}, **_META)
def lrcn_small(device: str | None = None, weights: str | os.PathLike | None = None, init: str = "kaiming",
               **kwargs) -> LRCNEmbedder:
    """Small frame CNN (32-64-128-128-256, fc6 256) + LSTM(256), 128-d track embedding @112.

    GMACs are per frame. ``embed_track(crops)`` embeds a face track; ``embed(crops)`` single faces (T = 1).
    """
    cfg = dict(widths=(32, 64, 128, 128, 256), feature_dim=256, hidden=256, embedding_dim=128)
    net = LRCN(**{**cfg, **kwargs})
    return build_embedder("lrcn-small", net, weights=weights, init=init, device=device, cls=LRCNEmbedder)
