"""Labelling strategies behind one interface: ASPL, SPL alone, CEAL, AL_RAND and AL_ALL.

An engine holds the algorithm's state between rounds (paces, seeds,
re-certification counts, the last pseudo-labels) and nothing else: no UI, no
SQL. Faces are rows of an embedding matrix ``X``; rows may be appended between
rounds but never reordered. Human labels are an int array over the rows
(person id >= 0, or -1 for unlabelled). One call to :meth:`Engine.step` is one
round: train the classifiers, decide pseudo-labels for the next round, and
pick the faces to ask the annotator (:class:`RoundResult`).

>>> engine = make_engine("aspl", query_size=20, min_labels=1)
>>> result = engine.step(X, labels)          # labels: -1 = unlabelled
>>> ask = result.queries                     # rows to show the annotator
>>> labels[ask] = answers; engine.step(X, labels)   # next round
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from .classifier import DEFAULT_C, OneVsAllSVM
from .measures import best_score, entropy, least_confidence, margin, score_margin, softmax
from .pace import Pace
from .recert import Recertifier, uniquely_predicted
from .selection import (
    UNLABELLED,
    ceal_pseudo_labels,
    ceal_threshold,
    mean_distances,
    nearest_rows,
    select_highest,
    select_lowest,
    self_paced_labels,
)

__all__ = [
    "SOURCE_NONE", "SOURCE_HUMAN", "SOURCE_PSEUDO", "SOURCE_SEED",
    "EngineSettings", "ASPLSettings", "CEALSettings", "RoundResult",
    "Engine", "ASPLEngine", "SPLEngine", "CEALEngine", "RandomEngine", "AllEngine",
    "METHODS", "VARIANTS", "METHOD_NAMES", "make_engine",
]

log = logging.getLogger(__name__)

#: Where a training label came from (``RoundResult.train_source``).
SOURCE_NONE, SOURCE_HUMAN, SOURCE_PSEUDO, SOURCE_SEED = 0, 1, 2, 3

CEAL_CRITERIA = ("entropy", "least_confidence", "margin")
ASPL_QUERIES = ("best_score", "score_margin")


@dataclass
class EngineSettings:
    """Settings shared by every strategy.

    ``C``, ``positive_weight``, ``min_labels``: the one-vs-all SVMs
    (:class:`~aspl.engine.classifier.OneVsAllSVM`; released code: C 0.001 on raw
    CNN features, see :data:`~aspl.engine.classifier.DEFAULT_C`, weight 5,
    4 labels). ``query_size``: faces asked per round (K). ``random_state``:
    seed of tie-breaks and random queries.
    """

    C: float = DEFAULT_C
    positive_weight: float = 5.0
    min_labels: int = 4
    query_size: int = 20
    random_state: int | None = 0

    def validate(self) -> None:
        if int(self.query_size) != self.query_size or self.query_size < 0:
            raise ValueError(f"query_size must be an integer >= 0, got {self.query_size!r}")
        OneVsAllSVM(C=self.C, positive_weight=self.positive_weight, min_labels=self.min_labels)._validate()

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class ASPLSettings(EngineSettings):
    """ASPL settings (defaults from the released code where it has them).

    Pace: ``lambda_start`` 0.12, ``lambda_step`` 0.08 per query round,
    ``lambda_max`` 0.9. New people: up to ``seed_max`` (5) faces of the unclear
    set within ``seed_radius`` (1/3) of the labelled face's average distance to
    all faces, trained with weight ``seed_weight``. Re-certification: a human
    label failing more than ``max_failures`` (3) rounds is flagged and set
    aside. ``finetune_every``: every F rounds the result asks the caller to
    fine-tune the backbone and re-embed (0: never). ``query_measure``:
    ``best_score`` (the paper: lowest best score first) or ``score_margin``
    (smallest gap between a face's two highest scores first; not in the
    paper; method name ``aspl-margin``).
    """

    lambda_start: float = 0.12
    lambda_step: float = 0.08
    lambda_max: float = 0.9
    seed_max: int = 5
    seed_radius: float = 1.0 / 3.0
    seed_weight: float = 1.0
    max_failures: int = 3
    finetune_every: int = 0
    query_measure: str = "best_score"

    def validate(self) -> None:
        super().validate()
        if self.query_measure not in ASPL_QUERIES:
            raise ValueError(f"unknown ASPL query_measure {self.query_measure!r}; valid choices: "
                             f"{', '.join(ASPL_QUERIES)}")
        Pace(self.lambda_start, self.lambda_step, self.lambda_max)
        if self.seed_max < 0 or self.seed_radius < 0 or not 0 < self.seed_weight <= 1:
            raise ValueError(f"need seed_max >= 0, seed_radius >= 0, 0 < seed_weight <= 1; got "
                             f"{self.seed_max!r}, {self.seed_radius!r}, {self.seed_weight!r}")
        if self.max_failures < 0 or self.finetune_every < 0:
            raise ValueError(f"max_failures and finetune_every must be >= 0, got "
                             f"{self.max_failures!r}, {self.finetune_every!r}")

    @property
    def pace(self) -> Pace:
        return Pace(self.lambda_start, self.lambda_step, self.lambda_max)


@dataclass
class CEALSettings(EngineSettings):
    """CEAL settings (Wang et al. 2016).

    ``criterion``: uncertainty measure of the queries (entropy, least_confidence
    or margin). Pseudo-labels: faces whose class-probability entropy is below
    ``delta_t = delta0 - decay_rate * t (t + 1) / 2`` get their argmax label for
    one round. Probabilities are ``softmax(scores / temperature)`` of the same
    SVM scores every method uses: CEAL's delta was set for a trained CNN's
    (peaked) softmax; a logistic regression on our embeddings never gets within
    0.005 nats over 62 people, so with it CEAL would never pseudo-label.
    """

    criterion: str = "entropy"
    delta0: float = 0.005
    decay_rate: float = 0.00033
    temperature: float = 0.1

    def validate(self) -> None:
        super().validate()
        if self.criterion not in CEAL_CRITERIA:
            raise ValueError(f"unknown CEAL criterion {self.criterion!r}; valid choices: {', '.join(CEAL_CRITERIA)}")
        if self.delta0 < 0 or self.decay_rate < 0 or self.temperature <= 0:
            raise ValueError(f"need delta0 >= 0, decay_rate >= 0, temperature > 0; got "
                             f"{self.delta0!r}, {self.decay_rate!r}, {self.temperature!r}")


#: Version of :meth:`Engine.state_dict`'s layout.
STATE_VERSION = 1


def _empty() -> np.ndarray:
    return np.zeros(0, dtype=np.int64)


def _take(a: np.ndarray, src: np.ndarray, fill: Any) -> np.ndarray:
    """``a[src]`` with ``fill`` where ``src`` is -1 or past the end of ``a``."""
    out = np.full(src.shape[0], fill, dtype=a.dtype)
    ok = (src >= 0) & (src < a.shape[0])
    out[ok] = a[src[ok]]
    return out


def _jsonable(obj: Any) -> Any:
    """Nested dicts/lists of numpy scalars -> plain Python (for JSON)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


