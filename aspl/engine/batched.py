"""Every person's one-vs-all SVM trained together: batched finite Newton in float32 (numpy only).

:class:`BatchedOneVsAll` is a drop-in for :class:`~aspl.engine.classifier.OneVsAllSVM`
(same parameters, learned attributes and methods) that solves the same problem
as liblinear's primal L2-loss SVM (``LinearSVC(loss="squared_hinge")``,
``intercept_scaling=1``: the bias is an extra feature of value 1, regularised
like the weights). For each person ``p`` with ``w~ = (w, b)`` and ``x~ = (x, 1)``::

    min  0.5 ||w~||^2 + C sum_i s_i c_ip max(0, 1 - y_ip w~ . x~_i)^2

with ``y_ip = +1`` for the person's own faces (cost ``c = positive_weight``)
and ``-1`` for every other face (``c = 1``), ``s_i`` the sample weight.

How it scales (faces ``n``, people ``P``, dims ``d``):

* **Working set.** At the optimum a person's loss comes from its own faces and
  the few other faces scoring above -1 ("support vectors"); every other face
  has zero loss and zero gradient. Each person is solved on its own faces plus
  a working set of negatives (cold: the faces most similar to the person's
  mean; warm: those scoring above ``-1 - slack`` under the previous weights),
  then one float32 pass over all faces (people in blocks, ``n x block`` scores,
  never ``n x P``) adds the negatives that violate the margin; people that
  gained violators are solved again. When no person gains one, the solution
  satisfies the optimality conditions of the full problem.
* **Batched exact Newton.** People with working sets of similar size are solved
  together: per iteration one gathered ``(people x rows x d+1)`` float32 block,
  exact ``(d+1) x (d+1)`` Hessians ``I + 2C X_A^T D X_A`` by batched matrix
  products, a batched solve (float64) and an exact line search on the
  piecewise-quadratic objective. Squared hinge makes this finite Newton
  (Keerthi & DeCoste 2005): a handful of iterations.
* **Warm start.** ``fit(..., init=previous_model)`` (or ``warm_start=True``)
  starts every person already in the previous model from its weights; a person
  whose optimum did not move (its faces and its violators unchanged) stops
  after one check (at most one step, below ``tol``) and is not scanned again, so
  only people whose problem changed are retrained.
* **Negative subsampling** (``max_negatives``, default off): one shared random
  subset of the faces serves as every person's negatives, reweighted to the
  full negative mass. Off by default: see ``bench/results/classifier.md``.

Optimality is checked on the Newton step: a person stops when the last step
moved no score by more than ``tol`` (the step bounds the distance to the
optimum; ``||H^-1 g|| <= ||g||`` since ``H >= I``).

Scores: :meth:`BatchedOneVsAll.decision_function` (dense, like OneVsAllSVM) and
:meth:`BatchedOneVsAll.top2`, the best and second-best person per face in row
blocks without the full score matrix (:meth:`BatchedOneVsAll.score_blocks`; the
engine summarises the same blocks, :mod:`aspl.engine.summary`).
"""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterator, NamedTuple

import numpy as np
from sklearn.utils.validation import check_array, check_is_fitted
from threadpoolctl import threadpool_limits

from .classifier import DEFAULT_C, OneVsAllSVM, check_fit_inputs
from .selection import UNLABELLED
from .summary import block_rows

__all__ = ["BatchedOneVsAll", "Top2"]

log = logging.getLogger(__name__)

