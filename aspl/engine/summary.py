"""Per-face summaries of one-vs-all scores, computed block by block (never the full score matrix).

Everything a round decides from the scores depends on each face's row alone:
the self-paced step (how many people accept the face under their own pace,
which one, with what weight), the query measures (best score, gap to the
second best) and re-certification (how many people score the face positive,
and the score of its own person). :func:`summarize_scores` reduces a block of
score rows to those numbers (:class:`ScoreSummary`), and
:func:`summarize_model` runs it over a classifier's scores in row blocks: with
:class:`~aspl.engine.batched.BatchedOneVsAll` (``score_blocks``) one
``rows x people`` float32 block at a time, with other classifiers over their
dense ``decision_function``. The selections made from a summary are the ones
:func:`~aspl.engine.selection.self_paced_labels`,
:func:`~aspl.engine.recert.uniquely_predicted` and the measures of
:mod:`aspl.engine.measures` make from the full matrix, bit for bit (same
float64 formulas on the same values).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from typing import Any, Callable, Iterator, Sequence

import numpy as np
from threadpoolctl import threadpool_limits

__all__ = ["ScoreSummary", "summarize_scores", "summarize_model", "score_blocks", "map_score_blocks",
           "SCORE_BLOCK_ELEMENTS", "block_rows"]

#: Scores per block of :func:`score_blocks` on a dense matrix (rows x people; 2 Mi = 16 MiB as float64).
SCORE_BLOCK_ELEMENTS = 1 << 21
#: Below ``1 - max(lambda) - PACE_GUARD`` no person can accept a face: such scores skip the float64 test.
PACE_GUARD = 1e-3
_NONE = -1  # "no column" (selection.UNLABELLED; not imported: selection imports this module)


@dataclass(frozen=True)
class ScoreSummary:
    """What a round needs of each face's scores (one entry per face; columns index ``classes_``).

    ``first`` / ``second``: the best and second-best column (ties: the lower
    column first; -1 and ``-inf`` where there are fewer people); ``n_positive``:
    people scoring the face above 0; ``n_accepted``: people whose pace accepts
    it (hinge loss ``max(0, 1 - s) < lambda``; 0 without lambdas); ``accepted``
    and ``accepted_weight``: the column and self-paced weight ``1 - loss /
    lambda`` where exactly one person accepts (else -1 and 0); ``own_score``:
    the score of the face's own column (NaN where it has none).
    """

    n_people: int
    first: np.ndarray
    first_score: np.ndarray
    second: np.ndarray
    second_score: np.ndarray
    n_positive: np.ndarray
    n_accepted: np.ndarray
    accepted: np.ndarray
    accepted_weight: np.ndarray
    own_score: np.ndarray

    @property
    def n_faces(self) -> int:
        return int(self.first.shape[0])

    def _arrays(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "n_people"}

    def take(self, rows: np.ndarray) -> "ScoreSummary":
        """The summary of faces ``rows`` (in that order)."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        return ScoreSummary(self.n_people, **{k: v[rows] for k, v in self._arrays().items()})

    @classmethod
    def empty(cls, n_faces: int, n_people: int) -> "ScoreSummary":
        """Faces with no score yet: no columns, every count 0."""
        none = np.full(n_faces, _NONE, dtype=np.int64)
        return cls(n_people, none, np.full(n_faces, -np.inf), none.copy(), np.full(n_faces, -np.inf),
                   np.zeros(n_faces, dtype=np.int64), np.zeros(n_faces, dtype=np.int64), none.copy(),
                   np.zeros(n_faces), np.full(n_faces, np.nan))

    @classmethod
    def concat(cls, parts: Sequence["ScoreSummary"], n_people: int) -> "ScoreSummary":
        """The summaries of consecutive row blocks as one (``n_people`` when there are no parts)."""
        if not parts:
            return cls.empty(0, n_people)
        names = list(parts[0]._arrays())
        return cls(n_people, **{k: np.concatenate([getattr(p, k) for p in parts]) for k in names})


def _check_lambdas(lambdas: np.ndarray | None, n_people: int) -> np.ndarray | None:
    if lambdas is None:
        return None
    lam = np.asarray(lambdas, dtype=np.float64).reshape(-1)
    if lam.shape[0] != n_people:
        raise ValueError(f"need one lambda per person: {n_people} people, got {lam.shape[0]} lambdas")
    if np.any(lam <= 0):
        raise ValueError(f"lambdas must be > 0, got {lam[lam <= 0][:5].tolist()}")
    return lam


def _check_own(own: np.ndarray | None, n_faces: int, n_people: int) -> np.ndarray:
    if own is None:
        return np.full(n_faces, _NONE, dtype=np.int64)
    own = np.asarray(own, dtype=np.int64).reshape(-1)
    if own.shape[0] != n_faces:
        raise ValueError(f"need one own column per face: {n_faces} faces, got {own.shape[0]}")
    if own.size and int(own.max()) >= n_people:
        raise ValueError(f"own column out of range: {int(own.max())} >= {n_people} people")
    return own


