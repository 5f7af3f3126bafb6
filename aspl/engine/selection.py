"""Selection rules: pure functions from measures (or scores) to row indices.

* :func:`select_lowest` / :func:`select_highest` / :func:`select_random`: the
  active step's query rules (ASPL ranks by best score, lowest first; CEAL ranks
  by an uncertainty measure).
* :func:`self_paced_labels`: ASPL's self-paced step (exactly-one rule, linear
  soft weights, unclear and ambiguous sets); :func:`self_paced_select`: the same
  from a :class:`~aspl.engine.summary.ScoreSummary` (scores summarised in blocks).
* :func:`ceal_threshold` / :func:`ceal_pseudo_labels`: CEAL's high-confidence
  pseudo-labelling with a decaying entropy threshold.
* :func:`seed_new_person` / :func:`nearest_rows`: exact neighbours of a newly
  named person's faces in the unclear set (numpy; a FAISS search can stand in).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .measures import entropy, hinge_loss, self_paced_easiness
from .summary import ScoreSummary

__all__ = [
    "UNLABELLED",
    "SelfPacedSelection",
    "select_lowest",
    "select_highest",
    "select_random",
    "self_paced_labels",
    "self_paced_select",
    "ceal_threshold",
    "ceal_pseudo_labels",
    "mean_distance",
    "mean_distances",
    "nearest_rows",
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


def self_paced_select(summary: ScoreSummary) -> SelfPacedSelection:
    """:func:`self_paced_labels` from a :class:`~aspl.engine.summary.ScoreSummary` made with the
    people's lambdas (:func:`~aspl.engine.summary.summarize_model`): the same selection, bit for bit."""
    count = summary.n_accepted
    one = count == 1
    labels = np.where(one, summary.accepted, UNLABELLED).astype(np.int64)
    weights = np.where(one, summary.accepted_weight, 0.0)
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


#: Rows of ``X`` used to estimate a face's mean distance to all faces (exact below this size).
MEAN_DISTANCE_SAMPLE = 4096


def mean_distance(x: np.ndarray, X: np.ndarray, sample: int = MEAN_DISTANCE_SAMPLE) -> float:
    """Average Euclidean distance from vector ``x`` to the rows of ``X`` (see :func:`mean_distances`)."""
    return float(mean_distances(np.asarray(x, dtype=np.float32).reshape(1, -1), X, sample)[0])


def mean_distances(Q: np.ndarray, X: np.ndarray, sample: int = MEAN_DISTANCE_SAMPLE) -> np.ndarray:
    """Average Euclidean distance from each row of ``Q`` to the rows of ``X``.

    Past ``sample`` rows, the average is taken over an evenly spaced subset of
    ``sample`` rows of ``X`` (deterministic), so the cost does not grow with the library.
    """
    X = np.asarray(X, dtype=np.float32)
    Q = np.asarray(Q, dtype=np.float32)
    if X.shape[0] == 0 or Q.shape[0] == 0:
        return np.zeros(Q.shape[0])
    if X.shape[0] > sample:
        X = X[np.linspace(0, X.shape[0] - 1, sample).astype(np.int64)]
    out = np.empty(Q.shape[0])
    for i in range(0, Q.shape[0], 256):
        out[i:i + 256] = np.sqrt(_sq_dist(Q[i:i + 256], X)).mean(axis=1)
    return out


def _sq_dist(Q: np.ndarray, C: np.ndarray, cc: np.ndarray | None = None) -> np.ndarray:
    """Squared Euclidean distances ``(len(Q) x len(C))``, float64, clipped at 0 (``cc``: the rows'
    squared norms of ``C`` as float64, when the caller has them already)."""
    Q = np.asarray(Q, dtype=np.float64)
    C = np.asarray(C, dtype=np.float64)
    if cc is None:
        cc = (C * C).sum(1)
    d2 = (Q * Q).sum(1)[:, None] + cc[None, :] - 2.0 * (Q @ C.T)
    return np.maximum(d2, 0.0)


#: Distances computed at once by :func:`nearest_rows` (query rows x candidates; 4 Mi = 32 MiB as float64).
NEAREST_BLOCK_ELEMENTS = 1 << 22


def nearest_rows(Q: np.ndarray, C: np.ndarray, k: int, chunk: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact ``k`` nearest rows of ``C`` for every row of ``Q`` (Euclidean), nearest first.

    Returns ``(indices, distances)``, both ``(len(Q) x min(k, len(C)))``. This is
    the engine's neighbour search; any function with this signature (e.g. a
    FAISS index from :mod:`storage`) can stand in for it. ``chunk`` query rows
    at a time (default: about :data:`NEAREST_BLOCK_ELEMENTS` distances, at most 256 rows).
    """
    Q = np.asarray(Q, dtype=np.float32)
    C = np.asarray(C, dtype=np.float32)
    if Q.ndim != 2 or C.ndim != 2:
        raise ValueError(f"Q and C must be 2-D matrices, got shapes {Q.shape} and {C.shape}")
    k = min(_check_k(k), C.shape[0])
    idx = np.zeros((Q.shape[0], k), dtype=np.int64)
    dist = np.zeros((Q.shape[0], k))
    if k == 0:
        return idx, dist
    chunk = int(chunk) if chunk else int(np.clip(NEAREST_BLOCK_ELEMENTS // C.shape[0], 8, 256))
    C64 = C.astype(np.float64)  # once, not per chunk
    cc = (C64 * C64).sum(1)
    for i in range(0, Q.shape[0], chunk):
        d2 = _sq_dist(Q[i:i + chunk], C64, cc)
        part = np.argpartition(d2, k - 1, axis=1)[:, :k] if k < C.shape[0] else np.tile(np.arange(C.shape[0]),
                                                                                        (d2.shape[0], 1))
        pd = np.take_along_axis(d2, part, axis=1)
        del d2
        order = np.lexsort((part, pd), axis=1)
        idx[i:i + chunk] = np.take_along_axis(part, order, axis=1)
        dist[i:i + chunk] = np.sqrt(np.take_along_axis(pd, order, axis=1))
    return idx, dist


def seed_new_person(x: np.ndarray, candidates: np.ndarray, radius: float, max_seeds: int = 5
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``max_seeds`` rows of ``candidates`` within Euclidean ``radius`` of ``x``, nearest first.

    Returns ``(indices into candidates, distances)`` (exact search, :func:`nearest_rows`).
    """
    C = np.asarray(candidates, dtype=np.float32)
    if C.ndim != 2:
        raise ValueError(f"candidates must be a 2-D matrix, got shape {C.shape}")
    max_seeds = _check_k(max_seeds)
    if C.shape[0] == 0 or max_seeds == 0 or radius <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    idx, d = nearest_rows(np.asarray(x, dtype=np.float32).reshape(1, -1), C, max_seeds)
    keep = d[0] <= radius
    return idx[0][keep].astype(np.int64), d[0][keep].astype(np.float64)
