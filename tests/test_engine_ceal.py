"""CEAL baseline: decaying entropy threshold, uncertainty queries, one-round pseudo-labels."""
import numpy as np
import pytest

from aspl.engine.engines import CEALEngine, CEALSettings
from aspl.engine.measures import entropy, least_confidence, margin, softmax
from aspl.engine.selection import UNLABELLED, ceal_pseudo_labels, ceal_threshold, select_highest, select_lowest


def test_threshold_decays_as_delta_minus_dr_times_t_each_round():
    assert ceal_threshold(0) == pytest.approx(0.005)
    assert ceal_threshold(1) == pytest.approx(0.005 - 0.00033)
    assert ceal_threshold(2) == pytest.approx(0.005 - 3 * 0.00033)
    assert ceal_threshold(5) == pytest.approx(0.005 - 15 * 0.00033)
    assert ceal_threshold(6) == 0.0 and ceal_threshold(50) == 0.0
    assert ceal_threshold(3, delta0=0.1, decay_rate=0.01) == pytest.approx(0.04)
    with pytest.raises(ValueError, match="round t"):
        ceal_threshold(-1)


def test_pseudo_labels_only_below_the_entropy_threshold():
    P = np.array([[0.9995, 0.0005, 0.0], [0.6, 0.4, 0.0], [0.0, 0.0001, 0.9999]])
    assert ceal_pseudo_labels(P, 0.005).tolist() == [0, UNLABELLED, 2]
    assert ceal_pseudo_labels(P, 0.0).tolist() == [UNLABELLED] * 3


def _data(seed=0, per=15, people=4, dims=6, spread=0.35):
    rng = np.random.default_rng(seed)
    X = np.concatenate([np.eye(dims)[p] + spread * rng.standard_normal((per, dims)) for p in range(people)])
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    y = np.repeat(np.arange(people), per)
    labels = np.full(len(y), -1)
    for p in range(people):
        labels[p * per:p * per + 2] = p
    return X.astype(np.float32), y, labels


@pytest.mark.parametrize("criterion", ["entropy", "least_confidence", "margin"])
def test_queries_are_the_most_uncertain_faces_by_criterion(criterion):
    X, y, labels = _data()
    eng = CEALEngine(min_labels=1, query_size=6, criterion=criterion)
    res = eng.step(X, labels)
    cand = np.flatnonzero(labels < 0)
    P = softmax(res.model.decision_function(X[cand]), eng.settings.temperature)
    if criterion == "margin":
        want = select_lowest(margin(P), 6)
    else:
        want = select_highest(entropy(P) if criterion == "entropy" else least_confidence(P), 6)
    assert res.queries.tolist() == cand[want].tolist()


def test_pseudo_labels_last_one_round_and_stop_when_the_threshold_reaches_zero():
    X, y, labels = _data(spread=0.2)
    eng = CEALEngine(min_labels=1, query_size=2)
    counts = []
    for t in range(8):
        res = eng.step(X, labels)
        counts.append(int((res.pseudo_labels >= 0).sum()))
        assert not np.any(res.pseudo_labels[res.queries] >= 0)  # queried faces are not auto-labelled
        if t > 0:  # trained on last round's pseudo-labels, weight 1
            assert res.n_pseudo_used == counts[t - 1]
        labels[res.queries] = y[res.queries]
    assert counts[0] > 0 and counts[6] == 0 and counts[7] == 0


def test_invalid_settings_name_valid_choices():
    with pytest.raises(ValueError, match="valid choices: entropy, least_confidence, margin"):
        CEALEngine(criterion="variance")
    with pytest.raises(ValueError, match="temperature"):
        CEALEngine(temperature=0)
    assert CEALSettings().delta0 == 0.005 and CEALSettings().decay_rate == 0.00033


def test_every_method_survives_a_round_where_every_face_is_labelled():
    import numpy as np

    from aspl.engine import make_engine

    X = np.random.default_rng(0).standard_normal((20, 8)).astype(np.float32)
    y = np.repeat(np.arange(4), 5)
    for method in ("ceal", "aspl", "aspl-margin", "random", "all", "spl"):
        r = make_engine(method, min_labels=1).step(X, y.copy())
        assert r.queries.size == 0 and (r.pseudo_labels < 0).all(), method
