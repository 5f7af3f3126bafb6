"""Baselines on the same SVMs: CEAL (Wang et al. 2016), AL_RAND and AL_ALL."""
from __future__ import annotations

import numpy as np

from .base import SOURCE_HUMAN, SOURCE_PSEUDO, CEALSettings, Engine, RoundResult, _empty
from .measures import entropy, least_confidence, margin, softmax
from .selection import UNLABELLED, ceal_pseudo_labels, ceal_threshold, select_highest, select_lowest
from .summary import map_score_blocks


def ceal_measures(scores: np.ndarray, criterion: str, temperature: float, threshold: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """CEAL on a block of score rows: ``(uncertainty measure by criterion, pseudo-label column or -1)``
    from ``softmax(scores / temperature)`` (row-wise: blocks of rows give the rows of the whole)."""
    P = softmax(scores, temperature)
    if criterion == "margin":
        measure = margin(P)
    else:
        measure = entropy(P) if criterion == "entropy" else least_confidence(P)
    return measure, ceal_pseudo_labels(P, threshold)


class CEALEngine(Engine):
    """Cost-Effective Active Learning (Wang et al. 2016) on the same SVMs.

    Each round: train on human labels plus last round's pseudo-labels (weight
    1); query the ``query_size`` most uncertain faces by ``criterion``;
    pseudo-label (for the next round only) the faces whose entropy is below
    the decaying threshold ``delta_t``.
    """

    name = "ceal"
    settings_class = CEALSettings

    def step(self, X: np.ndarray, labels: np.ndarray) -> RoundResult:
        X, labels = self._check(X, labels)
        s = self.settings
        n = X.shape[0]
        human = labels >= 0
        y = np.full(n, UNLABELLED, dtype=np.int64)
        w = np.zeros(n)
        src = np.zeros(n, dtype=np.int8)
        prev = (self.pseudo_labels_ >= 0) & ~human
        y[prev], w[prev], src[prev] = self.pseudo_labels_[prev], 1.0, SOURCE_PSEUDO
        y[human], w[human], src[human] = labels[human], 1.0, SOURCE_HUMAN
        model = self._fit(X, y, w)
        cand = np.flatnonzero(~human)
        if cand.size == 0:  # every face has been asked: nothing to query or pseudo-label
            self.pseudo_labels_, self.pseudo_weights_ = np.full(n, UNLABELLED, dtype=np.int64), np.zeros(n)
            self.round_ += 1
            return RoundResult(self.round_ - 1, model, _empty(), self.pseudo_labels_.copy(),
                               self.pseudo_weights_.copy(), y, w, src)
        thr = ceal_threshold(self.round_, s.delta0, s.decay_rate)
        if self.dense_scores:
            measure, cols = ceal_measures(model.decision_function(X[cand]), s.criterion, s.temperature, thr)
        else:  # the same, row block by row block (never the full matrix with the batched classifier)
            parts = map_score_blocks(model, X[cand], lambda a, S: ceal_measures(S, s.criterion, s.temperature, thr))
            measure = np.concatenate([m for m, _ in parts]) if parts else np.zeros(0)
            cols = np.concatenate([c for _, c in parts]) if parts else np.zeros(0, dtype=np.int64)
        if s.criterion == "margin":
            q = select_lowest(measure, s.query_size, self.rng_)
        else:
            q = select_highest(measure, s.query_size, self.rng_)
        queries = cand[q]
        if model.classes_.size < 2:
            cols[:] = UNLABELLED  # one person: the softmax is trivially certain
        cols[q] = UNLABELLED
        pl = np.full(n, UNLABELLED, dtype=np.int64)
        ok = cols >= 0
        pl[cand[ok]] = model.classes_[cols[ok]]
        pw = (pl >= 0).astype(np.float64)
        self.pseudo_labels_, self.pseudo_weights_ = pl, pw
        self.round_ += 1
        return RoundResult(self.round_ - 1, model, queries, pl.copy(), pw.copy(), y, w, src)


def _human_only_round(engine: "Engine", X: np.ndarray, labels: np.ndarray, queries: np.ndarray) -> RoundResult:
    """A round of a baseline that trains on human labels only and makes no pseudo-labels."""
    n = X.shape[0]
    human = labels >= 0
    y = np.where(human, labels, UNLABELLED)
    w = human.astype(np.float64)
    model = engine._fit(X, y, w)
    engine.round_ += 1
    none = np.full(n, UNLABELLED, dtype=np.int64)
    return RoundResult(engine.round_ - 1, model, queries, none, np.zeros(n), y, w, human.astype(np.int8))


class RandomEngine(Engine):
    """AL_RAND: human labels only; the annotator labels ``query_size`` random faces per round."""

    name = "random"

    def step(self, X: np.ndarray, labels: np.ndarray) -> RoundResult:
        X, labels = self._check(X, labels)
        cand = np.flatnonzero(labels < 0)
        k = min(self.settings.query_size, cand.size)
        return _human_only_round(self, X, labels, self.rng_.choice(cand, size=k, replace=False) if k else _empty())


class AllEngine(Engine):
    """AL_ALL: human labels only, and every unlabelled face is asked at once (the ceiling)."""

    name = "all"

    def step(self, X: np.ndarray, labels: np.ndarray) -> RoundResult:
        X, labels = self._check(X, labels)
        return _human_only_round(self, X, labels, np.flatnonzero(labels < 0))
