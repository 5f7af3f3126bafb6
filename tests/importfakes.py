"""A fake face detector and embedder for import tests that need no model (fast, deterministic), and a folder
of small photos: bright ones hold one face, dark ones none."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from models import BackboneInfo


@dataclass
class FakeFace:
    box: tuple[float, float, float, float]
    landmarks: np.ndarray
    prob: float
    crop: np.ndarray


class FakeDetector:
    """One face in every bright photo, none in a dark one; with ``gate``, calls after the ``free``-th wait
    for it (an import held half-way)."""

    min_face_size = 20

    def __init__(self, gate: threading.Event | None = None, free: int = 1):
        self.gate, self.free, self.calls = gate, free, 0

    def detect(self, images):
        self.calls += 1
        if self.gate is not None and self.calls > self.free:
            assert self.gate.wait(30)
        out = []
        for img in images:
            a = np.asarray(img.convert("RGB"))
            crop = np.asarray(img.convert("RGB").resize((160, 160)), np.uint8)
            out.append([] if a.mean() < 60 else [FakeFace((8.0, 8.0, 56.0, 56.0), np.zeros((5, 2)), 0.99, crop)])
        return out


class FakeEmbedder:
    """16-d vectors from a crop's mean colour, under any backbone name."""

    def __init__(self, name: str = "dlib-resnet"):
        self.info = BackboneInfo(name=name, family="fake", input_size=160, embedding_dim=16)

    def embed(self, crops, batch_size: int = 64):
        X = np.stack([np.resize(c.astype(np.float32).mean(axis=(0, 1)), 16) + i * 1e-3 + 1e-3
                      for i, c in enumerate(crops)])
        return X / np.linalg.norm(X, axis=1, keepdims=True)


def photo(path: Path, bright: bool, seed: int) -> Path:
    """A 64x64 PNG, bright (a face for :class:`FakeDetector`) or dark (none); ``seed`` makes it unique."""
    rng = np.random.default_rng(seed)
    base = 180 if bright else 20
    a = np.clip(base + rng.integers(-15, 15, size=(64, 64, 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).save(path)
    return path
