"""One-vs-all linear SVMs per person on face embeddings (scikit-learn conventions).

The released ASPL code trains liblinear L2-loss (squared hinge) SVMs with
``C = 0.001`` and positive class weight 5 on raw CNN features. The hinge terms
scale with ``C * |x|^2``: raw fc features have norms of tens, our embeddings
are unit vectors, so ``C = 0.001`` here would leave every weight vector near
zero and every score near the bias (no face would ever reach the self-paced
threshold ``s > 1 - lambda``). ``C = 10`` (default, see
:data:`DEFAULT_C`) puts labelled faces near the margin ``|s| = 1`` so that the
released pace settings (lambda from 0.12 to 0.9) keep their meaning.
"""
from __future__ import annotations

import logging
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.svm import LinearSVC
from sklearn.utils.validation import check_array, check_is_fitted

from .selection import UNLABELLED

__all__ = ["DEFAULT_C", "OneVsAllSVM"]

log = logging.getLogger(__name__)

#: Default SVM cost for unit-norm embeddings (see the module docstring).
DEFAULT_C = 10.0

_LOSSES = ("squared_hinge", "hinge")


def check_fit_inputs(X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None,
                     dtype: type = np.float64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validated ``(X, y, w)`` of a one-vs-all fit, rows of weight 0 dropped (shared by both classifiers)."""
    X = check_array(X, dtype=dtype)
    y = np.asarray(y).reshape(-1)
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but y has {y.shape[0]} labels")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y must hold integer person ids (-1 = none of them), got dtype {y.dtype}")
    if np.any(y < UNLABELLED):
        raise ValueError(f"person ids must be >= 0 (or -1 for 'none of them'), got {int(y.min())}")
    w = np.ones(X.shape[0]) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64).reshape(-1)
    if w.shape[0] != X.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but sample_weight has {w.shape[0]}")
    if np.any(w < 0) or not np.all(np.isfinite(w)):
        raise ValueError("sample_weight must be finite and >= 0")
    keep = w > 0
    if keep.all():
        return X, y.astype(np.int64, copy=False), w
    return X[keep], y[keep].astype(np.int64, copy=False), w[keep]


class OneVsAllSVM(ClassifierMixin, BaseEstimator):
    """One linear SVM per person: that person's faces against everyone else's.

    Parameters
    ----------
    C : cost of the hinge terms (per-sample weights multiply it).
    positive_weight : extra cost factor of a person's own faces (released code: 5).
    min_labels : a person gets a classifier only with at least this many
        training faces of positive weight (released code: 4).
    loss : ``"squared_hinge"`` (liblinear L2-loss, as released) or ``"hinge"``.
    max_iter, tol : solver settings passed to :class:`sklearn.svm.LinearSVC`.
    random_state : seed of liblinear's dual coordinate descent.

    ``fit(X, y, sample_weight)``: ``y`` holds person ids (ints >= 0); the label
    -1 marks a face known to be none of the people (a negative for all).
    Learned state: ``classes_`` (people with a classifier, sorted), ``coef_``
    (people x dims), ``intercept_``, ``n_features_in_``.
    """

    def __init__(self, C: float = DEFAULT_C, positive_weight: float = 5.0, min_labels: int = 4,
                 loss: str = "squared_hinge", max_iter: int = 5000, tol: float = 1e-4,
                 random_state: int | None = None):
        self.C = C
        self.positive_weight = positive_weight
        self.min_labels = min_labels
        self.loss = loss
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state

    def _validate(self) -> None:
        if not self.C > 0:
            raise ValueError(f"C must be > 0, got {self.C!r}")
        if not self.positive_weight > 0:
            raise ValueError(f"positive_weight must be > 0, got {self.positive_weight!r}")
        if int(self.min_labels) != self.min_labels or self.min_labels < 1:
            raise ValueError(f"min_labels must be an integer >= 1, got {self.min_labels!r}")
        if self.loss not in _LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; valid choices: {', '.join(_LOSSES)}")

    def fit(self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None) -> "OneVsAllSVM":
        """Train one SVM per person with at least ``min_labels`` faces; return ``self``."""
        self._validate()
        X, y, w = check_fit_inputs(X, y, sample_weight, np.float64)
        self.n_features_in_ = X.shape[1]
        ids, counts = np.unique(y[y >= 0], return_counts=True)
        classes, coefs, biases = [], [], []
        for c in ids[counts >= self.min_labels]:
            yj = np.where(y == c, 1, -1)
            if np.all(yj == 1):
                log.info("person %d has no negative faces yet: no classifier", c)
                continue
            svm = LinearSVC(C=self.C, loss=self.loss, class_weight={1: self.positive_weight, -1: 1.0},
                            dual="auto" if self.loss == "squared_hinge" else True,
                            max_iter=self.max_iter, tol=self.tol, random_state=self.random_state)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                svm.fit(X, yj, sample_weight=w)
            classes.append(int(c))
            coefs.append(svm.coef_[0])
            biases.append(float(svm.intercept_[0]))
        self.classes_ = np.array(classes, dtype=np.int64)
        self.coef_ = np.array(coefs, dtype=np.float64).reshape(len(classes), X.shape[1])
        self.intercept_ = np.array(biases, dtype=np.float64)
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Scores ``(faces x people)``, columns in the order of ``classes_``."""
        check_is_fitted(self, "coef_")
        X = check_array(X, dtype=np.float64)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, the classifier was fit on {self.n_features_in_}")
        return X @ self.coef_.T + self.intercept_[None, :]

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Person id of the highest score; -1 for every face while no person has a classifier."""
        s = self.decision_function(X)
        if s.shape[1] == 0:
            return np.full(s.shape[0], UNLABELLED, dtype=np.int64)
        return self.classes_[s.argmax(axis=1)]

    def column_of(self, persons: np.ndarray) -> np.ndarray:
        """Column index of each person id in the score matrix, -1 for people without a classifier."""
        check_is_fitted(self, "coef_")
        persons = np.asarray(persons, dtype=np.int64).reshape(-1)
        pos = {int(c): i for i, c in enumerate(self.classes_)}
        return np.array([pos.get(int(p), -1) for p in persons], dtype=np.int64)