#: float32 elements of one work array (gathered rows, score blocks): 8 Mi = 32 MiB.
WORK_ELEMENTS = 1 << 23
#: Negatives kept in the working set of a person that is warm-started: score above ``-1 - SLACK``.
#: (0.25 before: 4x the rows per Newton step in a second round of scale_bench.py at 100k x 2,000, for
#: the same optimum; classifier_bench.py at 100k x 2,000 unchanged within noise: fit 21 s vs 23.5 s.)
SLACK = 0.1
#: Cold start: working-set negatives per person, the most similar to its mean (at least this many) ...
#: (256 halves the first round's training in scale_bench.py at 100k x 2,000, but 256 and 512 take 2.3x
#: and 1.4x as long on classifier_bench.py's look-alike groups: a scan from an undertrained start keeps
#: too many negatives.)
COLD_NEGATIVES = 1024
#: ... or this many times its own faces, whichever is more.
COLD_PER_POSITIVE = 4
#: People scored together in a pass over all faces, at least (fewer: the faces are read too often).
SCAN_PEOPLE = 32
#: Newton steps on a working set between two checks of all faces.
INNER_STEPS = 5


def _bt():
    """:mod:`aspl.engine.batched_torch`, imported when first needed: the engine imports no torch until a
    fit or a scoring resolves its device (``auto`` asks torch whether it sees a GPU)."""
    from . import batched_torch

    return batched_torch


def resolve_device(device: str | None):
    """See :func:`aspl.engine.batched_torch.resolve_device` (None: numpy)."""
    if device == "numpy":
        return None
    return _bt().resolve_device(device)


class Top2(NamedTuple):
    """Best and second-best column per face (``-1`` and ``-inf`` where there are fewer people)."""

    first: np.ndarray
    first_score: np.ndarray
    second: np.ndarray
    second_score: np.ndarray