def summarize_scores(scores: np.ndarray, lambdas: np.ndarray | None = None,
                     own: np.ndarray | None = None) -> ScoreSummary:
    """Summary of a ``(faces x people)`` score block (see :class:`ScoreSummary`); ``scores`` is not changed.

    ``lambdas``: each person's pace (None: no self-paced counts); ``own``: each
    face's own column (-1: none).
    """
    S = np.asarray(scores)
    if S.ndim != 2:
        raise ValueError(f"scores must be a 2-D (faces x people) matrix, got shape {S.shape}")
    if not np.issubdtype(S.dtype, np.floating):
        S = S.astype(np.float64)
    lam = _check_lambdas(lambdas, S.shape[1])
    own = _check_own(own, S.shape[0], S.shape[1])
    return _summarize(S.copy(), lam, own)


def _summarize(S: np.ndarray, lam: np.ndarray | None, own: np.ndarray) -> ScoreSummary:
    """:func:`summarize_scores` on a block it may overwrite (inputs already checked)."""
    n, P = S.shape
    out = ScoreSummary.empty(n, P)
    if n == 0 or P == 0:
        return out
    rows = np.arange(n)
    has = own >= 0
    out.own_score[has] = S[rows[has], own[has]]
    # Only scores above ``thr`` can be positive or accepted: test those few exactly, in float64.
    thr = 0.0 if lam is None else min(0.0, 1.0 - float(lam.max()) - PACE_GUARD)
    flat = np.flatnonzero(S > thr)  # row-major: columns increase within a row (1-D: ~10x faster than 2-D)
    rr, cc = np.divmod(flat, P)
    v = S.ravel()[flat] if S.flags.c_contiguous else S[rr, cc]
    out.n_positive[:] = np.bincount(rr[v > 0], minlength=n)
    if lam is not None:
        easy = 1.0 - np.maximum(0.0, 1.0 - v.astype(np.float64)) / lam[cc]  # measures.self_paced_easiness
        ok = easy > 0
        rr, cc, easy = rr[ok], cc[ok], easy[ok]
        out.n_accepted[:] = np.bincount(rr, minlength=n)
        one = np.flatnonzero(out.n_accepted == 1)
        at = np.searchsorted(rr, one)  # the first (here: only) accepting entry of each such row
        out.accepted[one] = cc[at]
        out.accepted_weight[one] = easy[at]
    c1 = S.argmax(axis=1)
    out.first[:] = c1
    out.first_score[:] = S[rows, c1]
    if P >= 2:
        S[rows, c1] = -np.inf
        c2 = S.argmax(axis=1)
        out.second[:] = c2
        out.second_score[:] = S[rows, c2]
    return out


def block_rows(n_people: int, chunk: int | None = None) -> int:
    """Rows per score block: ``chunk``, or about :data:`SCORE_BLOCK_ELEMENTS` scores."""
    return int(chunk) if chunk else max(1, SCORE_BLOCK_ELEMENTS // max(n_people, 1))


def score_blocks(model: Any, X: np.ndarray, chunk: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """``(first row, scores of a block of rows)`` over ``X``, the blocks ours to overwrite.

    A model with ``score_blocks`` (:class:`~aspl.engine.batched.BatchedOneVsAll`) scores
    block by block; any other gets its dense ``decision_function(X)`` cut into blocks.
    """
    if hasattr(model, "score_blocks"):
        yield from model.score_blocks(X, chunk)
        return
    S = model.decision_function(X)
    step = block_rows(S.shape[1], chunk)
    for a in range(0, S.shape[0], step):
        yield a, S[a:a + step]


def map_score_blocks(model: Any, X: np.ndarray, fn: Callable[[int, np.ndarray], Any],
                     chunk: int | None = None) -> list[Any]:
    """``[fn(first row, block), ...]`` over :func:`score_blocks` (for row-wise measures)."""
    return [fn(a, S) for a, S in score_blocks(model, X, chunk)]


def summarize_model(model: Any, X: np.ndarray, lambdas: np.ndarray | None = None, own: np.ndarray | None = None,
                    chunk: int | None = None, n_jobs: int | None = None) -> ScoreSummary:
    """:class:`ScoreSummary` of ``model``'s scores of every row of ``X``, block by block.

    ``lambdas``: one pace per column of ``model.classes_``; ``own``: one column per row of ``X`` (-1: none).
    ``n_jobs``: threads scoring and summarising blocks at once, each with one BLAS thread (models with
    ``score_blocks`` only; None: 1). The blocks are the same either way, so is the summary.
    """
    P = int(np.asarray(model.classes_).size)
    n = int(np.asarray(X).shape[0])
    lam = _check_lambdas(lambdas, P)
    own = _check_own(own, n, P)
    if P == 0:
        return ScoreSummary.empty(n, 0)
    jobs = int(n_jobs or 1)
    step = block_rows(P, chunk)
    if jobs > 1 and hasattr(model, "score_blocks") and n > step:
        def block(a: int) -> ScoreSummary:
            ((_, S),) = model.score_blocks(X[a:a + step], step)
            return _summarize(S, lam, own[a:a + S.shape[0]])

        with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(jobs) as pool:
            parts = list(pool.map(block, range(0, n, step)))
        return ScoreSummary.concat(parts, P)
    parts = map_score_blocks(model, X, lambda a, S: _summarize(S, lam, own[a:a + S.shape[0]]), chunk)
    return ScoreSummary.concat(parts, P)
