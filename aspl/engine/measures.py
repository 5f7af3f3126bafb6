"""Measures: pure functions from classifier outputs to one number per face.

In the style of modAL, a *measure* turns a score (or probability) matrix into
numbers, and a *selection* rule (:mod:`aspl.engine.selection`) turns numbers into
row indices. Score matrices are ``(n_faces, n_people)``: ``scores[i, j]`` is the
one-vs-all SVM score of face ``i`` for person ``j``; probability matrices have
rows that sum to one.
"""
from __future__ import annotations

import numpy as np

from .summary import ScoreSummary

__all__ = [
    "hinge_loss",
    "best_score",
    "score_margin",
    "softmax",
    "least_confidence",
    "margin",
    "entropy",
    "self_paced_easiness",
    "summary_best_score",
    "summary_margin",
]


def _matrix(a: np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"{what} must be a 2-D (faces x people) matrix, got shape {a.shape}")
    return a


def hinge_loss(scores: np.ndarray) -> np.ndarray:
    """Per face and person hinge loss ``max(0, 1 - s_ij)`` for a positive label."""
    return np.maximum(0.0, 1.0 - _matrix(scores, "scores"))


def best_score(scores: np.ndarray) -> np.ndarray:
    """Highest score of each face over all people; ``-inf`` when there are no people yet."""
    s = _matrix(scores, "scores")
    if s.shape[1] == 0:
        return np.full(s.shape[0], -np.inf)
    return s.max(axis=1)


def score_margin(scores: np.ndarray) -> np.ndarray:
    """Gap between each face's two highest scores (low: torn between two people); ``inf`` with < 2 people."""
    s = _matrix(scores, "scores")
    if s.shape[1] < 2:
        return np.full(s.shape[0], np.inf)
    top2 = -np.partition(-s, 1, axis=1)[:, :2]
    return top2[:, 0] - top2[:, 1]


def summary_best_score(summary: ScoreSummary) -> np.ndarray:
    """:func:`best_score` from a :class:`~aspl.engine.summary.ScoreSummary` (same values)."""
    return summary.first_score.copy()


def summary_margin(summary: ScoreSummary) -> np.ndarray:
    """:func:`score_margin` from a :class:`~aspl.engine.summary.ScoreSummary` (same values)."""
    if summary.n_people < 2:
        return np.full(summary.n_faces, np.inf)
    return summary.first_score - summary.second_score


def softmax(scores: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``scores / temperature`` (numerically stable)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    s = _matrix(scores, "scores") / temperature
    if s.shape[1] == 0:
        return s
    s = s - s.max(axis=1, keepdims=True)
    e = np.exp(s)
    return e / e.sum(axis=1, keepdims=True)


def least_confidence(proba: np.ndarray) -> np.ndarray:
    """``1 - max_j p_ij``: high means uncertain."""
    p = _matrix(proba, "proba")
    if p.shape[1] == 0:
        return np.ones(p.shape[0])
    return 1.0 - p.max(axis=1)


def margin(proba: np.ndarray) -> np.ndarray:
    """Gap between the two highest probabilities: low means uncertain."""
    p = _matrix(proba, "proba")
    if p.shape[1] == 0:
        return np.zeros(p.shape[0])
    if p.shape[1] == 1:
        return p[:, 0].copy()
    top2 = -np.partition(-p, 1, axis=1)[:, :2]
    return top2[:, 0] - top2[:, 1]


def entropy(proba: np.ndarray) -> np.ndarray:
    """Shannon entropy in nats, ``-sum_j p_ij log p_ij``: high means uncertain."""
    p = _matrix(proba, "proba")
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p), 0.0)
    return -terms.sum(axis=1)


def self_paced_easiness(losses: np.ndarray, lambdas: np.ndarray) -> np.ndarray:
    """Linear self-paced weight ``1 - loss_ij / lambda_j`` (negative: not accepted by person j).

    ``lambdas`` holds one pace per person (column); a face is "easy" for person
    ``j`` when its weight is positive, that is when ``loss_ij < lambda_j``.
    """
    L = _matrix(losses, "losses")
    lam = np.asarray(lambdas, dtype=np.float64).reshape(-1)
    if lam.shape[0] != L.shape[1]:
        raise ValueError(f"need one lambda per person: {L.shape[1]} people, got {lam.shape[0]} lambdas")
    if np.any(lam <= 0):
        raise ValueError(f"lambdas must be > 0, got {lam[lam <= 0][:5].tolist()}")
    return 1.0 - L / lam[None, :]