@dataclass
class RoundResult:
    """What one round decided.

    ``model`` was trained on ``train_labels`` / ``train_weights`` (person id or
    -1 per row; ``train_source`` says human, pseudo or seed). ``queries`` are
    the rows to ask, most useful first. ``pseudo_labels`` / ``pseudo_weights``
    are the automatic labels decided this round (used to train the next
    round). ``unclear``: faces no person accepted; ``ambiguous``: faces several
    accepted; ``flagged``: human labels newly flagged for review; ``set_aside``:
    all flagged human labels (kept out of training); ``seeds``: rows seeded for
    new people this round, by person; ``lambdas``: each person's pace this
    round; ``finetune_due``: fine-tune the backbone and re-embed now.
    """

    round: int
    model: OneVsAllSVM
    queries: np.ndarray
    pseudo_labels: np.ndarray
    pseudo_weights: np.ndarray
    train_labels: np.ndarray
    train_weights: np.ndarray
    train_source: np.ndarray
    unclear: np.ndarray = field(default_factory=_empty)
    ambiguous: np.ndarray = field(default_factory=_empty)
    flagged: np.ndarray = field(default_factory=_empty)
    set_aside: np.ndarray = field(default_factory=_empty)
    seeds: dict[int, np.ndarray] = field(default_factory=dict)
    lambdas: dict[int, float] = field(default_factory=dict)
    finetune_due: bool = False

    @property
    def n_pseudo_used(self) -> int:
        """Automatic (pseudo or seed) labels the model was trained with."""
        return int(np.sum(self.train_source >= SOURCE_PSEUDO))

    def targets(self) -> tuple[np.ndarray, np.ndarray]:
        """Labels and weights for fine-tuning: human and seed labels plus this round's pseudo-labels."""
        keep = (self.train_source == SOURCE_HUMAN) | (self.train_source == SOURCE_SEED)
        y = np.where(keep, self.train_labels, self.pseudo_labels)
        w = np.where(keep, self.train_weights, self.pseudo_weights)
        return y.astype(np.int64), np.where(y >= 0, w, 0.0)