class BatchedOneVsAll(OneVsAllSVM):
    """One linear squared-hinge SVM per person, all trained together (see the module docstring).

    Parameters
    ----------
    C, positive_weight, min_labels : as :class:`~aspl.engine.classifier.OneVsAllSVM`.
    loss : only ``"squared_hinge"`` (``"hinge"``: use OneVsAllSVM).
    max_iter : Newton iterations per solve of a person.
    tol : a person stops when its last Newton step moved no score by more than ``tol``.
    random_state : seed of the negative subsample (``max_negatives``).
    warm_start : start from this estimator's previous fit (as scikit-learn's ``warm_start``).
    max_negatives : train every person against one shared random subset of at most this many
        faces (reweighted to the full negative mass); None (default): against all faces.
    working_set : people with at most this many negatives are solved on all of them at once;
        with more, on a working set grown by passes over all faces (None: never).
    n_jobs : threads solving groups of people and scanning blocks at once (None: 1). Each uses
        one BLAS thread; the result does not depend on it. (numpy path only.)
    device : where the array work runs: ``"auto"`` (default: a CUDA GPU when torch sees one, else
        numpy on the CPU), ``"numpy"``, or a torch device (``"cpu"``, ``"cuda"``, ``"cuda:1"``); see
        :mod:`aspl.engine.batched_torch`. Same optimum within ``tol`` on every device.

    ``fit(X, y, sample_weight, init=None)``: as OneVsAllSVM; ``init`` a fitted
    model (either class) to warm-start from. Learned state as OneVsAllSVM plus
    ``n_iter_`` (Newton iterations per person, 0: already optimal) and
    ``n_passes_`` (passes over all faces).
    """

    def __init__(self, C: float = DEFAULT_C, positive_weight: float = 5.0, min_labels: int = 4,
                 loss: str = "squared_hinge", max_iter: int = 100, tol: float = 1e-4,
                 random_state: int | None = None, warm_start: bool = False,
                 max_negatives: int | None = None, working_set: int | None = 4096, n_jobs: int | None = None,
                 device: str = "auto"):
        super().__init__(C=C, positive_weight=positive_weight, min_labels=min_labels, loss=loss,
                         max_iter=max_iter, tol=tol, random_state=random_state)
        self.warm_start = warm_start
        self.max_negatives = max_negatives
        self.working_set = working_set
        self.n_jobs = n_jobs
        self.device = device

    def _validate(self) -> None:
        super()._validate()
        if self.loss != "squared_hinge":
            raise ValueError(f"BatchedOneVsAll solves loss 'squared_hinge' only, got {self.loss!r} "
                             f"(use OneVsAllSVM, classifier 'liblinear', for 'hinge')")
        if int(self.max_iter) != self.max_iter or self.max_iter < 1 or not self.tol > 0:
            raise ValueError(f"need an integer max_iter >= 1 and tol > 0, got {self.max_iter!r}, {self.tol!r}")
        for name in ("max_negatives", "working_set", "n_jobs"):
            v = getattr(self, name)
            if v is not None and (int(v) != v or v < 1):
                raise ValueError(f"{name} must be None or an integer >= 1, got {v!r}")
        resolve_device(self.device)  # ValueError names the valid choices

    # ------------------------------------------------------------------ fit
    def fit(self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None,
            init: Any = None) -> "BatchedOneVsAll":
        """Train every person with at least ``min_labels`` faces and some negative; return ``self``.

        ``init``: a fitted one-vs-all model (``classes_``, ``coef_``, ``intercept_``) whose
        people start from their previous weights; with ``warm_start=True`` and no ``init``,
        this estimator's own previous fit.
        """
        self._validate()
        if init is None and self.warm_start and hasattr(self, "coef_"):
            init = _Snapshot(self.classes_, self.coef_, self.intercept_)
        X, y, w = check_fit_inputs(X, y, sample_weight, np.float32)
        n, d = X.shape
        self.n_features_in_ = d
        ids, counts = np.unique(y[y >= 0], return_counts=True)
        ok = (counts >= self.min_labels) & (counts < n)  # a person needs negatives (as OneVsAllSVM)
        for c in ids[(counts >= self.min_labels) & (counts == n)]:
            log.info("person %d has no negative faces yet: no classifier", c)
        people = ids[ok].astype(np.int64)
        P = people.size
        self.classes_ = people
        self.n_iter_ = np.zeros(P, dtype=np.int64)
        self.n_passes_ = 0
        if P == 0:
            self.coef_ = np.zeros((0, d))
            self.intercept_ = np.zeros(0)
            return self

        prob = _Problem(X, y, w, people, float(self.C), float(self.positive_weight))
        if self.max_negatives is not None and n > self.max_negatives:
            rng = np.random.default_rng(self.random_state)
            prob.subsample(np.sort(rng.choice(n, int(self.max_negatives), replace=False)))
        dev = resolve_device(self.device)
        if dev is not None:
            prob.dd = _bt().DeviceData(prob, dev)

        W = np.zeros((P, d + 1))
        warm = np.zeros(P, dtype=bool)
        if init is not None and getattr(init, "coef_", None) is not None and np.shape(init.coef_)[1:] == (d,):
            col = {int(c): i for i, c in enumerate(np.asarray(init.classes_))}
            src = np.array([col.get(int(p), -1) for p in people], dtype=np.int64)
            warm = src >= 0
            W[warm, :d] = np.asarray(init.coef_, dtype=np.float64)[src[warm]]
            W[warm, d] = np.asarray(init.intercept_, dtype=np.float64)[src[warm]]

        full = self.working_set is None or prob.m <= self.working_set
        jobs = int(self.n_jobs or 1) if prob.dd is None else 1  # a torch device runs its own threads
        with threadpool_limits(limits=1, user_api="blas"):  # small products: BLAS threads only contend
            if jobs > 1:
                with ThreadPoolExecutor(jobs) as pool:
                    self._solve(prob, W, warm, full, pool)
            else:
                self._solve(prob, W, warm, full, None)
        self.coef_ = W[:, :d].copy()
        self.intercept_ = W[:, d].copy()
        return self

    def _solve(self, prob: "_Problem", W: np.ndarray, warm: np.ndarray, full: bool, pool) -> None:
        """Fill ``W`` (people x d+1, warm rows already set) with every person's optimum."""
        P = W.shape[0]
        tol = float(self.tol)
        if full:  # small problems: every negative at once, no passes
            cand = [prob.all_negatives(j) for j in range(P)]
            steps, conv = _newton(prob, cand, W, np.arange(P), int(self.max_iter), tol, pool)
            self.n_iter_ += steps
            stuck = int((~conv).sum())
        else:
            # Working sets: warm people start from the negatives near their margin, cold ones from
            # the negatives most similar to their mean. ``fresh``: the set was found at the current W.
            cand = [np.zeros(0, dtype=np.int64)] * P
            fresh = warm.copy()
            jw, jc = np.flatnonzero(warm), np.flatnonzero(~warm)
            if jw.size:
                for j, rows in zip(jw, prob.scan_above(W[jw], jw, -1.0 - SLACK, pool=pool)[0]):
                    cand[j] = rows
            if jc.size:
                k = np.maximum(COLD_NEGATIVES, COLD_PER_POSITIVE * prob.npos[jc])
                for j, rows in zip(jc, prob.scan_top(prob.mean_directions(jc), jc, k, pool)):
                    cand[j] = rows
            self.n_passes_ += 1
            todo, stuck = np.arange(P), 0
            while todo.size:
                # a few Newton steps on the working sets, then one check of every face
                before = W[todo]
                steps, conv = _newton(prob, cand, W, todo, INNER_STEPS, tol, pool)
                self.n_iter_[todo] += steps
                # optimal at weights (within tol of those) whose scan found the set: nothing to check
                moved = np.linalg.norm(W[todo] - before, axis=1) * prob.xmax
                unmoved = conv & (moved <= tol) & fresh[todo]
                todo, conv = todo[~unmoved], conv[~unmoved]
                if not todo.size:
                    break
                near, viol = prob.scan_above(W[todo], todo, -1.0 - SLACK, also=-1.0, pool=pool)
                self.n_passes_ += 1
                fresh[todo] = True
                again = []
                for j, ok, nr, vr in zip(todo, conv, near, viol):
                    more = not ok or not np.isin(vr, cand[j], assume_unique=True).all()
                    cand[j] = nr  # every active negative and every violator; far inactive faces dropped
                    if more:
                        if self.n_iter_[j] < self.max_iter:
                            again.append(j)
                            fresh[j] = ok  # unconverged people will move
                        else:
                            stuck += 1
                todo = np.array(again, dtype=np.int64)
        if stuck:
            log.warning("BatchedOneVsAll: %d people not converged after max_iter=%d Newton steps",
                        stuck, self.max_iter)

    # -------------------------------------------------------------- scoring
    def _scores32(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        check_is_fitted(self, "coef_")
        X = check_array(X, dtype=np.float32)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, the classifier was fit on {self.n_features_in_}")
        cached = getattr(self, "_coef32", None)  # float32 weights, converted once per fit, not per call
        if cached is None or cached[0] is not self.coef_ or cached[1] is not self.intercept_:
            cached = (self.coef_, self.intercept_, np.ascontiguousarray(self.coef_, dtype=np.float32),
                      np.asarray(self.intercept_, dtype=np.float32))
            self._coef32 = cached
        return X, cached[2], cached[3]

    def _scoring_device(self):
        """The device that scores: ``device``, or ``auto``'s choice where that one is not here (a model
        trained on a GPU machine and loaded on one without)."""
        try:
            return resolve_device(getattr(self, "device", "auto"))
        except ValueError:
            return resolve_device("auto")

    def score_blocks(self, X: np.ndarray, chunk: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """``(first row, float32 scores)`` of ``X`` in blocks of ``chunk`` rows (default: about
        :data:`~aspl.engine.summary.SCORE_BLOCK_ELEMENTS` scores per block), columns as ``classes_``.

        Each block is a new array (the caller may overwrite it); the full matrix is never built.
        """
        X, Wt, b = self._scores32(X)  # checked now, not at the first block
        step = block_rows(Wt.shape[0], chunk)
        dev = self._scoring_device()
        if dev is not None:
            return _bt().score_blocks(X, Wt, b, step, dev)
        return ((a, X[a:a + step] @ Wt.T + b) for a in range(0, X.shape[0], step))

    def decision_function(self, X: np.ndarray, chunk: int | None = None) -> np.ndarray:
        """Scores ``(faces x people)`` as float64, columns in the order of ``classes_`` (float32 products,
        the blocks of :meth:`score_blocks`)."""
        blocks = self.score_blocks(X, chunk)
        out = np.empty((np.shape(X)[0], self.classes_.size))
        for a, S in blocks:
            out[a:a + S.shape[0]] = S
        return out

    def top2(self, X: np.ndarray, chunk: int | None = None) -> Top2:
        """Best and second-best column (index into ``classes_``) and score per face, block by block.

        Never builds the full score matrix (the blocks of :meth:`score_blocks`). Ties go to the lower
        column, as :meth:`predict`. Missing places (fewer than two people): column -1, score ``-inf``.
        """
        dev = self._scoring_device()
        if dev is not None:
            Xc, Wt, b = self._scores32(X)
            return Top2(*_bt().top2_blocks(Xc, Wt, b, block_rows(Wt.shape[0], chunk), dev))
        blocks = self.score_blocks(X, chunk)
        n = np.shape(X)[0]
        first = np.full(n, -1, dtype=np.int64)
        second = np.full(n, -1, dtype=np.int64)
        s1 = np.full(n, -np.inf)
        s2 = np.full(n, -np.inf)
        P = self.classes_.size
        for a, S in blocks:
            if P == 0:
                break
            rows = np.arange(S.shape[0])
            part = slice(a, a + S.shape[0])
            c = S.argmax(axis=1)
            first[part], s1[part] = c, S[rows, c]
            if P >= 2:
                S[rows, c] = -np.inf
                c = S.argmax(axis=1)
                second[part], s2[part] = c, S[rows, c]
        return Top2(first, s1, second, s2)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Person id of the highest score; -1 for every face while no person has a classifier."""
        top = self.top2(X)
        if self.classes_.size == 0:
            return np.full(top.first.shape[0], UNLABELLED, dtype=np.int64)
        return self.classes_[top.first]


class _Snapshot(NamedTuple):
    classes_: np.ndarray
    coef_: np.ndarray
    intercept_: np.ndarray


class _Problem:
    """One fit's data: augmented float32 rows, costs, each person's faces, the faces usable as negatives."""

    def __init__(self, X: np.ndarray, y: np.ndarray, w: np.ndarray, people: np.ndarray, C: float, cw: float):
        n, d = X.shape
        self.Xt = np.empty((n, d + 1), dtype=np.float32)
        self.Xt[:, :d] = X
        self.Xt[:, d] = 1.0
        self.y = y
        self.s = w.astype(np.float32)
        self.C, self.cw = C, cw
        self.xmax = float(np.sqrt((self.Xt.astype(np.float64) ** 2).sum(1).max()))
        order = np.argsort(y, kind="stable")
        lo = np.searchsorted(y[order], people, "left")
        hi = np.searchsorted(y[order], people, "right")
        self.pos = [order[a:b] for a, b in zip(lo, hi)]  # increasing rows
        self.npos = hi - lo
        self.subsample(None)
        self.dd: Any = None  # the rows on a torch device (batched_torch.DeviceData; None: numpy)

    @property
    def m(self) -> int:
        return self.neg_rows.size

    def subsample(self, rows: np.ndarray | None) -> None:
        """Use only ``rows`` (sorted) as negatives, reweighted to each person's full negative mass."""
        n = self.Xt.shape[0]
        self.neg_rows = np.arange(n) if rows is None else rows
        self.neg_scale = np.ones(len(self.pos))
        self.local = np.full(n, -1, dtype=np.int64)
        self.local[self.neg_rows] = np.arange(self.neg_rows.size)
        self.Xn = self.Xt if rows is None else self.Xt[rows]
        if rows is not None:
            total = float(self.s.astype(np.float64).sum())
            sub = float(self.s[rows].astype(np.float64).sum())
            for j, pp in enumerate(self.pos):
                ps = float(self.s[pp].astype(np.float64).sum())
                pin = pp[self.local[pp] >= 0]
                sub_j = sub - float(self.s[pin].astype(np.float64).sum())
                self.neg_scale[j] = (total - ps) / sub_j if sub_j > 0 else 1.0

    def all_negatives(self, j: int) -> np.ndarray:
        keep = np.ones(self.m, dtype=bool)
        lp = self.local[self.pos[j]]
        keep[lp[lp >= 0]] = False
        return self.neg_rows[keep]

    def mean_directions(self, js: np.ndarray) -> np.ndarray:
        """Unit weighted mean of each person's faces (bias 0): the cold start's similarity."""
        D = np.zeros((js.size, self.Xt.shape[1]))
        for i, j in enumerate(js):
            pp = self.pos[j]
            D[i, :-1] = self.s[pp].astype(np.float64) @ self.Xt[pp, :-1]
        D /= np.maximum(np.linalg.norm(D, axis=1, keepdims=True), 1e-12)
        return D

    def _map_blocks(self, D: np.ndarray, js: np.ndarray, fn, pool) -> list:
        """``fn(a, S)`` for each block of people starting at ``a`` (scores people x negatives with each
        person's own faces at -inf, ``WORK_ELEMENTS`` at most), in order, on ``pool`` when given."""
        D = np.ascontiguousarray(D, dtype=np.float32)
        step = self._step()

        def block(a: int):
            S = D[a:a + step] @ self.Xn.T
            for r, j in enumerate(js[a:a + step]):
                lp = self.local[self.pos[j]]
                S[r, lp[lp >= 0]] = -np.inf
            return fn(a, S)

        starts = range(0, js.size, step)
        return list(pool.map(block, starts) if pool is not None else map(block, starts))

    def _step(self) -> int:
        return max(SCAN_PEOPLE, WORK_ELEMENTS // max(self.m, 1))

    def scan_top(self, D: np.ndarray, js: np.ndarray, k: np.ndarray, pool=None) -> list[np.ndarray]:
        """Per person, the rows of the ``k`` negatives most similar to its direction (sorted rows)."""
        if self.dd is not None:
            return _bt().scan_top(self, self.dd, D, js, k, self._step())

        def top(a: int, S: np.ndarray) -> list[np.ndarray]:
            out = []
            for r in range(S.shape[0]):
                kk, v = int(k[a + r]), S[r]
                sel = np.argpartition(v, v.size - kk)[v.size - kk:] if kk < v.size else np.arange(v.size)
                out.append(self.neg_rows[np.sort(sel[np.isfinite(v[sel])])])
            return out

        return [rows for part in self._map_blocks(D, js, top, pool) for rows in part]

    def scan_above(self, W: np.ndarray, js: np.ndarray, thr: float, also: float = np.inf, pool=None):
        """Per person, the negatives scoring above ``thr``, and those of them scoring above ``also``."""
        if self.dd is not None:
            return _bt().scan_above(self, self.dd, W, js, thr, also, self._step())

        def above(a: int, S: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
            flat = np.flatnonzero(S > thr)
            rr, cc = np.divmod(flat, S.shape[1])
            cuts = np.searchsorted(rr, np.arange(1, S.shape[0]))
            vals = S.ravel()[flat]
            return [(self.neg_rows[c], self.neg_rows[c[v > also]])
                    for c, v in zip(np.split(cc, cuts), np.split(vals, cuts))]

        pairs = [p for part in self._map_blocks(W, js, above, pool) for p in part]
        return [p[0] for p in pairs], [p[1] for p in pairs]


def _newton(prob: _Problem, cand: list[np.ndarray], W: np.ndarray, todo: np.ndarray,
            max_iter: int, tol: float, pool=None) -> tuple[np.ndarray, np.ndarray]:
    """Solve people ``todo`` on their own faces plus negatives ``cand``, updating rows of ``W`` in place.

    People go in groups of similar working-set size (one gathered float32 block each; groups run
    on ``pool`` when given). Returns the Newton steps of each person of ``todo`` and whether it
    converged within ``max_iter``.
    """
    d1 = prob.Xt.shape[1]
    sizes = np.array([prob.npos[j] + cand[j].size for j in todo], dtype=np.int64)
    order = np.argsort(sizes, kind="stable")
    groups = []
    i = 0
    while i < order.size:
        b = 1
        while (i + b < order.size and b < 1024
               and (b + 1) * sizes[order[i + b]] * d1 <= WORK_ELEMENTS):
            b += 1
        groups.append(order[i:i + b])
        i += b

    def solve(sel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if prob.dd is not None:
            return _bt().newton_group(prob, prob.dd, cand, W, todo[sel], int(sizes[sel].max()), max_iter, tol)
        return _newton_group(prob, cand, W, todo[sel], int(sizes[sel].max()), max_iter, tol)

    iters = np.zeros(todo.size, dtype=np.int64)
    conv = np.zeros(todo.size, dtype=bool)
    for sel, (it, ok) in zip(groups, pool.map(solve, groups) if pool is not None else map(solve, groups)):
        iters[sel], conv[sel] = it, ok
    return iters, conv


def _newton_group(prob: _Problem, cand: list[np.ndarray], W: np.ndarray, grp: np.ndarray, K: int,
                  max_iter: int, tol: float) -> tuple[np.ndarray, np.ndarray]:
    B, d1 = grp.size, prob.Xt.shape[1]
    C = prob.C
    idx = np.zeros((B, K), dtype=np.int64)
    yg = np.zeros((B, K), dtype=np.float32)
    cg = np.zeros((B, K), dtype=np.float32)  # per-pair cost / C; 0 pads
    for r, j in enumerate(grp):
        pp, nn = prob.pos[j], cand[j]
        a, c = pp.size, nn.size
        idx[r, :a], idx[r, a:a + c] = pp, nn
        yg[r, :a], yg[r, a:a + c] = 1.0, -1.0
        cg[r, :a] = prob.cw * prob.s[pp]
        cg[r, a:a + c] = prob.neg_scale[j] * prob.s[nn]
    Xg = np.take(prob.Xt, idx.ravel(), axis=0).reshape(B, K, d1)
    del idx
    w = W[grp].copy()
    live = np.arange(B)  # rows of the group still iterating
    iters = np.zeros(B, dtype=np.int64)
    conv = np.ones(B, dtype=bool)
    G = None  # sum of cg x x^T over every row of each person (used while most rows are active)
    valid = cg > 0
    eye = np.eye(d1)
    r = 1.0 - yg * np.matmul(Xg, w.astype(np.float32)[:, :, None])[:, :, 0]  # margins 1 - y w.x
    for _ in range(max_iter):
        act = (r > 0) & valid
        a = np.where(act, cg, np.float32(0))
        g = w + 2.0 * C * np.matmul((-(yg * a * r))[:, None, :], Xg)[:, 0, :]
        done = np.linalg.norm(g, axis=1) * prob.xmax <= tol  # ||step|| <= ||g|| since H >= I
        if done.any():
            W[grp[live[done]]] = w[done]
            keep = ~done
            if not keep.any():
                break
            live, Xg, yg, cg, valid, w, g, r, act = (v[keep] for v in (live, Xg, yg, cg, valid, w, g, r, act))
            G = None if G is None else G[keep]
        # Hessian I + 2C X^T diag(cg) X over the active rows, or over all rows minus the inactive
        # ones where those are fewer (the first step from zero: every row is active).
        n_act = act.sum(1)
        comp = valid.sum(1) - n_act < n_act
        if comp.any() and G is None:
            G = _weighted_gram(Xg, cg)
        H = _weighted_gram(Xg, cg, np.where(comp[:, None], valid & ~act, act))
        if comp.any():
            H[comp] = G[comp] - H[comp]
        H *= 2.0 * C
        H += eye
        delta = np.linalg.solve(H, -g[:, :, None])[:, :, 0]
        q = yg * np.matmul(Xg, delta.astype(np.float32)[:, :, None])[:, :, 0]  # r(t) = r - t q
        t = _line_search(w, delta, r, q, cg, C)
        w += t[:, None] * delta
        r -= t.astype(np.float32)[:, None] * q
        iters[live] += 1
        done = t * np.linalg.norm(delta, axis=1) * prob.xmax <= tol
        if done.any():
            W[grp[live[done]]] = w[done]
            keep = ~done
            if not keep.any():
                break
            live, Xg, yg, cg, valid, w, r = (v[keep] for v in (live, Xg, yg, cg, valid, w, r))
            G = None if G is None else G[keep]
    else:
        W[grp[live]] = w
        conv[live] = False
    return iters, conv


def _weighted_gram(Xg: np.ndarray, c: np.ndarray, sel: np.ndarray | None = None) -> np.ndarray:
    """``sum_k c[b,k] x[b,k] x[b,k]^T`` per ``b`` (float64), over the rows where ``sel`` (all: None).

    Only the selected rows are gathered (padded to the largest count of the group).
    """
    B, K, d1 = Xg.shape
    if sel is not None:
        L = int(sel.sum(1).max()) if B else 0
        if L == 0:
            return np.zeros((B, d1, d1))
        c = np.where(sel, c, np.float32(0))
        if L < 0.8 * K:
            pick = (np.argsort(~sel, axis=1, kind="stable")[:, :L] + (np.arange(B) * K)[:, None]).ravel()
            c = np.take(c.ravel(), pick).reshape(B, L)
            Xg = np.take(Xg.reshape(B * K, d1), pick, axis=0).reshape(B, L, d1)
    return np.matmul(Xg.transpose(0, 2, 1) * c[:, None, :], Xg).astype(np.float64)


def _line_search(w: np.ndarray, delta: np.ndarray, r: np.ndarray, q: np.ndarray, cg: np.ndarray,
                 C: float, steps: int = 10) -> np.ndarray:
    """Step ``t`` in (0, 1] minimising ``0.5||w + t delta||^2 + C sum cg max(0, r - t q)^2`` per row.

    The slope in ``t`` is convex, increasing and piecewise linear: the full Newton step ``t = 1``
    is taken where the slope there is not positive; elsewhere Newton's method on the slope,
    started at 1, decreases monotonically to the minimum (exact once on the right piece).
    """
    wd = (w * delta).sum(1)
    dd = (delta * delta).sum(1)

    def slope(t: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rr, qq = r[rows], q[rows]
        rt = rr - t.astype(np.float32)[:, None] * qq
        cq = np.where(rt > 0, cg[rows] * qq, np.float32(0))
        d1 = wd[rows] + t * dd[rows] - 2.0 * C * (cq * rt).sum(1, dtype=np.float64)
        d2 = dd[rows] + 2.0 * C * (cq * qq).sum(1, dtype=np.float64)
        return d1, d2

    t = np.ones(w.shape[0])
    rows = np.arange(w.shape[0])
    d1, d2 = slope(t, rows)
    for _ in range(steps):
        more = d1 > 1e-9 * np.abs(wd[rows])  # slope still positive: the minimum lies before t
        if not more.any():
            break
        rows, d1, d2 = rows[more], d1[more], d2[more]
        t[rows] = np.clip(t[rows] - d1 / np.maximum(d2, 1e-300), 1e-12, t[rows])
        d1, d2 = slope(t[rows], rows)
    return t
