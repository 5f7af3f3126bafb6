"""The engine interface: settings dataclasses, :class:`RoundResult` and the :class:`Engine` base
(state as data, fitting, checks). The strategies live in :mod:`.aspl_engine` and :mod:`.baselines`."""
from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from .batched import BatchedOneVsAll
from .classifier import DEFAULT_C, OneVsAllSVM
from .pace import Pace
from .selection import UNLABELLED

log = logging.getLogger(__name__)

#: Where a training label came from (``RoundResult.train_source``).
SOURCE_NONE, SOURCE_HUMAN, SOURCE_PSEUDO, SOURCE_SEED = 0, 1, 2, 3

CEAL_CRITERIA = ("entropy", "least_confidence", "margin")
ASPL_QUERIES = ("best_score", "score_margin")
#: ``EngineSettings.classifier``: the one-vs-all SVMs' implementation.
CLASSIFIERS: dict[str, type[OneVsAllSVM]] = {"liblinear": OneVsAllSVM, "batched": BatchedOneVsAll}
#: Settings added after states were first stored, with the value an older state implies.
SETTINGS_ADDED: dict[str, Any] = {"classifier": "liblinear"}
#: Most threads a round uses (the batched classifier's groups, the seeding search's blocks).
MAX_JOBS = 8


def engine_jobs() -> int:
    """Threads for a round's parallel parts: the CPUs this process may run on, at most :data:`MAX_JOBS`.

    The results never depend on it (each thread works on its own people or query rows).
    """
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    return max(1, min(MAX_JOBS, n))