class Engine:
    """Base class: validation, the classifier and per-row state; subclasses implement :meth:`step`."""

    name: ClassVar[str] = "base"
    settings_class: ClassVar[type[EngineSettings]] = EngineSettings

    def __init__(self, settings: EngineSettings | None = None, **overrides: Any):
        s = settings if settings is not None else self.settings_class()
        if not isinstance(s, self.settings_class):
            raise TypeError(f"{type(self).__name__} needs {self.settings_class.__name__}, got {type(s).__name__}")
        valid = {f.name for f in dataclasses.fields(s)}
        bad = sorted(set(overrides) - valid)
        if bad:
            raise TypeError(f"unknown setting(s) {', '.join(bad)} for {self.name}; valid: {', '.join(sorted(valid))}")
        self.settings = dataclasses.replace(s, **overrides)
        self.settings.validate()
        self.round_ = 0
        self.rng_ = np.random.default_rng(self.settings.random_state)
        self.pseudo_labels_ = np.full(0, UNLABELLED, dtype=np.int64)
        self.pseudo_weights_ = np.zeros(0)

    # -- helpers -------------------------------------------------------------
    def _check(self, X: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        X = np.asarray(X, dtype=np.float32)
        labels = np.asarray(labels).reshape(-1)
        if X.ndim != 2:
            raise ValueError(f"X must be a 2-D (faces x dims) matrix, got shape {X.shape}")
        if labels.shape[0] != X.shape[0]:
            raise ValueError(f"X has {X.shape[0]} rows but labels has {labels.shape[0]}")
        if labels.size and not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels must be integer person ids (-1 = unlabelled), got dtype {labels.dtype}")
        labels = labels.astype(np.int64)
        if labels.size and labels.min() < UNLABELLED:
            raise ValueError(f"labels must be >= -1 (-1 = unlabelled), got {int(labels.min())}")
        if X.shape[0] < self.pseudo_labels_.shape[0]:
            raise ValueError(f"rows may be appended but not removed: had {self.pseudo_labels_.shape[0]}, "
                             f"got {X.shape[0]}")
        pad = X.shape[0] - self.pseudo_labels_.shape[0]
        if pad:
            self.pseudo_labels_ = np.concatenate([self.pseudo_labels_, np.full(pad, UNLABELLED, dtype=np.int64)])
            self.pseudo_weights_ = np.concatenate([self.pseudo_weights_, np.zeros(pad)])
        return X, labels

    def _classifier(self) -> OneVsAllSVM:
        s = self.settings
        return OneVsAllSVM(C=s.C, positive_weight=s.positive_weight, min_labels=s.min_labels,
                           random_state=s.random_state)

    def _fit(self, X: np.ndarray, y: np.ndarray, w: np.ndarray) -> OneVsAllSVM:
        rows = np.flatnonzero((y >= 0) & (w > 0))
        return self._classifier().fit(X[rows], y[rows], w[rows])

    def step(self, X: np.ndarray, labels: np.ndarray) -> RoundResult:
        """Run one round on embeddings ``X`` with human ``labels`` (-1 = unlabelled)."""
        raise NotImplementedError

    def confirm(self, rows: np.ndarray) -> None:
        """The annotator confirmed flagged human labels (engines without re-certification ignore it)."""

    def forbid(self, rows: np.ndarray, persons: np.ndarray) -> None:
        """Face ``rows[i]`` is not person ``persons[i]``: drop such pseudo-labels from the next round's training."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        persons = np.asarray(persons, dtype=np.int64).reshape(-1)
        ok = rows < self.pseudo_labels_.shape[0]
        rows, persons = rows[ok], persons[ok]
        hit = rows[self.pseudo_labels_[rows] == persons]
        self.pseudo_labels_[hit] = UNLABELLED
        self.pseudo_weights_[hit] = 0.0

    # -- state as data -------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The engine's state as plain data: JSON-able scalars and numpy arrays indexed by row.

        No objects, nothing that runs code when loaded (see :meth:`load_state_dict`).
        """
        return {"version": STATE_VERSION, "method": self.name, "settings": self.settings.as_dict(),
                "round": int(self.round_), "rng": _jsonable(self.rng_.bit_generator.state),
                "pseudo_labels": self.pseudo_labels_.astype(np.int64),
                "pseudo_weights": self.pseudo_weights_.astype(np.float64)}

    def load_state_dict(self, state: dict[str, Any]) -> "Engine":
        """Restore :meth:`state_dict` output (rows as they were then); returns ``self``.

        A state of another method, version or settings is a ValueError naming the difference.
        """
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"engine state version {state.get('version')!r} is not {STATE_VERSION}")
        if state.get("method") != self.name:
            raise ValueError(f"engine state is for method {state.get('method')!r}, not {self.name!r}")
        if state.get("settings") != self.settings.as_dict():
            raise ValueError("engine state was saved with other settings")
        self.round_ = int(state["round"])
        self.rng_.bit_generator.state = state["rng"]
        self.pseudo_labels_ = np.asarray(state["pseudo_labels"], dtype=np.int64).copy()
        self.pseudo_weights_ = np.asarray(state["pseudo_weights"], dtype=np.float64).copy()
        return self

    def remap_rows(self, src: np.ndarray) -> None:
        """Re-index per-row state: new row ``i`` takes old row ``src[i]`` (``-1``: a face new to the engine).

        Rows may be dropped, appended or reordered this way (faces keyed by id in
        :class:`~aspl.engine.loop.ActiveLoop`).
        """
        src = np.asarray(src, dtype=np.int64).reshape(-1)
        self.pseudo_labels_ = _take(self.pseudo_labels_, src, UNLABELLED)
        self.pseudo_weights_ = _take(self.pseudo_weights_, src, 0.0)


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
    #: Neighbour search ``(Q, C, k) -> (indices, distances)`` used to seed new people (exact numpy by
    #: default; assign a FAISS-backed function of the same signature on an instance to swap it).
    neighbours = staticmethod(nearest_rows)

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
            q_rows = [np.flatnonzero(active_human & (labels == p)) for p in need]
            Q = np.concatenate(q_rows)
            radii = s.seed_radius * mean_distances(X[Q], X)
            idx, dist = self.neighbours(X[Q], X[cand], 2 * s.seed_max)
            start = 0
            for p, rows in zip(need, q_rows):
                block = slice(start, start + rows.size)
                start += rows.size
                room = s.seed_max - sum(1 for q, _ in self.seeds_.values() if q == p)
                if room <= 0:
                    continue
                found: dict[int, float] = {}
                for ii, dd, rad in zip(idx[block], dist[block], radii[block]):
                    hits = [(i, d) for i, d in zip(cand[ii].tolist(), dd.tolist()) if d <= rad and unclear[i]]
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

    def _query(self, S: np.ndarray) -> np.ndarray:
        """Rows of ``S`` (unlabelled faces' scores) to ask, by ``query_measure``."""
        k = self.settings.query_size
        if self.settings.query_measure == "score_margin" and S.shape[1] >= 2:
            return select_lowest(score_margin(S), k, self.rng_)
        return select_lowest(best_score(S), k, self.rng_)

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
        S = model.decision_function(X)
        classes = model.classes_
        lam = np.array([self.lambdas_.setdefault(int(p), self.pace_.start) for p in classes])

        rows = np.flatnonzero(active_human)
        passed = uniquely_predicted(S[rows], model.column_of(labels[rows]))
        flagged = self.recert_.update(rows, passed)
        if flagged.size:
            log.debug("round %d: %d human label(s) flagged for review", self.round_, flagged.size)

        cand = np.flatnonzero(~human)
        sp = self_paced_labels(S[cand], lam)
        pl = np.full(n, UNLABELLED, dtype=np.int64)
        pw = np.zeros(n)
        acc = cand[sp.accepted]
        pl[acc] = classes[sp.labels[sp.accepted]]
        pw[acc] = sp.weights[sp.accepted]
        unclear = cand[sp.unclear]
        self.unclear_ = np.zeros(n, dtype=bool)
        self.unclear_[unclear] = True

        queries = cand[self._query(S[cand])]

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
        P = softmax(model.decision_function(X[cand]), s.temperature)
        if s.criterion == "margin":
            q = select_lowest(margin(P), s.query_size, self.rng_)
        else:
            measure = entropy(P) if s.criterion == "entropy" else least_confidence(P)
            q = select_highest(measure, s.query_size, self.rng_)
        queries = cand[q]
        cols = ceal_pseudo_labels(P, ceal_threshold(self.round_, s.delta0, s.decay_rate))
        if P.shape[1] < 2:
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


