"""Selection rules: pure functions from measures (or scores) to row indices.

* :func:`select_lowest` / :func:`select_highest` / :func:`select_random`: the
  active step's query rules (ASPL ranks by best score, lowest first; CEAL ranks
  by an uncertainty measure).
* :func:`self_paced_labels`: ASPL's self-paced step (exactly-one rule, linear
  soft weights, unclear and ambiguous sets); :func:`self_paced_select`: the same
  from a :class:`~aspl.engine.summary.ScoreSummary` (scores summarised in blocks).
* :func:`ceal_threshold` / :func:`ceal_pseudo_labels`: CEAL's high-confidence
  pseudo-labelling with a decaying entropy threshold.
* :func:`seed_new_person` / :func:`nearest_rows` / :class:`NeighbourIndex`: exact
  neighbours of newly named people's faces in the unclear set, within a radius (one
  index per round, one batched float32 search with a float64 check of the few
  survivors; numpy, a FAISS search can stand in).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from .measures import entropy, hinge_loss, self_paced_easiness
from .preprocess import center_embeddings
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
    "nearest_rows_float64",
    "NeighbourIndex",
    "seed_new_person",
    "supported",
    "impostor_similarity",
    "apart_from_reference",
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
    Distances from float32 products (``|q|^2 + |x|^2 - 2 q.x``), averaged in float64.
    """
    X = np.asarray(X, dtype=np.float32)
    Q = np.asarray(Q, dtype=np.float32)
    if X.shape[0] == 0 or Q.shape[0] == 0:
        return np.zeros(Q.shape[0])
    if X.shape[0] > sample:
        X = X[np.linspace(0, X.shape[0] - 1, sample).astype(np.int64)]
    xx = np.einsum("ij,ij->i", X, X)
    out = np.empty(Q.shape[0])
    for i in range(0, Q.shape[0], 1024):
        q = Q[i:i + 1024]
        d2 = q @ X.T
        d2 *= -2.0
        d2 += xx
        d2 += np.einsum("ij,ij->i", q, q)[:, None]
        np.maximum(d2, 0.0, out=d2)
        out[i:i + 1024] = np.sqrt(d2).sum(axis=1, dtype=np.float64) / X.shape[0]
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


def _sq_norms64(A: np.ndarray, rows: int = 4096) -> np.ndarray:
    """Squared norms of the rows of float32 ``A`` in float64 (``rows`` at a time: no float64 copy of A)."""
    out = np.empty(A.shape[0])
    for i in range(0, A.shape[0], rows):
        a = A[i:i + rows].astype(np.float64)
        out[i:i + rows] = np.einsum("ij,ij->i", a, a)
    return out


#: float32 scores computed at once by :class:`NeighbourIndex` (query rows x candidates; 1 Mi = 4 MiB).
SEARCH_BLOCK_ELEMENTS = 1 << 20
#: Query rows of one :class:`NeighbourIndex` block (the candidates per block follow from
#: :data:`SEARCH_BLOCK_ELEMENTS`).
SEARCH_QUERY_ROWS = 256


