"""The per-person pace lambda: start, growth per query round, cap."""
import numpy as np
import pytest

from aspl.engine.engines import ASPLEngine, ASPLSettings
from aspl.engine.pace import Pace


def test_defaults_are_the_released_settings():
    p = Pace()
    assert (p.start, p.step, p.cap) == (0.12, 0.08, 0.9)
    s = ASPLSettings()
    assert (s.lambda_start, s.lambda_step, s.lambda_max) == (0.12, 0.08, 0.9)


def test_pace_grows_per_round_and_is_capped():
    p = Pace()
    assert p.at(0) == pytest.approx(0.12)
    assert p.at(1) == pytest.approx(0.20)
    assert p.at(5) == pytest.approx(0.52)
    assert p.at(9) == pytest.approx(0.84)
    assert p.at(10) == pytest.approx(0.9) and p.at(100) == pytest.approx(0.9)
    np.testing.assert_allclose(p.grow(np.array([0.12, 0.85, 0.9])), [0.20, 0.9, 0.9])


@pytest.mark.parametrize("kw", [dict(start=0.0), dict(start=0.95, cap=0.9), dict(step=-0.1)])
def test_invalid_pace_is_rejected(kw):
    with pytest.raises(ValueError, match="pace"):
        Pace(**kw)


def test_engine_rejects_invalid_pace_settings():
    with pytest.raises(ValueError, match="start=0.95"):
        ASPLEngine(lambda_start=0.95, lambda_max=0.9)


def test_engine_grows_each_persons_lambda_and_new_people_start_low():
    rng = np.random.default_rng(0)
    X = np.concatenate([np.eye(5)[p] + 0.05 * rng.standard_normal((6, 5)) for p in range(4)]).astype(np.float32)
    labels = np.full(24, -1)
    labels[[0, 6, 12]] = [0, 1, 2]
    eng = ASPLEngine(min_labels=1, query_size=1, seed_max=0)
    seen = [eng.step(X, labels).lambdas for _ in range(3)]
    assert [round(s[0], 6) for s in seen] == [0.12, 0.2, 0.28]
    assert set(seen[0]) == {0, 1, 2}
    labels[18] = 3  # a new person appears
    lam = eng.step(X, labels).lambdas
    assert lam[3] == pytest.approx(0.12) and lam[0] == pytest.approx(0.36)
    for _ in range(12):
        lam = eng.step(X, labels).lambdas
    assert lam[0] == pytest.approx(0.9) and lam[3] == pytest.approx(0.9)
