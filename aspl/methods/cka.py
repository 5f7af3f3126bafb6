"""Linear centred kernel alignment (Kornblith et al., ICML 2019), differentiable.

``linear_cka(X, Y)`` compares two representations of the same ``n`` inputs
(rows). It uses the Gram form, so wide feature maps cost ``O(n^2 d)``.
"""
from __future__ import annotations

import torch

__all__ = ["linear_cka", "flatten_features"]


def flatten_features(t: torch.Tensor, max_side: int = 8) -> torch.Tensor:
    """``(n, d)`` rows: feature maps ``(n, c, h, w)`` are average-pooled to at most ``max_side`` first."""
    if t.dim() == 4 and max(t.shape[-2:]) > max_side:
        t = torch.nn.functional.adaptive_avg_pool2d(t, (min(t.shape[-2], max_side), min(t.shape[-1], max_side)))
    return t.reshape(t.shape[0], -1)


def linear_cka(X: torch.Tensor, Y: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Linear CKA in [0, 1] between ``X`` (n x d1) and ``Y`` (n x d2); 1 = same up to rotation and scale."""
    if X.shape[0] != Y.shape[0]:
        raise ValueError(f"CKA needs the same inputs on both sides, got {X.shape[0]} and {Y.shape[0]} rows")
    if X.shape[0] < 2:
        raise ValueError("CKA needs at least 2 rows")
    X = flatten_features(X).double() if X.dim() > 2 else X.double()
    Y = flatten_features(Y).double() if Y.dim() > 2 else Y.double()
    X = X - X.mean(0, keepdim=True)
    Y = Y - Y.mean(0, keepdim=True)
    K, L = X @ X.T, Y @ Y.T
    hsic = (K * L).sum()
    return (hsic / (K.norm() * L.norm() + eps)).float()