class NeighbourIndex:
    """Exact Euclidean nearest neighbours among the fixed rows of ``C``: built once, searched in batches.

    ``search(Q, k, radius)`` ranks every candidate for every query by ``q.c - |c|^2 / 2`` (one
    float32 product per block of query rows x candidates, against the rows of ``C`` stored with
    ``-|c|^2 / 2`` as an extra column). A candidate survives a block only if its float32 score is
    within a bound of float32 rounding error (:meth:`_slack`) of the cut: the radius, or the
    block's ``k``-th best score. The few survivors are then measured in float64
    (``|q|^2 + |c|^2 - 2 q.c``, as :func:`_sq_dist`), filtered by the radius and ranked, so the
    answer is that of an exact float64 search over all of ``C`` (ties: the lower row first)
    while the bulk of the work is float32 matrix products and one pass of row maxima.
    ``n_jobs`` threads search blocks of query rows at once (None: 1), each with one BLAS
    thread (two BLAS threads on these small products cost several times the CPU); the
    answer does not depend on it.
    """

    def __init__(self, C: np.ndarray, n_jobs: int | None = None):
        C = np.ascontiguousarray(C, dtype=np.float32)
        if C.ndim != 2:
            raise ValueError(f"C must be a 2-D matrix, got shape {C.shape}")
        m, d = C.shape
        self.C = C
        self.cc = _sq_norms64(C)
        self.Ca = np.empty((m, d + 1), dtype=np.float32)
        self.Ca[:, :d] = C
        self.Ca[:, d] = -0.5 * self.cc
        self.cmax = float(np.sqrt(self.cc.max())) if m else 0.0
        self.n_jobs = n_jobs

    @property
    def size(self) -> int:
        return self.C.shape[0]

    def _slack(self, qn: np.ndarray) -> np.ndarray:
        """Twice a bound on the float32 error of each score ``q.c - |c|^2/2`` (and of the cut it is
        compared with) for query norms ``qn``: ``(d + 1)``-term products of size at most
        ``|q| |c| + |c|^2 / 2``, the cut ``(|q|^2 - r^2) / 2`` rounded to float32."""
        d1 = self.Ca.shape[1]
        return 2.0 * (d1 + 2) * 2.0 ** -24 * (qn * self.cmax + 0.5 * self.cmax ** 2 + 0.5 * qn ** 2 + 1e-30)

    def search(self, Q: np.ndarray, k: int, radius: np.ndarray | float | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest rows of ``C`` for every row of ``Q``, nearest first, within ``radius``
        (one value, or one per query row; None: no limit).

        Returns ``(indices, distances)``, both ``(len(Q) x min(k, len(C)))``; places with no
        neighbour within the radius hold index -1 and distance ``inf``.
        """
        Q = np.ascontiguousarray(Q, dtype=np.float32)
        if Q.ndim != 2 or Q.shape[1] != self.C.shape[1]:
            raise ValueError(f"Q must be a (rows x {self.C.shape[1]}) matrix, got shape {Q.shape}")
        k = min(_check_k(k), self.size)
        n = Q.shape[0]
        idx = np.full((n, k), -1, dtype=np.int64)
        dist = np.full((n, k), np.inf)
        if k == 0 or n == 0:
            return idx, dist
        r = np.broadcast_to(np.inf if radius is None else np.asarray(radius, dtype=np.float64), (n,))
        qq = _sq_norms64(Q)
        slack = self._slack(np.sqrt(qq))
        # exact d^2 <= r^2  <=>  q.c - |c|^2/2 >= (|q|^2 - r^2) / 2; float32 scores may be off by slack
        thr = np.where(np.isfinite(r), 0.5 * (qq - np.square(np.where(np.isfinite(r), r, 0.0))), -np.inf)
        Qa = np.empty((n, Q.shape[1] + 1), dtype=np.float32)
        Qa[:, :-1] = Q
        Qa[:, -1] = 1.0
        starts = range(0, n, SEARCH_QUERY_ROWS)

        def block(a: int) -> tuple[np.ndarray, np.ndarray]:
            b = slice(a, a + SEARCH_QUERY_ROWS)
            rows, cols = self._candidates(Qa[b], thr[b], slack[b], k)
            return rows + a, cols

        jobs = min(int(self.n_jobs or 1), len(starts))
        with threadpool_limits(limits=1, user_api="blas"):  # small products: BLAS threads only contend
            if jobs > 1:
                with ThreadPoolExecutor(jobs) as pool:
                    parts = list(pool.map(block, starts))
            else:
                parts = [block(a) for a in starts]
        qi = np.concatenate([p[0] for p in parts])
        ci = np.concatenate([p[1] for p in parts])
        # float64 distances of the survivors (as _sq_dist), then the radius and the k nearest per query
        dot = np.einsum("ij,ij->i", Q[qi].astype(np.float64), self.C[ci].astype(np.float64))
        d2 = np.maximum(qq[qi] + self.cc[ci] - 2.0 * dot, 0.0)
        dd = np.sqrt(d2)
        keep = dd <= r[qi]
        qi, ci, dd = qi[keep], ci[keep], dd[keep]
        order = np.lexsort((ci, dd, qi))
        qi, ci, dd = qi[order], ci[order], dd[order]
        first = np.searchsorted(qi, qi, side="left")
        rank = np.arange(qi.size) - first
        top = rank < k
        idx[qi[top], rank[top]] = ci[top]
        dist[qi[top], rank[top]] = dd[top]
        return idx, dist

    def _candidates(self, Qa: np.ndarray, thr: np.ndarray, slack: np.ndarray, k: int
                    ) -> tuple[np.ndarray, np.ndarray]:
        """``(query rows, candidate rows)`` that may be among each query's ``k`` nearest within its
        radius: per candidate block, scores within ``2 slack`` of the cut (radius or block k-th best)."""
        m = self.size
        b = Qa.shape[0]
        step = max(k, SEARCH_BLOCK_ELEMENTS // max(b, 1), 1)
        # float32 scores below cut0 are beyond the radius; cut0 rises to (a block's k-th best - 2 slack)
        # once a block holds more than k candidates above it (the k nearest so far score at least that)
        cut0 = (thr - 2.0 * slack).astype(np.float32)
        buf = np.empty((b, min(step, m)), dtype=np.float32)
        out_r, out_c = [], []
        for a in range(0, m, step):
            Cb = self.Ca[a:a + step]
            S = np.matmul(Qa, Cb.T, out=buf[:, :Cb.shape[0]])
            live = np.flatnonzero(S.max(axis=1) >= cut0)
            if live.size == 0:
                continue
            sub = S if live.size == b else S[live]
            cut = cut0[live]
            w = sub.shape[1]
            if k < w:
                over = np.count_nonzero(sub >= cut[:, None], axis=1) > k
                if over.any():  # more than k above the cut: only those near the block's k-th best
                    kth = np.partition(sub[over], w - k, axis=1)[:, w - k]
                    cut[over] = np.maximum(cut[over], (kth - 2.0 * slack[live[over]]).astype(np.float32))
                    cut0[live] = cut
            rr, cc = np.nonzero(sub >= cut[:, None])
            out_r.append(live[rr])
            out_c.append(cc + a)
        if not out_r:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        return np.concatenate(out_r).astype(np.int64), np.concatenate(out_c).astype(np.int64)


#: Distances computed at once by :func:`nearest_rows` (query rows x candidates; 4 Mi = 32 MiB as float64).
NEAREST_BLOCK_ELEMENTS = 1 << 22


def nearest_rows(Q: np.ndarray, C: np.ndarray, k: int, chunk: int | None = None,
                 radius: np.ndarray | float | None = None, n_jobs: int | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Exact ``k`` nearest rows of ``C`` for every row of ``Q`` (Euclidean), nearest first.

    Returns ``(indices, distances)``, both ``(len(Q) x min(k, len(C)))``. This is
    the engine's neighbour search (:class:`NeighbourIndex` over ``C``); any function with
    this signature (e.g. a FAISS index from :mod:`storage`) can stand in for it.
    ``radius`` (one value or one per query row): only neighbours within it, the other
    places -1 with distance ``inf``. ``chunk``: ignored (the index picks its own blocks).
    """
    Q = np.asarray(Q, dtype=np.float32)
    C = np.asarray(C, dtype=np.float32)
    if Q.ndim != 2 or C.ndim != 2:
        raise ValueError(f"Q and C must be 2-D matrices, got shapes {Q.shape} and {C.shape}")
    return NeighbourIndex(C, n_jobs=n_jobs).search(Q, k, radius)


def nearest_rows_float64(Q: np.ndarray, C: np.ndarray, k: int, chunk: int | None = None
                         ) -> tuple[np.ndarray, np.ndarray]:
    """The reference :func:`nearest_rows`: every distance in float64, ``chunk`` query rows at a time
    (default: about :data:`NEAREST_BLOCK_ELEMENTS` distances, at most 256 rows). Slow; for tests."""
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
    idx, d = nearest_rows(np.asarray(x, dtype=np.float32).reshape(1, -1), C, max_seeds, radius=radius)
    keep = idx[0] >= 0
    return idx[0][keep], d[0][keep]


def supported(X: np.ndarray, rows: np.ndarray, persons: np.ndarray, ref_rows: np.ndarray,
              ref_persons: np.ndarray, min_similarity: float, mean: np.ndarray | None = None,
              separate_gap: float | None = None, separate_min: int = 3, max_companions: int = 4000,
              companions: np.ndarray | None = None, fresh: np.ndarray | None = None) -> np.ndarray:
    """Per row of ``rows``: is some row of ``ref_rows`` with the same person at cosine similarity
    ``>= min_similarity`` with it, after subtracting ``mean`` from both (None: compare ``X`` as it is)?
    With ``separate_gap``, a supported row is still refused when at least ``separate_min - 1`` other
    rows are ``separate_gap`` more like it than its nearest reference row: a tight group of someone
    nobody named, each face close enough to one named face to pass on its own. The other rows counted:
    the supported rows of the same person (at most ``max_companions``, evenly spaced) and, when given,
    the rows of ``companions`` (e.g. every face nobody named; at most ``max_companions``, evenly spaced),
    so that one face claimed by a named person is refused when it sits among faces of someone nobody
    named yet that the classifiers left unclaimed (on lfw-dev: a Kofi Annan face at 0.72 from a Serena
    Williams face, 0.88-0.90 from four other Kofi Annan faces). Rows whose reference similarity is above
    ``1 - separate_gap`` are never refused this way (no cosine can be that much higher) and cost nothing.
    ``fresh``: per row of ``rows``, whether to count ``companions`` for it (None: every row; the engine
    passes the claims that are new this round, so a round at 100k faces does not pay again for the
    labels it kept).

    The open-set guard of self-paced labels: a one-vs-all classifier trained without a person can
    claim that person's faces with confidence; they fail this test against the claimed person's
    named faces. One small product per person (their rows x their reference rows), centred and
    normalised on the fly: no copy of ``X``."""
    rows = np.asarray(rows, np.int64)
    persons = np.asarray(persons, np.int64)
    ok = np.zeros(rows.size, dtype=bool)
    if rows.size == 0 or len(ref_rows) == 0:
        return ok
    ref_rows = np.asarray(ref_rows, np.int64)
    ref_persons = np.asarray(ref_persons, np.int64)
    order = np.argsort(persons, kind="stable")
    ref_order = np.argsort(ref_persons, kind="stable")
    rp = ref_persons[ref_order]
    ps, starts = np.unique(persons[order], return_index=True)
    ends = np.append(starts[1:], order.size)
    mu = np.zeros(X.shape[1], np.float32) if mean is None else mean
    others = None
    if separate_gap is not None and companions is not None:
        others = np.unique(np.asarray(companions, np.int64))
        if others.size > max_companions:
            others = others[np.linspace(0, others.size - 1, max_companions).astype(np.int64)]
        C_others = center_embeddings(X[others], mu)

    for p, a, b in zip(ps.tolist(), starts.tolist(), ends.tolist()):
        lo, hi = np.searchsorted(rp, p, "left"), np.searchsorted(rp, p, "right")
        if lo == hi:
            continue
        idx = order[a:b]
        sims = center_embeddings(X[rows[idx]], mu) @ center_embeddings(X[ref_rows[ref_order[lo:hi]]], mu).T
        best = sims.max(axis=1)
        ok[idx] = best >= min_similarity
        if separate_gap is not None:
            keep = idx[ok[idx]]
            ref = best[ok[idx]]
            test = ref + separate_gap <= 1.0  # a cosine is at most 1: the rest can never be refused
            own = rows[keep]
            if own.size > max_companions:
                own = own[np.linspace(0, own.size - 1, max_companions).astype(np.int64)]
            parts = wider = [(own, center_embeddings(X[own], mu))]
            wide = np.zeros(keep.size, dtype=bool)  # rows also measured against ``companions``
            if others is not None:
                new_ = ~np.isin(others, own)  # each companion counted once
                wider = parts + [(others[new_], C_others[new_])]
                wide = test & (np.ones(keep.size, dtype=bool) if fresh is None else fresh[keep])
            for sel, comp in ((test & ~wide, parts), (wide, wider)):
                if sel.any():
                    ok[keep[sel][_apart_rows(X, mu, rows[keep[sel]], ref[sel], comp, separate_gap,
                                             separate_min)]] = False
    return ok


def _apart_rows(X: np.ndarray, mu: np.ndarray, q_rows: np.ndarray, reference: np.ndarray,
                companions: list[tuple[np.ndarray, np.ndarray]], gap: float, min_faces: int) -> np.ndarray:
    """Per row of ``q_rows``: are at least ``min_faces - 1`` companions other than itself at centred cosine
    >= its ``reference`` + ``gap``? ``companions``: ``(rows, their centred unit embeddings)`` blocks (no
    row in two blocks). Blocks of 1,024 query rows."""
    need = np.asarray(reference, np.float64) + gap
    close = np.zeros(q_rows.size, np.int64)
    for c in range(0, q_rows.size, 1024):
        q = q_rows[c:c + 1024]
        close[c:c + 1024] = _count_close(center_embeddings(X[q], mu), q, need[c:c + 1024], companions)
    return close >= min_faces - 1


def _count_close(Zq: np.ndarray, q_ids: np.ndarray, need: np.ndarray,
                 companions: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Per row of ``Zq`` (unit rows, ids ``q_ids``): how many companions (``(ids, unit rows)`` blocks) other
    than itself lie at inner product >= its ``need``."""
    close = np.zeros(Zq.shape[0], np.int64)
    for ids, C in companions:
        if ids.size:
            hit = (Zq @ C.T) >= need[:, None]
            hit &= ids[None, :] != q_ids[:, None]  # a row is not its own companion
            close += hit.sum(axis=1)
    return close


def impostor_similarity(X: np.ndarray, rows: np.ndarray, persons: np.ndarray, mean: np.ndarray | None = None,
                        max_rows: int = 1000, max_refs: int = 20000) -> np.ndarray:
    """Per labelled row (evenly spaced, at most ``max_rows`` of ``rows``): its highest centred cosine
    similarity with a row of *another* person (at most ``max_refs`` rows, evenly spaced): how close a
    face can lie to someone it is not, on these features. Empty with fewer than two people."""
    rows = np.asarray(rows, np.int64)
    persons = np.asarray(persons, np.int64)
    if rows.size < 2 or np.unique(persons).size < 2:
        return np.zeros(0, np.float32)
    mu = np.zeros(X.shape[1], np.float32) if mean is None else mean
    q = np.linspace(0, rows.size - 1, min(max_rows, rows.size)).round().astype(np.int64)
    r = np.unique(np.linspace(0, rows.size - 1, min(max_refs, rows.size)).round().astype(np.int64))
    S = center_embeddings(X[rows[q]], mu) @ center_embeddings(X[rows[r]], mu).T
    S[persons[q][:, None] == persons[r][None, :]] = -np.inf
    best = S.max(axis=1)
    return best[np.isfinite(best)].astype(np.float32)


def apart_from_reference(Z: np.ndarray, reference: np.ndarray, gap: float, min_faces: int = 3,
                         max_companions: int = 4000) -> np.ndarray:
    """Per row of ``Z`` (unit rows): are at least ``min_faces - 1`` *other* rows (among ``max_companions``
    evenly spaced ones) at inner product >= its ``reference`` similarity + ``gap``? A tight group lying
    well apart from what it was compared with (its nearest named face, a cluster's centre): someone else.
    Works in blocks of 1,024 rows."""
    n = Z.shape[0]
    comp = np.arange(n) if n <= max_companions else np.linspace(0, n - 1, max_companions).astype(np.int64)
    need = np.asarray(reference, np.float64) + gap
    close = np.zeros(n, np.int64)
    for c in range(0, n, 1024):
        close[c:c + 1024] = _count_close(Z[c:c + 1024], np.arange(c, min(c + 1024, n)), need[c:c + 1024],
                                         [(comp, Z[comp])])
    return close >= min_faces - 1