#: Method names accepted by :func:`make_engine` and the simulation.
METHODS: dict[str, type[Engine]] = {
    "aspl": ASPLEngine,
    "ceal": CEALEngine,
    "random": RandomEngine,
    "all": AllEngine,
    "spl": SPLEngine,
}

#: Named variants: a method with fixed settings.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "aspl-margin": ("aspl", {"query_measure": "score_margin"}),
}

#: Every name :func:`make_engine` accepts.
METHOD_NAMES: tuple[str, ...] = tuple(METHODS) + tuple(VARIANTS)


def make_engine(method: str, **settings: Any) -> Engine:
    """Build the engine for ``method`` (aspl, ceal, random, all, spl, aspl-margin) with settings overrides.

    Settings that exist for some other method are ignored with a debug log, so
    one settings dict can drive every method of a comparison; unknown names raise.
    """
    if method in VARIANTS:
        method, fixed = VARIANTS[method]
        settings = {**settings, **fixed}
    try:
        cls = METHODS[method]
    except KeyError:
        raise ValueError(f"unknown method {method!r}; valid choices: {', '.join(METHOD_NAMES)}") from None
    known = {f.name for c in METHODS.values() for f in dataclasses.fields(c.settings_class)}
    bad = sorted(set(settings) - known)
    if bad:
        raise ValueError(f"unknown setting(s) {', '.join(bad)}; valid: {', '.join(sorted(known))}")
    valid = {f.name for f in dataclasses.fields(cls.settings_class)}
    unused = sorted(set(settings) - valid)
    if unused:
        log.debug("%s ignores settings %s", method, ", ".join(unused))
    return cls(**{k: v for k, v in settings.items() if k in valid})
