"""The one learning loop that both the app and the simulation drive (think modAL's ``ActiveLearner``).

:class:`ActiveLoop` keys everything by **face id**, not by row: faces may be
added, dropped (e.g. marked "not a face") or reordered between rounds and keep
their state. It owns

* preprocessing: one decision about centring (``center``), with the mean stored
  in the state and applied to every face it scores;
* the engine step (:func:`~aspl.engine.engines.make_engine`), with faces that
  must never get a given person (rejections) kept out of pseudo-labels and seeds;
* when to fine-tune (``finetune_due``) and on what (:meth:`finetune_targets`):
  the caller runs the fine-tuning (a background job in the app, a function in
  the simulation) and passes the new embeddings to the next :meth:`step`;
* the query order (most useful first).

Its whole state is plain data (:meth:`state_dict`: JSON-able scalars and numpy
arrays, no pickle), so a library stores it safely and a crafted file can at
worst be refused.

>>> loop = ActiveLoop("aspl-margin", {"query_size": 20, "min_labels": 1})
>>> r = loop.step(face_ids, X, labels)         # labels: person id or -1, per face
>>> ask = r.queries                            # face ids, most useful first
>>> state = loop.state_dict(); again = ActiveLoop.from_state_dict(state)
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from .base import CLASSIFIERS
from .classifier import OneVsAllSVM
from .engines import STATE_VERSION, Engine, RoundResult, make_engine
from .preprocess import center_embeddings
from .selection import UNLABELLED

__all__ = ["LOOP_STATE_VERSION", "ActiveLoop", "LoopRound", "StateError"]

log = logging.getLogger(__name__)

#: Version of :meth:`ActiveLoop.state_dict`'s layout.
LOOP_STATE_VERSION = 1

#: ``model.class`` of a stored state -> the class rebuilt (a state without it: liblinear).
MODEL_CLASSES: dict[str, type[OneVsAllSVM]] = {c.__name__: c for c in CLASSIFIERS.values()}


def _rows_of(face_ids: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Row of each of ``wanted`` in ``face_ids`` (unique), -1 where absent (sorted search, no dict)."""
    rows = np.full(wanted.size, -1, dtype=np.int64)
    if face_ids.size:
        order = np.argsort(face_ids, kind="stable")
        pos = np.minimum(np.searchsorted(face_ids[order], wanted), face_ids.size - 1)
        found = face_ids[order][pos] == wanted
        rows[found] = order[pos[found]]
    return rows


class StateError(ValueError):
    """A stored loop state that cannot be used (other version, method or settings; malformed)."""


