"""Weak-expert re-certification of human labels and auto-label precision estimates.

* :class:`Recertifier` counts, round after round, the human labels that the
  current classifiers fail to predict uniquely as their own person; a label
  that fails more than ``max_failures`` times is flagged for review and set
  aside from training until the annotator confirms or corrects it.
* :func:`wilson_interval` / :func:`estimate_precision`: precision of automatic
  labels from a verified random sample, with a Wilson score interval.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Iterable

import numpy as np

from .summary import ScoreSummary

__all__ = [
    "uniquely_predicted",
    "uniquely_predicted_summary",
    "Recertifier",
    "wilson_interval",
    "PrecisionEstimate",
    "estimate_precision",
    "sample_for_verification",
]


def uniquely_predicted(scores: np.ndarray, own: np.ndarray) -> np.ndarray:
    """Whether each face is predicted uniquely as its own person (column ``own[i]``): its own score
    is positive and every other person's score is not.

    ``own[i] < 0`` (the person has no classifier) gives ``True``: nothing to
    check. A wrong label (a positive weighted 5) can also make a few correct
    neighbours fail for a while; they are confirmed at review and never
    flagged again. Measured on lfw-dev with a 5%-wrong annotator, every flag
    was a wrong label (bench/results/noisy).
    """
    s = np.asarray(scores, dtype=np.float64)
    own = np.asarray(own, dtype=np.int64).reshape(-1)
    if s.ndim != 2 or s.shape[0] != own.shape[0]:
        raise ValueError(f"scores must be (faces x people) with one own column per face, "
                         f"got scores {s.shape} and own {own.shape}")
    ok = np.ones(own.shape[0], dtype=bool)
    has = own >= 0
    if not has.any():
        return ok
    if np.any(own >= s.shape[1]):
        raise ValueError(f"own column out of range: {int(own.max())} >= {s.shape[1]} people")
    rows = np.flatnonzero(has)
    pos = s[rows] > 0
    ok[rows] = pos[np.arange(rows.size), own[rows]] & (pos.sum(axis=1) == 1)
    return ok


def uniquely_predicted_summary(summary: ScoreSummary) -> np.ndarray:
    """:func:`uniquely_predicted` from a :class:`~aspl.engine.summary.ScoreSummary` made with each
    face's own column (``own_score`` NaN: no own column, ``True``)."""
    own = summary.own_score
    return np.isnan(own) | ((own > 0) & (summary.n_positive == 1))


@dataclass
class Recertifier:
    """Failure counts of human labels; flags a label after more than ``max_failures`` failures.

    Rows are face indices (stable across rounds). Flagged rows stay set aside
    until :meth:`confirm` (the annotator says the label is right: it is never
    flagged again) or :meth:`reset` (the label was corrected: counting restarts).
    """

    max_failures: int = 3
    failures: dict[int, int] = field(default_factory=dict)
    flagged: set[int] = field(default_factory=set)
    verified: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        if self.max_failures < 0:
            raise ValueError(f"max_failures must be >= 0, got {self.max_failures!r}")

    def update(self, rows: np.ndarray, passed: np.ndarray) -> np.ndarray:
        """Record one round's check of human-labelled ``rows``; return the rows newly flagged."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        passed = np.asarray(passed, dtype=bool).reshape(-1)
        if rows.shape != passed.shape:
            raise ValueError(f"rows and passed differ in length: {rows.shape[0]} vs {passed.shape[0]}")
        new = []
        for r, ok in zip(rows.tolist(), passed.tolist()):
            if ok or r in self.verified or r in self.flagged:
                continue
            self.failures[r] = self.failures.get(r, 0) + 1
            if self.failures[r] > self.max_failures:
                self.flagged.add(r)
                new.append(r)
        return np.array(sorted(new), dtype=np.int64)

    def confirm(self, rows: Iterable[int]) -> None:
        """The annotator confirmed these labels: unflag them and exempt them from checks."""
        for r in rows:
            r = int(r)
            self.flagged.discard(r)
            self.failures.pop(r, None)
            self.verified.add(r)

    def reset(self, rows: Iterable[int]) -> None:
        """These labels changed (corrected or removed): unflag them and restart counting."""
        for r in rows:
            r = int(r)
            self.flagged.discard(r)
            self.failures.pop(r, None)
            self.verified.discard(r)

    def set_aside(self) -> np.ndarray:
        """Sorted flagged rows (kept out of training)."""
        return np.array(sorted(self.flagged), dtype=np.int64)


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion ``successes / n``.

    Returns ``(0.0, 1.0)`` for ``n == 0`` (nothing verified: no information).
    """
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes!r}, n={n!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if n == 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class PrecisionEstimate:
    """Auto-label precision measured on ``n`` verified pseudo-labels, ``correct`` of them right."""

    correct: int
    n: int
    precision: float
    low: float
    high: float
    confidence: float

    def __str__(self) -> str:
        return (f"{self.precision:.1%} ({self.correct}/{self.n}; "
                f"{self.confidence:.0%} CI {self.low:.1%}-{self.high:.1%})")


def estimate_precision(correct: np.ndarray | Iterable[bool], confidence: float = 0.95) -> PrecisionEstimate:
    """Precision of auto-labels from the annotator's verdicts on a sample (True = label right)."""
    c = np.asarray(list(correct) if not isinstance(correct, np.ndarray) else correct, dtype=bool).reshape(-1)
    k, n = int(c.sum()), int(c.size)
    low, high = wilson_interval(k, n, confidence)
    return PrecisionEstimate(k, n, k / n if n else float("nan"), low, high, confidence)


def sample_for_verification(rows: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """A uniform random sample of ``min(n, len(rows))`` pseudo-labelled rows to show the annotator."""
    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    if n < 0:
        raise ValueError(f"sample size must be >= 0, got {n!r}")
    return np.sort(rng.choice(rows, size=min(n, rows.size), replace=False)) if rows.size else rows
