"""Embedding centring before classification (aspl.engine.preprocess) and the simulation's ``center`` flag."""
import numpy as np
import pytest

from aspl.engine import OneVsAllSVM, center_embeddings, mean_pairwise_cosine
from aspl.engine.simulate import SimulationConfig, simulate


def _offset_blobs(people: int = 4, per: int = 30, dim: int = 16, offset: float = 1e6, seed: int = 0):
    """Well separated people (spread 1) riding on a huge common offset of varying size, as unit vectors.

    The varying size scales each face's person signal differently after normalisation, and the signal
    is ~1e-6 of the unit vector: linear SVMs on the raw unit vectors fail, centred they separate."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(people, dim))
    y = np.repeat(np.arange(people), per)
    X = centres[y] + 0.1 * rng.normal(size=(y.size, dim))
    X[:, 0] += offset * rng.uniform(0.5, 1.5, size=y.size)
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32), y


def test_center_embeddings_unit_rows_zero_mean_direction_and_given_mean():
    X, _ = _offset_blobs()
    C = center_embeddings(X)
    assert C.dtype == np.float32 and np.allclose(np.linalg.norm(C, axis=1), 1, atol=1e-5)
    assert mean_pairwise_cosine(X) > 0.999 and mean_pairwise_cosine(C) < 0.1
    mu = X[:10].mean(0)
    assert np.allclose(center_embeddings(X[10:], mu)[0], center_embeddings(X, mu)[10], atol=1e-6)
    with pytest.raises(ValueError, match="dims"):
        center_embeddings(X, mu[:3])
    with pytest.raises(ValueError, match="faces x dims"):
        center_embeddings(X[0])


def test_centring_restores_linear_svm_separability_under_a_common_offset():
    X, y = _offset_blobs()
    train = np.arange(y.size) % 3 != 0
    raw = OneVsAllSVM(min_labels=1, random_state=0).fit(X[train], y[train])
    acc_raw = np.mean(raw.predict(X[~train]) == y[~train])
    mu = X[train].mean(0)
    cen = OneVsAllSVM(min_labels=1, random_state=0).fit(center_embeddings(X[train], mu), y[train])
    acc_cen = np.mean(cen.predict(center_embeddings(X[~train], mu)) == y[~train])
    assert acc_raw < 0.6 and acc_cen == 1.0


def test_simulation_center_flag_is_off_by_default_and_helps_on_offset_data():
    X, y = _offset_blobs(people=5, per=20)
    assert SimulationConfig().center is False
    base = dict(methods=("aspl",), query_size=5, rounds=2, test_fraction=0.25, seed=0)
    off = simulate(X, y, SimulationConfig(**base), progress=False)
    on = simulate(X, y, SimulationConfig(**base, center=True), progress=False)
    assert on[-1]["test_accuracy"] > off[-1]["test_accuracy"]
    assert on[-1]["test_accuracy"] == 1.0
