"""Simulated label efficiency of a backbone: the engine's simulation on its embeddings of labelled crops."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..engine.preprocess import mean_pairwise_cosine
from ..engine.simulate import SimulationConfig, simulate

__all__ = ["label_efficiency", "efficiency_row", "should_center"]


def should_center(embedder: Any) -> bool:
    """Centre the embeddings of trainable (from-scratch / self-trained) torch backbones, not of frozen
    pretrained ones: their unit embeddings share a large common component that defeats linear SVMs."""
    info = getattr(embedder, "info", None)
    return bool(getattr(info, "trainable", False))


def label_efficiency(embedder: Any, crops: Sequence[np.ndarray], y: np.ndarray, rounds: int = 6,
                     query_size: int = 12, methods: Sequence[str] = ("aspl",), seed: int = 0,
                     center: bool | None = None, X: np.ndarray | None = None) -> list[dict]:
    """Rows of the simulation (accuracy vs fraction annotated) on ``embedder.embed(crops)`` (or ``X``).

    ``center`` None: :func:`should_center`. Every row also carries ``mean_cosine`` (mean pairwise
    cosine of the raw unit embeddings; near 1 means collapsed) and ``centered``.
    """
    X = embedder.embed(list(crops)) if X is None else np.asarray(X, np.float32)
    c = should_center(embedder) if center is None else bool(center)
    cfg = SimulationConfig(methods=tuple(methods), seed_labels=1, query_size=query_size, rounds=rounds,
                           test_fraction=0.25, seed=seed, center=c)
    mc = mean_pairwise_cosine(X)
    return [{**r, "mean_cosine": mc, "centered": c} for r in simulate(X, np.asarray(y), cfg, progress=False)]


def efficiency_row(rows: Sequence[dict], method: str = "aspl") -> dict[str, float]:
    """Accuracy at the start (1 label/person), at the end, its mean over rounds (area under the curve),
    the final fraction annotated and (when recorded) the embeddings' mean pairwise cosine."""
    rs = [r for r in rows if r["method"] == method]
    if not rs:
        raise ValueError(f"no rows for method {method!r}")
    acc = [r["test_accuracy"] for r in rs]
    out = {"acc_start": acc[0], "acc_end": acc[-1], "acc_mean": float(np.mean(acc)),
           "fraction_end": rs[-1]["fraction_annotated"]}
    if "mean_cosine" in rs[0]:
        out["mean_cosine"] = float(rs[0]["mean_cosine"])
    return out
