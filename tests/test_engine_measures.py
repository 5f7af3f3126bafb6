"""Measures (scores -> numbers) and query selection (numbers -> rows)."""
import math

import numpy as np
import pytest

from aspl.engine.measures import (
    best_score,
    entropy,
    hinge_loss,
    least_confidence,
    margin,
    score_margin,
    self_paced_easiness,
    softmax,
)
from aspl.engine.selection import select_highest, select_lowest, select_random


def test_hinge_loss_is_zero_beyond_the_margin():
    s = np.array([[1.5, 0.5, -1.0], [1.0, 0.0, 0.9]])
    np.testing.assert_allclose(hinge_loss(s), [[0.0, 0.5, 2.0], [0.0, 1.0, 0.1]])


def test_best_score_and_score_margin():
    s = np.array([[0.2, -1.0, 0.9], [-0.5, -0.4, -0.9]])
    np.testing.assert_allclose(best_score(s), [0.9, -0.4])
    np.testing.assert_allclose(score_margin(s), [0.7, 0.1])
    assert np.all(best_score(np.zeros((3, 0))) == -np.inf)
    assert np.all(score_margin(np.zeros((2, 1))) == np.inf)


def test_softmax_rows_sum_to_one_and_low_temperature_sharpens():
    s = np.array([[1.0, 0.0, -1.0]])
    p1, p01 = softmax(s), softmax(s, temperature=0.1)
    np.testing.assert_allclose(p1.sum(axis=1), 1.0)
    assert p01[0, 0] > p1[0, 0] > 1 / 3
    with pytest.raises(ValueError, match="temperature"):
        softmax(s, temperature=0)


def test_uncertainty_measures_on_hand_made_probabilities():
    P = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [1 / 3, 1 / 3, 1 / 3], [0.7, 0.2, 0.1]])
    np.testing.assert_allclose(least_confidence(P), [0.0, 0.5, 2 / 3, 0.3])
    np.testing.assert_allclose(margin(P), [1.0, 0.0, 0.0, 0.5])
    expected = [0.0, math.log(2), math.log(3), -(0.7 * math.log(0.7) + 0.2 * math.log(0.2) + 0.1 * math.log(0.1))]
    np.testing.assert_allclose(entropy(P), expected)


def test_self_paced_easiness_is_linear_in_the_loss():
    L = np.array([[0.0, 0.06, 0.12, 0.5]]).T.repeat(2, axis=1)
    e = self_paced_easiness(L, [0.12, 0.5])
    np.testing.assert_allclose(e[:, 0], [1.0, 0.5, 0.0, 1 - 0.5 / 0.12])
    np.testing.assert_allclose(e[:, 1], [1.0, 0.88, 0.76, 0.0])
    with pytest.raises(ValueError, match="one lambda per person"):
        self_paced_easiness(L, [0.1])
    with pytest.raises(ValueError, match="lambdas must be > 0"):
        self_paced_easiness(L, [0.1, 0.0])


def test_measures_reject_vectors():
    with pytest.raises(ValueError, match="2-D"):
        best_score(np.zeros(3))


def test_select_lowest_and_highest_order_and_ties():
    v = np.array([0.3, -1.0, 0.3, 2.0, 0.0])
    assert select_lowest(v, 3).tolist() == [1, 4, 0]
    assert select_highest(v, 2).tolist() == [3, 0]
    assert select_lowest(v, 10).tolist() == [1, 4, 0, 2, 3]
    assert select_lowest(v, 0).tolist() == []
    tied = {tuple(select_lowest(np.zeros(6), 3, np.random.default_rng(s)).tolist()) for s in range(10)}
    assert len(tied) > 1  # ties broken at random with an rng
    with pytest.raises(ValueError, match="k must be"):
        select_lowest(v, -1)


def test_select_random_gives_distinct_rows():
    rows = select_random(10, 4, np.random.default_rng(0))
    assert len(set(rows.tolist())) == 4 and rows.max() < 10
    assert len(select_random(3, 5, np.random.default_rng(0))) == 3
