"""One-vs-all linear SVMs: min_labels, sample weights, positive weight, sklearn conventions.

Every behaviour is checked for both implementations: ``OneVsAllSVM`` (liblinear) and
``BatchedOneVsAll`` (tests/test_engine_batched.py checks that they agree)."""
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from aspl.engine.batched import BatchedOneVsAll
from aspl.engine.classifier import DEFAULT_C, OneVsAllSVM


@pytest.fixture(params=[OneVsAllSVM, BatchedOneVsAll], ids=["liblinear", "batched"])
def Model(request):
    return request.param


def _data(seed=0, per=8, people=3, dims=6, spread=0.15):
    rng = np.random.default_rng(seed)
    X = np.concatenate([np.eye(dims)[p] + spread * rng.standard_normal((per, dims)) for p in range(people)])
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X, np.repeat(np.arange(people), per)


def test_fit_returns_self_and_follows_sklearn_conventions(Model):
    X, y = _data()
    m = Model(C=1.0, min_labels=2, random_state=0)
    assert m.fit(X, y) is m
    assert m.classes_.tolist() == [0, 1, 2] and m.coef_.shape == (3, 6) and m.n_features_in_ == 6
    assert clone(m).get_params()["min_labels"] == 2
    assert m.score(X, y) == 1.0
    assert m.decision_function(X).shape == (24, 3)


def test_a_person_gets_a_classifier_only_with_min_labels(Model):
    X, y = _data()
    keep = np.r_[0:8, 8:11, 16:24]  # person 1 has only 3 faces
    m = Model(min_labels=4).fit(X[keep], y[keep])
    assert m.classes_.tolist() == [0, 2]
    m = Model(min_labels=3).fit(X[keep], y[keep])
    assert m.classes_.tolist() == [0, 1, 2]
    assert m.column_of(np.array([2, 1, 7])).tolist() == [2, 1, -1]


def test_faces_of_weight_zero_are_ignored_and_do_not_count(Model):
    X, y = _data()
    w = np.ones(len(y))
    w[8:16] = 0.0
    a = Model(min_labels=1, random_state=0).fit(X, y, w)
    b = Model(min_labels=1, random_state=0).fit(X[w > 0], y[w > 0])
    assert a.classes_.tolist() == [0, 2]
    np.testing.assert_allclose(a.coef_, b.coef_, atol=1e-6)


def test_sample_weights_change_the_model(Model):
    X, y = _data(spread=0.4)
    y2 = y.copy()
    y2[[0, 1, 2]] = 1  # three faces of person 0 labelled 1
    w = np.ones(len(y))
    lo = w.copy()
    lo[[0, 1, 2]] = 0.05
    s_hi = Model(min_labels=1).fit(X, y2, w).decision_function(X[[0, 1, 2]])[:, 1]
    s_lo = Model(min_labels=1).fit(X, y2, lo).decision_function(X[[0, 1, 2]])[:, 1]
    assert np.all(s_hi > s_lo)


def test_positive_weight_raises_the_scores_of_a_persons_faces(Model):
    X, y = _data(spread=0.5, per=10)
    one = Model(C=1.0, positive_weight=1.0, min_labels=1).fit(X, y).decision_function(X)
    five = Model(C=1.0, positive_weight=5.0, min_labels=1).fit(X, y).decision_function(X)
    own = np.arange(len(y)), y
    assert five[own].mean() > one[own].mean()


def test_label_minus_one_is_a_negative_for_everyone(Model):
    X, y = _data()
    stranger = np.ones((4, 6)) / np.sqrt(6) + 0.01
    Xs = np.concatenate([X, stranger])
    base = Model(min_labels=1).fit(X, y).decision_function(stranger).max()
    with_neg = Model(min_labels=1).fit(Xs, np.r_[y, [-1] * 4]).decision_function(stranger).max()
    assert with_neg < base and with_neg < 0


def test_no_people_yet_predicts_minus_one(Model):
    X, y = _data()
    m = Model(min_labels=100).fit(X, y)
    assert m.decision_function(X).shape == (24, 0)
    assert np.all(m.predict(X) == -1)


def test_a_single_person_without_negatives_gets_no_classifier(Model):
    X, y = _data()
    m = Model(min_labels=1).fit(X[:8], y[:8])
    assert m.classes_.size == 0


def test_default_C_puts_labelled_faces_near_the_margin_where_C_0001_does_not(Model):
    X, y = _data(people=5, per=1, dims=8, spread=0.3)  # one label per person, unit-norm features
    strong = Model(C=DEFAULT_C, min_labels=1).fit(X, y).decision_function(X)
    weak = Model(C=0.001, min_labels=1).fit(X, y).decision_function(X)
    own = np.arange(5), y
    assert strong[own].min() > 0.8  # the self-paced threshold 1 - 0.12 is within reach
    assert np.abs(weak).max() < 0.1  # every score near 0: even lambda 0.9 (s > 0.1) accepts nothing


def test_bad_inputs_name_the_problem(Model):
    X, y = _data()
    with pytest.raises(ValueError, match="C must be > 0"):
        Model(C=0).fit(X, y)
    with pytest.raises(ValueError, match="valid choices: squared_hinge, hinge"):
        Model(loss="log").fit(X, y)
    with pytest.raises(ValueError, match="integer person ids"):
        Model().fit(X, y.astype(float))
    with pytest.raises(ValueError, match="min_labels"):
        Model(min_labels=0).fit(X, y)
    with pytest.raises(ValueError, match="sample_weight"):
        Model().fit(X, y, -np.ones(len(y)))
    m = Model(min_labels=1).fit(X, y)
    with pytest.raises(ValueError, match="6"):
        m.decision_function(X[:, :4])
    with pytest.raises(NotFittedError):
        Model().decision_function(X)
