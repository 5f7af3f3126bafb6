"""Embedding preprocessing before classification (pure functions).

Embeddings of a from-scratch or weakly trained backbone often share a large
common component: after L2 normalisation every face points in nearly the same
direction, and linear SVMs on the unit vectors cannot separate people.
Centring (subtract the mean vector, re-normalise) removes that component.
"""
from __future__ import annotations

import numpy as np

__all__ = ["center_embeddings", "mean_pairwise_cosine"]


def center_embeddings(X: np.ndarray, mean: np.ndarray | None = None, eps: float = 1e-12) -> np.ndarray:
    """``X - mean`` re-normalised to unit rows (float32); ``mean`` defaults to the rows' mean.

    Pass the pool's mean to centre other rows (e.g. a test split) the same way.
    """
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2:
        raise ValueError(f"X must be (faces x dims), got shape {X.shape}")
    mu = X.mean(0) if mean is None else np.asarray(mean, dtype=np.float32).reshape(-1)
    if mu.shape[0] != X.shape[1]:
        raise ValueError(f"mean has {mu.shape[0]} dims, X has {X.shape[1]}")
    C = X - mu
    return (C / np.maximum(np.linalg.norm(C, axis=1, keepdims=True), eps)).astype(np.float32)


def mean_pairwise_cosine(X: np.ndarray) -> float:
    """Mean cosine similarity over distinct pairs of rows (1 = all rows point the same way)."""
    X = np.asarray(X, dtype=np.float64)
    if X.shape[0] < 2:
        raise ValueError("need at least 2 rows")
    U = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
    s = U.sum(0)
    n = U.shape[0]
    return float((s @ s - np.sum(U * U)) / (n * (n - 1)))