@dataclass
class EngineSettings:
    """Settings shared by every strategy.

    ``C``, ``positive_weight``, ``min_labels``: the one-vs-all SVMs
    (:class:`~aspl.engine.classifier.OneVsAllSVM`; released code: C 0.001 on raw
    CNN features, see :data:`~aspl.engine.classifier.DEFAULT_C`, weight 5,
    4 labels). ``query_size``: faces asked per round (K). ``random_state``:
    seed of tie-breaks and random queries. ``classifier``: ``liblinear`` (one
    scikit-learn ``LinearSVC`` per person) or ``batched``
    (:class:`~aspl.engine.batched.BatchedOneVsAll`: the same SVMs trained
    together, for large libraries; warm-started from the previous round).
    """

    C: float = DEFAULT_C
    positive_weight: float = 5.0
    min_labels: int = 4
    query_size: int = 20
    random_state: int | None = 0
    classifier: str = "liblinear"

    def validate(self) -> None:
        if int(self.query_size) != self.query_size or self.query_size < 0:
            raise ValueError(f"query_size must be an integer >= 0, got {self.query_size!r}")
        if self.classifier not in CLASSIFIERS:
            raise ValueError(f"unknown classifier {self.classifier!r}; valid choices: {', '.join(CLASSIFIERS)}")
        OneVsAllSVM(C=self.C, positive_weight=self.positive_weight, min_labels=self.min_labels)._validate()

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class ASPLSettings(EngineSettings):
    """ASPL settings (defaults from the released code where it has them).

    Pace: ``lambda_start`` 0.12, ``lambda_step`` 0.08 per query round,
    ``lambda_max`` 0.9. New people: up to ``seed_max`` (5) faces of the unclear
    set within ``seed_radius`` (1/3) of the labelled face's average distance to
    all faces, trained with weight ``seed_weight``; at most ``seed_queries`` (3)
    labelled faces of a person are searched, spread over their rows (a first
    round of a large library can name 10 faces of each of thousands of new
    people at once; 3 of them give up to 30 candidates for 5 seeds).
    Re-certification: a human
    label failing more than ``max_failures`` (3) rounds is flagged and set
    aside. ``finetune_every``: every F rounds the result asks the caller to
    fine-tune the backbone and re-embed (0: never). ``query_measure``:
    ``best_score`` (the paper: lowest best score first) or ``score_margin``
    (smallest gap between a face's two highest scores first; not in the
    paper; method name ``aspl-margin``). ``support_similarity``: when set, a self-paced label of
    person p needs a human label of p whose centred, normalised embedding has at least this inner
    product with the face's (an open-set guard: faces of people nobody named are not given to a
    similar named person; None: off, as in the paper). ``support_quantile``: when set, the guard's
    threshold is raised, each round, to this quantile of the *nearest-impostor* similarity of the
    human-labelled faces (each one's highest similarity with a face named someone else;
    :func:`~aspl.engine.selection.impostor_similarity`): weak features, where different people lie
    close, get a stricter guard than the fixed ``support_similarity``, which stays the floor.
    ``separate_gap``: when set (with the guard), a self-paced label of p is also refused when two or
    more other faces given to p are this much more like the face than p's nearest named face is (a
    tight group of someone nobody named; :func:`~aspl.engine.selection.supported`).
    """

    lambda_start: float = 0.12
    lambda_step: float = 0.08
    lambda_max: float = 0.9
    seed_max: int = 5
    seed_radius: float = 1.0 / 3.0
    seed_weight: float = 1.0
    seed_queries: int = 3
    max_failures: int = 3
    finetune_every: int = 0
    query_measure: str = "best_score"
    support_similarity: float | None = None
    support_quantile: float | None = None
    separate_gap: float | None = None

    def validate(self) -> None:
        super().validate()
        if self.support_similarity is not None and not -1.0 <= self.support_similarity <= 1.0:
            raise ValueError(f"support_similarity must be None (off) or in [-1, 1], got {self.support_similarity!r}")
        if self.separate_gap is not None and not 0.0 <= self.separate_gap <= 2.0:
            raise ValueError(f"separate_gap must be None (off) or in [0, 2], got {self.separate_gap!r}")
        if self.support_quantile is not None and not 0.0 <= self.support_quantile <= 1.0:
            raise ValueError(f"support_quantile must be None (off) or in [0, 1], got {self.support_quantile!r}")
        if self.query_measure not in ASPL_QUERIES:
            raise ValueError(f"unknown ASPL query_measure {self.query_measure!r}; valid choices: "
                             f"{', '.join(ASPL_QUERIES)}")
        Pace(self.lambda_start, self.lambda_step, self.lambda_max)
        if self.seed_max < 0 or self.seed_radius < 0 or not 0 < self.seed_weight <= 1:
            raise ValueError(f"need seed_max >= 0, seed_radius >= 0, 0 < seed_weight <= 1; got "
                             f"{self.seed_max!r}, {self.seed_radius!r}, {self.seed_weight!r}")
        if self.seed_queries < 1:
            raise ValueError(f"seed_queries must be >= 1 (labelled faces searched per new person), got "
                             f"{self.seed_queries!r}")
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
    #: Decide from the full ``faces x people`` score matrix instead of row blocks of scores
    #: (:mod:`.summary`). Same decisions, bit for bit; kept as the reference the tests compare against.
    dense_scores: bool = False

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
        #: The last fitted classifiers (not part of the state): the batched classifier starts from them.
        self.last_model_: OneVsAllSVM | None = None

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
        # same result on any thread count and device (ASPL_TRAIN_DEVICE: numpy, cpu, cuda; default auto)
        extra = {"n_jobs": engine_jobs(), "device": os.environ.get("ASPL_TRAIN_DEVICE", "auto")} \
            if s.classifier == "batched" else {}
        return CLASSIFIERS[s.classifier](C=s.C, positive_weight=s.positive_weight, min_labels=s.min_labels,
                                         random_state=s.random_state, **extra)

    def _fit(self, X: np.ndarray, y: np.ndarray, w: np.ndarray) -> OneVsAllSVM:
        rows = np.flatnonzero((y >= 0) & (w > 0))
        model = self._classifier()
        if isinstance(model, BatchedOneVsAll):  # same optimum, reached faster from the last round's
            model.fit(X[rows], y[rows], w[rows], init=self.last_model_)
        else:
            model.fit(X[rows], y[rows], w[rows])
        self.last_model_ = model
        return model

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
        saved = state.get("settings")
        if isinstance(saved, dict):  # a state from before a setting existed had its default behaviour
            saved = {**SETTINGS_ADDED, **saved}
        if saved != self.settings.as_dict():
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