@dataclass
class LoopRound:
    """One round's decisions, by face id (``result`` holds the same by row of ``face_ids``)."""

    face_ids: np.ndarray
    result: RoundResult

    def _ids(self, rows: np.ndarray) -> np.ndarray:
        return self.face_ids[np.asarray(rows, dtype=np.int64)]

    @property
    def round(self) -> int:
        return self.result.round

    @property
    def model(self) -> OneVsAllSVM:
        return self.result.model

    @property
    def queries(self) -> np.ndarray:
        """Face ids to ask the annotator, most useful first."""
        return self._ids(self.result.queries)

    @property
    def auto_labels(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(face_ids, person_ids, weights)`` of the pseudo-labels decided this round."""
        rows = np.flatnonzero(self.result.pseudo_labels >= 0)
        return self._ids(rows), self.result.pseudo_labels[rows], self.result.pseudo_weights[rows]

    @property
    def unclear(self) -> np.ndarray:
        return self._ids(self.result.unclear)

    @property
    def ambiguous(self) -> np.ndarray:
        return self._ids(self.result.ambiguous)

    @property
    def flagged(self) -> np.ndarray:
        """Face ids of human labels newly flagged this round."""
        return self._ids(self.result.flagged)

    @property
    def set_aside(self) -> np.ndarray:
        """Face ids of every flagged human label (kept out of training until confirmed or corrected)."""
        return self._ids(self.result.set_aside)

    @property
    def seeds(self) -> dict[int, np.ndarray]:
        return {p: self._ids(r) for p, r in self.result.seeds.items()}

    @property
    def finetune_due(self) -> bool:
        return self.result.finetune_due


class ActiveLoop:
    """Preprocessing + engine + fine-tuning schedule + query order over faces keyed by id.

    Parameters
    ----------
    method : an engine name (:data:`~aspl.engine.engines.METHOD_NAMES`).
    settings : overrides of that method's settings (``query_size``, ``min_labels``,
        ``finetune_every``, ...).
    center : subtract the mean embedding and re-normalise before classifying.

    Learned state: ``engine_``, ``face_ids_`` (rows of the engine's state),
    ``mean_`` (the centring mean, or None), ``model_`` (the last round's classifiers).
    """

    def __init__(self, method: str = "aspl-margin", settings: dict[str, Any] | None = None, center: bool = False):
        self.method = method
        self.settings = dict(settings or {})
        self.center = bool(center)
        self.engine_: Engine = make_engine(method, **self.settings)
        self.face_ids_ = np.zeros(0, dtype=np.int64)
        self.mean_: np.ndarray | None = None
        self.model_: OneVsAllSVM | None = None
        self.last_: LoopRound | None = None

    # ------------------------------------------------------------ helpers
    def _align(self, face_ids: np.ndarray) -> None:
        """Re-index the engine's per-row state from ``face_ids_`` to ``face_ids``."""
        old = self.face_ids_
        if np.array_equal(face_ids, old):
            return
        self.engine_.remap_rows(_rows_of(old, face_ids))
        self.face_ids_ = face_ids.copy()

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Embeddings as the classifiers see them (centred with the stored mean when ``center``)."""
        X = np.asarray(X, dtype=np.float32)
        return center_embeddings(X, self.mean_) if self.center and self.mean_ is not None else X

    # ---------------------------------------------------------------- API
    def step(self, face_ids: np.ndarray, X: np.ndarray, labels: np.ndarray,
             forbidden: Iterable[tuple[int, int]] = ()) -> LoopRound:
        """One round over faces ``face_ids`` (unique ints) with embeddings ``X`` and human ``labels``
        (person id, -1 = unlabelled). ``forbidden``: ``(face_id, person_id)`` pairs a person rejected:
        never a pseudo-label or seed. Returns the round's decisions by face id."""
        face_ids = np.asarray(face_ids, dtype=np.int64).reshape(-1)
        X = np.asarray(X, dtype=np.float32)
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        if X.ndim != 2 or X.shape[0] != face_ids.size or labels.size != face_ids.size:
            raise ValueError(f"need one embedding row and one label per face id: {face_ids.size} ids, "
                             f"X {X.shape}, {labels.size} labels")
        if np.unique(face_ids).size != face_ids.size:
            raise ValueError("face ids must be unique")
        self._align(face_ids)
        if self.center and X.shape[0]:
            self.mean_ = X.mean(0)
        Z = self.transform(X)
        result = self.engine_.step(Z, labels)
        pairs = np.array([(int(f), int(p)) for f, p in forbidden], dtype=np.int64).reshape(-1, 2)
        if pairs.size:
            rows = _rows_of(face_ids, pairs[:, 0])
            persons = pairs[:, 1]
            keep = rows >= 0
            rows, persons = rows[keep], persons[keep]
            self.engine_.forbid(rows, persons)
            hit = rows[result.pseudo_labels[rows] == persons]
            result.pseudo_labels[hit] = UNLABELLED
            result.pseudo_weights[hit] = 0.0
        self.model_ = result.model
        self.last_ = LoopRound(face_ids.copy(), result)
        return self.last_

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Scores ``(faces x people)`` of the last round's classifiers (columns: ``classes_``)."""
        if self.model_ is None:
            raise ValueError("the loop has not run a round yet")
        return self.model_.decision_function(self.transform(X))

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Person id per face by the last round's classifiers (-1 while no person has one)."""
        if self.model_ is None:
            raise ValueError("the loop has not run a round yet")
        return self.model_.predict(self.transform(X))

    @property
    def n_features_in_(self) -> int:
        """Embedding size the last round's classifiers were fitted on (0 before any round)."""
        return 0 if self.model_ is None else int(self.model_.n_features_in_)

    @property
    def classes_(self) -> np.ndarray:
        return np.zeros(0, np.int64) if self.model_ is None else self.model_.classes_

    def confirm(self, face_ids: Iterable[int]) -> None:
        """The annotator confirmed these flagged human labels (never flagged again)."""
        row_of = {int(f): i for i, f in enumerate(self.face_ids_)}
        self.engine_.confirm(np.array([row_of[int(f)] for f in face_ids if int(f) in row_of], dtype=np.int64))

    def finetune_targets(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(face_ids, person_ids, weights)`` to fine-tune the backbone on after the last round:
        human and seed labels, plus that round's pseudo-labels with their self-paced weights."""
        if self.last_ is None:
            raise ValueError("the loop has not run a round yet")
        y, w = self.last_.result.targets()
        rows = np.flatnonzero((y >= 0) & (w > 0))
        return self.last_.face_ids[rows], y[rows], w[rows]

    def refit(self, face_ids: np.ndarray, X: np.ndarray) -> OneVsAllSVM:
        """After fine-tuning: refit the last round's classifiers on new embeddings ``X`` of ``face_ids``,
        on the same targets (:meth:`finetune_targets`), without advancing the round or the pace."""
        fids, y, w = self.finetune_targets()
        face_ids = np.asarray(face_ids, dtype=np.int64).reshape(-1)
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[0] != face_ids.size:
            raise ValueError(f"need one embedding row per face id: {face_ids.size} ids, X {X.shape}")
        row_of = {int(f): i for i, f in enumerate(face_ids)}
        keep = np.array([int(f) in row_of for f in fids], dtype=bool)
        rows = np.array([row_of[int(f)] for f in fids[keep]], dtype=np.int64)
        if self.center and X.shape[0]:
            self.mean_ = X.mean(0)
        Z = self.transform(X)
        self.model_ = self.model_.__class__(**self.model_.get_params()).fit(Z[rows], y[keep], w[keep])
        self.engine_.last_model_ = self.model_
        if self.last_ is not None:
            self.last_.result.model = self.model_
        return self.model_

    # ------------------------------------------------------- state as data
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue, as JSON-able scalars and numpy arrays (no objects)."""
        eng = self.engine_.state_dict()
        st: dict[str, Any] = {"loop_version": LOOP_STATE_VERSION, "loop_method": self.method,
                              "loop_settings": self.settings, "center": self.center,
                              "face_ids": self.face_ids_.copy(),
                              "mean": self.mean_ if self.mean_ is not None else np.zeros(0, np.float32),
                              "has_model": self.model_ is not None}
        st.update({f"engine.{k}": v for k, v in eng.items()})
        if self.model_ is not None:
            m = self.model_
            st.update({"model.class": type(m).__name__, "model.classes": m.classes_, "model.coef": m.coef_,
                       "model.intercept": m.intercept_,
                       "model.params": {k: v for k, v in m.get_params().items()}})
        return st

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> "ActiveLoop":
        """Rebuild a loop from :meth:`state_dict` output; :class:`StateError` when it cannot be used."""
        try:
            if state.get("loop_version") != LOOP_STATE_VERSION or state.get("engine.version") != STATE_VERSION:
                raise StateError(f"loop state version {state.get('loop_version')!r} / engine "
                                 f"{state.get('engine.version')!r}; this aspl reads {LOOP_STATE_VERSION} / "
                                 f"{STATE_VERSION}")
            loop = cls(str(state["loop_method"]), dict(state["loop_settings"]), bool(state["center"]))
            loop.engine_.load_state_dict({k[len("engine."):]: v for k, v in state.items()
                                          if k.startswith("engine.")})
            loop.face_ids_ = np.asarray(state["face_ids"], dtype=np.int64).copy()
            mean = np.asarray(state["mean"], dtype=np.float32)
            loop.mean_ = mean.copy() if mean.size else None
            if state["has_model"]:
                name = str(state.get("model.class", OneVsAllSVM.__name__))
                if name not in MODEL_CLASSES:
                    raise StateError(f"unknown model class {name!r} in the loop state; this aspl reads "
                                     f"{', '.join(MODEL_CLASSES)}")
                m = MODEL_CLASSES[name](**dict(state["model.params"]))
                m.classes_ = np.asarray(state["model.classes"], dtype=np.int64).copy()
                coef = np.asarray(state["model.coef"], dtype=np.float64)  # (people, d); (0, d) before 2 labels
                m.coef_ = (coef if coef.ndim == 2 else coef.reshape(m.classes_.size, -1)).copy()
                m.intercept_ = np.asarray(state["model.intercept"], dtype=np.float64).copy()
                m.n_features_in_ = m.coef_.shape[1]
                loop.model_ = m
                loop.engine_.last_model_ = m
        except StateError:
            raise
        except (KeyError, TypeError, ValueError) as e:
            raise StateError(f"malformed loop state: {e}") from e
        return loop

    def matches(self, method: str, settings: dict[str, Any], center: bool) -> bool:
        """Whether this loop runs ``method`` with ``settings`` and ``center`` (else start a fresh one)."""
        return self.method == method and self.settings == dict(settings) and self.center == bool(center)

