"""Selection rules: pure functions from measures (or scores) to row indices.

* :func:`select_lowest` / :func:`select_highest` / :func:`select_random`: the
  active step's query rules (ASPL ranks by best score, lowest first; CEAL ranks
  by an uncertainty measure).
* :func:`self_paced_labels`: ASPL's self-paced step (exactly-one rule, linear
  soft weights, unclear and ambiguous sets).
* :func:`ceal_threshold` / :func:`ceal_pseudo_labels`: CEAL's high-confidence
  pseudo-labelling with a decaying entropy threshold.
* :func:`seed_new_person`: FAISS neighbours of a newly named person's face in
  the unclear set.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .measures import entropy, hinge_loss, self_paced_easiness

__all__ = [
    "UNLABELLED",
    "SelfPacedSelection",
    "select_lowest",
    "select_highest",
    "select_random",
    "self_paced_labels",
    "ceal_threshold",
    "ceal_pseudo_labels",
    "mean_distance",
    "seed_new_person",
]

#: Label value of a face that has no (human or pseudo) label.
UNLABELLED = -1


def _order(values: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if rng is None:
        return np.argsort(v, kind="stable")
    return np.lexsort((rng.random(v.shape[0]), v))  # ties broken at random


def _check_k(k: int) -> int:
    if int(k) != k or k < 0:
        raise ValueError(f"k must be a non-negative integer, got {k!r}")
    return int(k)


def select_lowest(values: np.ndarray, k: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Indices of the ``k`` smallest values, smallest first (ties: by index, or at random with ``rng``)."""
    return _order(values, rng)[:_check_k(k)]


def select_highest(values: np.ndarray, k: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Indices of the ``k`` largest values, largest first."""
    return _order(-np.asarray(values, dtype=np.float64), rng)[:_check_k(k)]


def select_random(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """``min(k, n)`` distinct indices out of ``range(n)``, uniformly at random."""
    return rng.permutation(n)[:_check_k(k)]


@dataclass(frozen=True)
class SelfPacedSelection:
    """Outcome of the self-paced step for the rows of one score matrix.

    ``labels[i]`` is the column (person) that alone accepted face ``i``, or
    :data:`UNLABELLED`; ``weights[i]`` its soft weight ``1 - loss / lambda``
    (0 where unlabelled); ``unclear`` marks faces no one accepted (candidate
    new people) and ``ambiguous`` those several people accepted (skipped).
    """

    labels: np.ndarray
    weights: np.ndarray
    unclear: np.ndarray
    ambiguous: np.ndarray

    @property
    def accepted(self) -> np.ndarray:
        """Boolean mask of faces given a pseudo-label."""
        return self.labels != UNLABELLED


def self_paced_labels(scores: np.ndarray, lambdas: np.ndarray) -> SelfPacedSelection:
    """ASPL's self-paced step on a ``(faces x people)`` score matrix.

    Person ``j`` accepts face ``i`` when ``loss_ij = max(0, 1 - s_ij) < lambda_j``.
    A face is pseudo-labelled only when exactly one person accepts it, with
    weight ``v = 1 - loss_ij / lambda_j``. With no people (zero columns) every
    face is unclear.
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2:
        raise ValueError(f"scores must be a 2-D (faces x people) matrix, got shape {s.shape}")
    n, p = s.shape
    if p == 0:
        return SelfPacedSelection(np.full(n, UNLABELLED, dtype=np.int64), np.zeros(n),
                                  np.ones(n, dtype=bool), np.zeros(n, dtype=bool))
    easy = self_paced_easiness(hinge_loss(s), lambdas)
    accept = easy > 0
    count = accept.sum(axis=1)
    one = count == 1
    col = np.argmax(accept, axis=1)
    labels = np.where(one, col, UNLABELLED).astype(np.int64)
    weights = np.where(one, easy[np.arange(n), col], 0.0)
    return SelfPacedSelection(labels, weights, count == 0, count > 1)


def ceal_threshold(t: int, delta0: float = 0.005, decay_rate: float = 0.00033) -> float:
    """CEAL's entropy threshold at round ``t`` (0-based), never below 0.

    CEAL updates ``delta <- delta - dr * t`` after iteration ``t``, so
    ``delta_t = delta0 - dr * t (t + 1) / 2``.
    """
    if t < 0:
        raise ValueError(f"round t must be >= 0, got {t!r}")
    return max(0.0, delta0 - decay_rate * t * (t + 1) / 2.0)


def ceal_pseudo_labels(proba: np.ndarray, threshold: float) -> np.ndarray:
    """CEAL pseudo-labels: the argmax column where entropy < ``threshold``, else :data:`UNLABELLED`."""
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"proba must be a 2-D (faces x people) matrix, got shape {p.shape}")
    if p.shape[1] == 0:
        return np.full(p.shape[0], UNLABELLED, dtype=np.int64)
    confident = entropy(p) < threshold
    return np.where(confident, p.argmax(axis=1), UNLABELLED).astype(np.int64)


def mean_distance(x: np.ndarray, X: np.ndarray) -> float:
    """Average Euclidean distance from vector ``x`` to the rows of ``X``."""
    X = np.asarray(X, dtype=np.float32)
    if X.shape[0] == 0:
        return 0.0
    d2 = ((X - np.asarray(x, dtype=np.float32)[None, :]) ** 2).sum(axis=1)
    return float(np.sqrt(np.maximum(d2, 0.0)).mean())


def seed_new_person(x: np.ndarray, candidates: np.ndarray, radius: float, max_seeds: int = 5
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``max_seeds`` rows of ``candidates`` within Euclidean ``radius`` of ``x``, nearest first.

    Returns ``(indices into candidates, distances)``. Uses an exact FAISS index
    (``IndexFlatL2``) over the candidates, e.g. the unclear set.
    """
    import faiss

    C = np.ascontiguousarray(np.asarray(candidates, dtype=np.float32))
    if C.ndim != 2:
        raise ValueError(f"candidates must be a 2-D matrix, got shape {C.shape}")
    max_seeds = _check_k(max_seeds)
    if C.shape[0] == 0 or max_seeds == 0 or radius <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    index = faiss.IndexFlatL2(C.shape[1])
    index.add(C)
    q = np.ascontiguousarray(np.asarray(x, dtype=np.float32).reshape(1, -1))
    d2, idx = index.search(q, min(max_seeds, C.shape[0]))
    d = np.sqrt(np.maximum(d2[0], 0.0))
    keep = (idx[0] >= 0) & (d <= radius)
    return idx[0][keep].astype(np.int64), d[keep].astype(np.float64)
