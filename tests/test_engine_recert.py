"""Re-certification of human labels, and auto-label precision with a Wilson interval."""
import numpy as np
import pytest

from aspl.engine.engines import SOURCE_HUMAN, SOURCE_NONE, ASPLEngine
from aspl.engine.recert import (
    Recertifier,
    estimate_precision,
    sample_for_verification,
    uniquely_predicted,
    wilson_interval,
)


def test_uniquely_predicted_needs_the_own_score_to_be_the_only_positive_one():
    S = np.array([[0.8, -0.5], [0.8, 0.1], [-0.2, -0.5], [-0.9, 0.7], [0.3, 0.2], [0.4, 0.0]])
    own = np.array([0, 0, 0, 0, -1, 0])
    assert uniquely_predicted(S, own).tolist() == [True, False, False, False, True, True]


def test_a_label_is_flagged_after_more_than_max_failures():
    rc = Recertifier(max_failures=3)
    rows = np.array([4, 7])
    for _ in range(3):
        assert rc.update(rows, np.array([False, True])).size == 0
    assert rc.update(rows, np.array([False, True])).tolist() == [4]
    assert rc.set_aside().tolist() == [4]
    assert rc.update(rows, np.array([False, False])).size == 0  # already flagged: not flagged twice
    rc.confirm([4])
    assert rc.set_aside().size == 0
    for _ in range(10):
        assert rc.update(rows[:1], np.array([False])).size == 0  # a confirmed label is never flagged again
    rc.reset([4])
    for _ in range(3):
        rc.update(rows[:1], np.array([False]))
    assert rc.update(rows[:1], np.array([False])).tolist() == [4]


def _world(seed=0, per=10, people=3, dims=6):
    rng = np.random.default_rng(seed)
    X = np.concatenate([np.eye(dims)[p] + 0.1 * rng.standard_normal((per, dims)) for p in range(people)])
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X.astype(np.float32), np.repeat(np.arange(people), per)


def test_engine_flags_a_wrong_human_label_sets_it_aside_and_forgives_a_correction():
    X, y = _world()
    labels = np.full(len(y), -1)
    labels[np.r_[0:8, 10:18, 20:28]] = np.repeat([0, 1, 2], 8)
    wrong = 5
    labels[wrong] = 1  # a face of person 0 named as person 1
    eng = ASPLEngine(min_labels=2, query_size=0, max_failures=3)
    flagged_at = None
    for t in range(6):
        res = eng.step(X, labels)
        if wrong in res.flagged:
            flagged_at = t
            break
    assert flagged_at == 3  # failed rounds 0, 1, 2, 3: the fourth failure flags it
    assert np.all(y[res.flagged] == 0)  # the label and, at most, look-alike neighbours it misled
    res = eng.step(X, labels)
    assert wrong in res.set_aside
    assert np.all(res.train_source[res.set_aside] == SOURCE_NONE)  # kept out of training
    eng.confirm([r for r in res.set_aside if r != wrong])  # the annotator confirms the right ones ...
    labels[wrong] = 0  # ... and corrects the wrong one
    for _ in range(3):
        res = eng.step(X, labels)
        assert res.set_aside.size == 0 and res.train_source[wrong] == SOURCE_HUMAN


def test_confirmed_labels_return_to_training():
    X, y = _world()
    labels = np.full(len(y), -1)
    labels[[0, 1, 10, 11, 20, 21]] = [0, 0, 1, 1, 2, 2]
    X = np.concatenate([X, X[10:11]])  # a double of a labelled face of person 1 ...
    labels = np.r_[labels, 0]  # ... rightly named person 0
    hard = len(X) - 1
    eng = ASPLEngine(min_labels=2, query_size=0, max_failures=0)
    res = eng.step(X, labels)
    assert hard in res.flagged and res.set_aside.tolist() == res.flagged.tolist()
    eng.confirm(res.flagged)  # the annotator checks them: the labels are right
    for _ in range(3):
        res = eng.step(X, labels)
        assert res.set_aside.size == 0 and res.train_source[hard] == SOURCE_HUMAN


def test_wilson_interval_matches_reference_values():
    assert wilson_interval(8, 10) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    assert wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    lo90, hi90 = wilson_interval(8, 10, 0.90)
    assert 0.4902 < lo90 < 0.8 < hi90 < 0.9433
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(11, 10)
    with pytest.raises(ValueError, match="confidence"):
        wilson_interval(1, 2, confidence=1.5)


def test_precision_estimate_from_a_verified_random_sample():
    rng = np.random.default_rng(0)
    pseudo_rows = np.arange(100, 400)
    sample = sample_for_verification(pseudo_rows, 50, rng)
    assert len(set(sample.tolist())) == 50 and set(sample.tolist()) <= set(pseudo_rows.tolist())
    est = estimate_precision(np.r_[np.ones(49, bool), [False]])
    assert (est.correct, est.n) == (49, 50) and est.precision == pytest.approx(0.98)
    assert est.low < 0.98 < est.high and est.low == pytest.approx(wilson_interval(49, 50)[0])
    assert "98.0%" in str(est)
    assert sample_for_verification(pseudo_rows, 1000, rng).size == 300
