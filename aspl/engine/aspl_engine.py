"""ASPL (Lin et al., TPAMI 2017): self-paced pseudo-labels, active queries, seeding of new people and
re-certification of human labels; SPL alone as its no-query variant."""
from __future__ import annotations

import logging
from typing import Any, Callable

import numpy as np

from .base import (
    SOURCE_HUMAN,
    SOURCE_PSEUDO,
    SOURCE_SEED,
    ASPLSettings,
    Engine,
    RoundResult,
    _take,
    engine_jobs,
)
from .classifier import OneVsAllSVM
from .measures import best_score, score_margin, summary_best_score, summary_margin
from .recert import Recertifier, uniquely_predicted, uniquely_predicted_summary
from .selection import (
    UNLABELLED,
    NeighbourIndex,
    SelfPacedSelection,
    impostor_similarity,
    mean_distances,
    select_lowest,
    self_paced_labels,
    self_paced_select,
    supported,
)
from .summary import summarize_model

log = logging.getLogger(__name__)


def seed_neighbours(Q: np.ndarray, C: np.ndarray, k: int, radius: np.ndarray | float | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`~aspl.engine.selection.nearest_rows` on :func:`~aspl.engine.base.engine_jobs` threads:
    one index over ``C`` (the round's unclear faces), one batched search for every query row."""
    return NeighbourIndex(C, n_jobs=engine_jobs()).search(Q, k, radius)


class ASPLEngine(Engine):
    """Active Self-Paced Learning (Lin et al., TPAMI 2017).

    Each round: (1) train the SVMs on human labels (weight 1), seeds of new
    people, and the previous round's pseudo-labels (weight v); (2) re-certify
    the human labels; (3) self-paced step on the other faces: pseudo-label a
    face when exactly one person's hinge loss is below that person's lambda,
    weight ``1 - loss / lambda``; (4) query the ``query_size`` faces with the
    lowest best score; (5) grow every person's lambda. A person first seen
    with a human label, or still short of ``min_labels`` human labels, is
    seeded with nearby faces of the last unclear set (FAISS).
    """

    name = "aspl"
    settings_class = ASPLSettings
    #: Neighbour search ``(Q, C, k, radius) -> (indices, distances)`` used to seed new people: per
    #: row of ``Q`` its ``k`` nearest rows of ``C`` within ``radius`` (one per row of ``Q``), nearest
    #: first, -1 where fewer (exact, :func:`seed_neighbours`; assign a FAISS-backed function of the
    #: same signature on an instance to swap it).
    neighbours = staticmethod(seed_neighbours)

    def __init__(self, settings: ASPLSettings | None = None, **overrides: Any):
        super().__init__(settings, **overrides)
        s = self.settings
        self.pace_ = s.pace
        self.lambdas_: dict[int, float] = {}
        self.known_: set[int] = set()
        self.seeds_: dict[int, tuple[int, float]] = {}
        self.unclear_: np.ndarray | None = None  # boolean mask over rows, None before the first round
        self.recert_ = Recertifier(s.max_failures)
        self.last_labels_: np.ndarray | None = None

    def confirm(self, rows: np.ndarray) -> None:
        self.recert_.confirm(np.asarray(rows).reshape(-1).tolist())

    def forbid(self, rows: np.ndarray, persons: np.ndarray) -> None:
        super().forbid(rows, persons)
        for r, p in zip(np.asarray(rows).reshape(-1).tolist(), np.asarray(persons).reshape(-1).tolist()):
            if r in self.seeds_ and self.seeds_[r][0] == p:
                del self.seeds_[r]

    def _n_rows(self) -> int:
        return self.pseudo_labels_.shape[0]

    def state_dict(self) -> dict[str, Any]:
        n = self._n_rows()
        seed_p = np.full(n, UNLABELLED, dtype=np.int64)
        seed_w = np.zeros(n)
        for r, (p, w) in self.seeds_.items():
            if r < n:
                seed_p[r], seed_w[r] = p, w
        rc = self.recert_
        failures = np.zeros(n, dtype=np.int64)
        for r, c in rc.failures.items():
            if r < n:
                failures[r] = c
        persons = np.array(sorted(self.lambdas_), dtype=np.int64)
        return {**super().state_dict(),
                "lambda_persons": persons,
                "lambda_values": np.array([self.lambdas_[int(p)] for p in persons], dtype=np.float64),
                "known": np.array(sorted(self.known_), dtype=np.int64),
                "seed_person": seed_p, "seed_weight": seed_w,
                "has_unclear": self.unclear_ is not None,
                "unclear": _take(self.unclear_, np.arange(n), True) if self.unclear_ is not None
                else np.ones(n, dtype=bool),
                "failures": failures,
                "flagged": np.isin(np.arange(n), list(rc.flagged)),
                "verified": np.isin(np.arange(n), list(rc.verified)),
                "has_last_labels": self.last_labels_ is not None,
                "last_labels": _take(self.last_labels_, np.arange(n), UNLABELLED) if self.last_labels_ is not None
                else np.full(n, UNLABELLED, dtype=np.int64)}

    def load_state_dict(self, state: dict[str, Any]) -> "ASPLEngine":
        super().load_state_dict(state)
        self.lambdas_ = {int(p): float(v) for p, v in zip(state["lambda_persons"], state["lambda_values"])}
        self.known_ = {int(p) for p in state["known"]}
        self._load_rows(state)
        return self

    def _load_rows(self, state: dict[str, Any]) -> None:
        seed_p = np.asarray(state["seed_person"], dtype=np.int64)
        seed_w = np.asarray(state["seed_weight"], dtype=np.float64)
        self.seeds_ = {int(r): (int(seed_p[r]), float(seed_w[r])) for r in np.flatnonzero(seed_p >= 0)}
        self.unclear_ = np.asarray(state["unclear"], dtype=bool).copy() if state["has_unclear"] else None
        failures = np.asarray(state["failures"], dtype=np.int64)
        self.recert_ = Recertifier(self.settings.max_failures,
                                   {int(r): int(failures[r]) for r in np.flatnonzero(failures > 0)},
                                   set(np.flatnonzero(np.asarray(state["flagged"], dtype=bool)).tolist()),
                                   set(np.flatnonzero(np.asarray(state["verified"], dtype=bool)).tolist()))
        self.last_labels_ = (np.asarray(state["last_labels"], dtype=np.int64).copy()
                             if state["has_last_labels"] else None)

    def remap_rows(self, src: np.ndarray) -> None:
        src = np.asarray(src, dtype=np.int64).reshape(-1)
        st = self.state_dict()
        super().remap_rows(src)
        rows = {"seed_person": UNLABELLED, "seed_weight": 0.0, "unclear": True, "failures": 0,
                "flagged": False, "verified": False, "last_labels": UNLABELLED}
        self._load_rows({**st, **{k: _take(np.asarray(st[k]), src, fill) for k, fill in rows.items()}})

    def _track_changes(self, labels: np.ndarray) -> None:
        if self.last_labels_ is None:
            return
        n = self.last_labels_.shape[0]
        changed = np.flatnonzero(self.last_labels_ != labels[:n])
        if changed.size:
            self.recert_.reset(changed.tolist())

    def _update_seeds(self, X: np.ndarray, labels: np.ndarray, active_human: np.ndarray) -> dict[int, np.ndarray]:
        s = self.settings
        human = labels >= 0
        persons, counts = np.unique(labels[active_human], return_counts=True)
        count = dict(zip(persons.tolist(), counts.tolist()))
        new_people = {p for p in count if p not in self.known_}
        for r, (p, _) in list(self.seeds_.items()):
            if r >= len(labels) or human[r] or (count.get(p, 0) >= s.min_labels and p not in new_people):
                del self.seeds_[r]
        added: dict[int, np.ndarray] = {}
        if s.seed_max == 0:
            self.known_ |= set(count)
            return added
        unclear = np.zeros(len(labels), dtype=bool)
        if self.unclear_ is None:
            unclear[:] = True  # before the first round nobody accepts anything
        else:
            unclear[:self.unclear_.shape[0]] = self.unclear_
            unclear[self.unclear_.shape[0]:] = True  # rows appended since: not claimed by anyone
        unclear &= ~human
        if self.seeds_:
            unclear[list(self.seeds_)] = False
        need = [p for p in sorted(count) if p in new_people or count[p] < s.min_labels]
        cand = np.flatnonzero(unclear)
        if need and cand.size:
            # One batched search for every face of every person that needs seeds.
            Q = np.flatnonzero(active_human & np.isin(labels, need))
            Q = Q[np.argsort(labels[Q], kind="stable")]  # by person (as ``need``), rows increasing
            q_rows = [rows if rows.size <= s.seed_queries else  # at most seed_queries, spread over the rows
                      rows[np.unique(np.linspace(0, rows.size - 1, s.seed_queries).round().astype(np.int64))]
                      for rows in np.split(Q, np.searchsorted(labels[Q], need[1:]))]
            Q = np.concatenate(q_rows) if q_rows else Q
            radii = s.seed_radius * mean_distances(X[Q], X)
            idx, dist = self.neighbours(X[Q], X[cand], 2 * s.seed_max, radii)  # one index, one search
            start = 0
            for p, rows in zip(need, q_rows):
                block = slice(start, start + rows.size)
                start += rows.size
                room = s.seed_max - sum(1 for q, _ in self.seeds_.values() if q == p)
                if room <= 0:
                    continue
                found: dict[int, float] = {}
                for ii, dd, rad in zip(idx[block], dist[block], radii[block]):
                    hits = [(i, d) for i, d in zip(cand[ii[ii >= 0]].tolist(), dd[ii >= 0].tolist())
                            if d <= rad and unclear[i]]
                    for i, d in hits[:s.seed_max]:
                        found[i] = min(d, found.get(i, np.inf))
                chosen = sorted(found, key=lambda i: (found[i], i))[:room]
                for r in chosen:
                    self.seeds_[r] = (p, s.seed_weight)
                    unclear[r] = False
                if chosen:
                    added[p] = np.array(sorted(chosen), dtype=np.int64)
        self.known_ |= set(count)
        return added

    def _query(self, best: Callable[[], np.ndarray], margin: Callable[[], np.ndarray], n_people: int
               ) -> np.ndarray:
        """Rows to ask, by ``query_measure``, from the candidates' best scores or score margins."""
        k = self.settings.query_size
        if self.settings.query_measure == "score_margin" and n_people >= 2:
            return select_lowest(margin(), k, self.rng_)
        return select_lowest(best(), k, self.rng_)

    def _decide(self, model: OneVsAllSVM, X: np.ndarray, lam: np.ndarray, human_rows: np.ndarray,
                own: np.ndarray, cand: np.ndarray) -> tuple[np.ndarray, SelfPacedSelection, np.ndarray]:
        """``(re-certification passed per human row, self-paced selection of cand, query rows into cand)``.

        ``own``: each human row's column. From per-face summaries of score blocks (never the full
        matrix with the batched classifier), or from the full matrix with ``dense_scores``.
        """
        P = int(model.classes_.size)
        if self.dense_scores:
            S = model.decision_function(X)
            Sc = S[cand]
            return (uniquely_predicted(S[human_rows], own), self_paced_labels(Sc, lam),
                    self._query(lambda: best_score(Sc), lambda: score_margin(Sc), P))
        own_all = np.full(X.shape[0], UNLABELLED, dtype=np.int64)
        own_all[human_rows] = own
        summary = summarize_model(model, X, lam, own_all, n_jobs=engine_jobs())
        sc = summary.take(cand)
        return (uniquely_predicted_summary(summary.take(human_rows)), self_paced_select(sc),
                self._query(lambda: summary_best_score(sc), lambda: summary_margin(sc), P))

    def step(self, X: np.ndarray, labels: np.ndarray) -> RoundResult:
        X, labels = self._check(X, labels)
        s = self.settings
        n = X.shape[0]
        self._track_changes(labels)
        human = labels >= 0
        aside = np.zeros(n, dtype=bool)
        aside[self.recert_.set_aside()] = True
        active_human = human & ~aside
        added = self._update_seeds(X, labels, active_human)

        y = np.full(n, UNLABELLED, dtype=np.int64)
        w = np.zeros(n)
        src = np.zeros(n, dtype=np.int8)
        prev = (self.pseudo_labels_ >= 0) & ~human
        y[prev], w[prev], src[prev] = self.pseudo_labels_[prev], self.pseudo_weights_[prev], SOURCE_PSEUDO
        for r, (p, sw) in self.seeds_.items():
            y[r], w[r], src[r] = p, sw, SOURCE_SEED
        y[active_human], w[active_human], src[active_human] = labels[active_human], 1.0, SOURCE_HUMAN
        model = self._fit(X, y, w)
        classes = model.classes_
        lam = np.array([self.lambdas_.setdefault(int(p), self.pace_.start) for p in classes])

        rows = np.flatnonzero(active_human)
        cand = np.flatnonzero(~human)
        passed, sp, q = self._decide(model, X, lam, rows, model.column_of(labels[rows]), cand)
        flagged = self.recert_.update(rows, passed)
        if flagged.size:
            log.debug("round %d: %d human label(s) flagged for review", self.round_, flagged.size)

        pl = np.full(n, UNLABELLED, dtype=np.int64)
        pw = np.zeros(n)
        acc = cand[sp.accepted]
        pl[acc] = classes[sp.labels[sp.accepted]]
        pw[acc] = sp.weights[sp.accepted]
        unclear = cand[sp.unclear]
        self.support_threshold_ = s.support_similarity
        if s.support_similarity is not None and acc.size:
            mean = X.mean(axis=0, dtype=np.float64)
            if s.support_quantile is not None:
                imp = impostor_similarity(X, rows, labels[rows], mean=mean)
                if imp.size:
                    self.support_threshold_ = max(s.support_similarity,
                                                  float(np.quantile(imp, s.support_quantile)))
            ok = supported(X, acc, pl[acc], rows, labels[rows], self.support_threshold_, mean=mean,
                           separate_gap=s.separate_gap, companions=cand,
                           fresh=self.pseudo_labels_[acc] != pl[acc] if self.pseudo_labels_.size == n else None)
            far = acc[~ok]
            pl[far], pw[far] = UNLABELLED, 0.0
            unclear = np.union1d(unclear, far)
        self.unclear_ = np.zeros(n, dtype=bool)
        self.unclear_[unclear] = True

        queries = cand[q]

        lambdas = {int(p): float(v) for p, v in zip(classes, lam)}
        for p in classes:
            self.lambdas_[int(p)] = float(self.pace_.grow(self.lambdas_[int(p)]))
        self.pseudo_labels_, self.pseudo_weights_ = pl, pw
        self.last_labels_ = labels.copy()
        self.round_ += 1
        due = bool(s.finetune_every) and self.round_ % s.finetune_every == 0
        return RoundResult(self.round_ - 1, model, queries, pl.copy(), pw.copy(), y, w, src,
                           unclear=unclear, ambiguous=cand[sp.ambiguous], flagged=flagged,
                           set_aside=self.recert_.set_aside(), seeds=added, lambdas=lambdas, finetune_due=due)


class SPLEngine(ASPLEngine):
    """Self-paced learning alone: ASPL with no queries after the start (pace still grows each round)."""

    name = "spl"

    def __init__(self, settings: ASPLSettings | None = None, **overrides: Any):
        overrides["query_size"] = 0
        super().__init__(settings, **overrides)
