"""Scores in row blocks: per-face summaries give the decisions of the full score matrix, bit for bit."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aspl.engine import summary as summary_mod
from aspl.engine.batched import BatchedOneVsAll
from aspl.engine.engines import make_engine
from aspl.engine.measures import best_score, score_margin, summary_best_score, summary_margin
from aspl.engine.recert import uniquely_predicted, uniquely_predicted_summary
from aspl.engine.selection import self_paced_labels, self_paced_select
from aspl.engine.summary import ScoreSummary, summarize_model, summarize_scores

REPO = Path(__file__).resolve().parents[1]
LFW = REPO.parent / "shared" / "data" / "lfw-dev"
CACHE = REPO / ".cache" / "emb"


def _scores(n, P, seed, dtype=np.float64):
    """Scores around the pace thresholds and 0, with exact ties and values exactly at 1 - lambda."""
    rng = np.random.default_rng(seed)
    S = rng.choice([-1.0, -0.5, 0.0, 0.1, 0.5, 0.88, 0.9, 1.0, 1.3], size=(n, P)) + \
        np.where(rng.random((n, P)) < 0.5, 0.0, 0.05 * rng.standard_normal((n, P)))
    return S.astype(dtype)


def _assert_same(S, lam, own):
    sm = summarize_scores(S, lam, own)
    a, b = self_paced_labels(S, lam), self_paced_select(sm)
    for f in ("labels", "weights", "unclear", "ambiguous"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)
    np.testing.assert_array_equal(uniquely_predicted(S, own), uniquely_predicted_summary(sm))
    np.testing.assert_array_equal(best_score(S), summary_best_score(sm))
    np.testing.assert_array_equal(score_margin(S), summary_margin(sm))
    return sm


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("P", [0, 1, 2, 7, 40])
def test_summary_selections_equal_the_full_matrix_ones(seed, P):
    rng = np.random.default_rng(100 + seed)
    for dtype in (np.float64, np.float32):
        S = _scores(60, P, seed, dtype)
        lam = rng.choice([0.12, 0.1, 0.5, 0.9, 1.5], size=P)  # 0.1 / 0.9: losses exactly at lambda occur
        own = np.where(rng.random(60) < 0.5, rng.integers(-1, max(P, 1), 60), -1) if P else np.full(60, -1)
        before = S.copy()
        sm = _assert_same(S, lam, own)
        np.testing.assert_array_equal(S, before)  # the input is left alone
        if P:
            assert np.array_equal(sm.first, S.argmax(1))
        if P >= 2:
            order = np.argsort(-S.astype(np.float64), axis=1, kind="stable")
            assert np.array_equal(sm.second, order[:, 1])


def test_summary_checks_its_inputs():
    with pytest.raises(ValueError, match="2-D"):
        summarize_scores(np.zeros(3), np.ones(3))
    with pytest.raises(ValueError, match="one lambda per person"):
        summarize_scores(np.zeros((2, 3)), np.ones(2))
    with pytest.raises(ValueError, match="> 0"):
        summarize_scores(np.zeros((2, 2)), np.array([0.1, 0.0]))
    with pytest.raises(ValueError, match="own column out of range"):
        summarize_scores(np.zeros((2, 2)), None, np.array([0, 2]))
    empty = ScoreSummary.concat([], 5)
    assert empty.n_faces == 0 and empty.n_people == 5


def _clustered(people=30, per=20, dims=16, spread=1.3, seed=0):
    """Unit-norm faces around centres that come in look-alike pairs."""
    rng = np.random.default_rng(seed)
    pairs = rng.standard_normal((people // 2 + 1, dims))
    centres = rng.standard_normal((people, dims)) + pairs[np.arange(people) // 2]
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    y = np.repeat(np.arange(people), per)
    X = centres[y] + spread * rng.standard_normal((y.size, dims)) / np.sqrt(dims)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X.astype(np.float32), y


def test_batched_blocks_are_the_rows_of_the_score_matrix():
    X, y = _clustered()
    m = BatchedOneVsAll(min_labels=1).fit(X, y)
    S = m.decision_function(X)
    got = np.concatenate([b for _, b in m.score_blocks(X, chunk=37)])
    np.testing.assert_array_equal(got, S.astype(np.float32))
    lam = np.linspace(0.12, 0.9, m.classes_.size)
    own = m.column_of(y)
    whole = summarize_scores(S, lam, own)
    blocks = summarize_model(m, X, lam, own, chunk=37)
    for k, v in whole._arrays().items():
        np.testing.assert_array_equal(v, getattr(blocks, k), err_msg=k)


@pytest.mark.parametrize("chunk", [None, 37])
def test_summaries_on_threads_equal_the_serial_ones(chunk):
    """The engine summarises blocks on every CPU it may use: the same blocks, the same summary."""
    X, y = _clustered()
    m = BatchedOneVsAll(min_labels=1).fit(X, y)
    lam = np.linspace(0.12, 0.9, m.classes_.size)
    own = m.column_of(y)
    one = summarize_model(m, X, lam, own, chunk=chunk, n_jobs=1)
    two = summarize_model(m, X, lam, own, chunk=chunk, n_jobs=2)
    for k, v in one._arrays().items():
        np.testing.assert_array_equal(v, getattr(two, k), err_msg=k)


def _trace(method, classifier, X, y, seed, dense, rounds=4, wrong=0.1, query_size=8):
    """Rounds with an oracle answering the queries (a few answers wrong, to exercise re-certification)."""
    rng = np.random.default_rng(seed)
    eng = make_engine(method, query_size=query_size, min_labels=1, classifier=classifier, random_state=seed,
                      **({"max_failures": 0} if method.startswith("aspl") else {}))
    eng.dense_scores = dense
    answer = y.copy()
    bad = rng.random(y.size) < wrong
    answer[bad] = (y[bad] + 1) % (y.max() + 1)
    labels = np.full(y.size, -1)
    first = rng.permutation(y.size)[: y.size // 12]
    labels[first] = answer[first]
    out = []
    for _ in range(rounds):
        r = eng.step(X, labels)
        out.append({"queries": r.queries.tolist(), "pseudo": r.pseudo_labels.tolist(),
                    "weights": r.pseudo_weights.tolist(), "unclear": r.unclear.tolist(),
                    "ambiguous": r.ambiguous.tolist(), "flagged": r.flagged.tolist(),
                    "seeds": {p: v.tolist() for p, v in r.seeds.items()}})
        labels[r.queries] = answer[r.queries]
    return out


@pytest.fixture
def small_blocks(monkeypatch):
    """Score blocks of a few hundred scores, so that a small library spans many blocks."""
    monkeypatch.setattr(summary_mod, "SCORE_BLOCK_ELEMENTS", 300)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("method", ["aspl", "aspl-margin", "ceal"])
def test_block_rounds_equal_full_matrix_rounds_on_clustered_faces(small_blocks, method, seed):
    X, y = _clustered(seed=seed)
    for classifier in ("batched", "liblinear"):
        dense = _trace(method, classifier, X, y, seed, dense=True)
        blocks = _trace(method, classifier, X, y, seed, dense=False)
        assert dense == blocks, classifier
        assert any(t["pseudo"].count(-1) < len(y) for t in blocks)  # auto-labels were made to compare
        if method != "ceal":  # every set was exercised: unclear, ambiguous, flagged human labels
            assert any(t["unclear"] for t in blocks) and any(t["ambiguous"] for t in blocks)
            assert seed != 0 or any(t["flagged"] for t in blocks)


def test_batched_rounds_never_build_the_score_matrix(small_blocks, monkeypatch):
    X, y = _clustered(seed=3)
    widest = []
    real = BatchedOneVsAll.score_blocks

    def spy(self, X, chunk=None):
        for a, S in real(self, X, chunk):
            widest.append(S.size)
            yield a, S

    def refuse(self, X, chunk=None):
        raise AssertionError("the dense score matrix was built")

    monkeypatch.setattr(BatchedOneVsAll, "score_blocks", spy)
    monkeypatch.setattr(BatchedOneVsAll, "decision_function", refuse)
    for method in ("aspl-margin", "ceal"):
        _trace(method, "batched", X, y, 0, dense=False, rounds=2)
    assert widest and max(widest) <= 300 + 30  # one block: at most 300 scores, or one row of 30 people


@pytest.fixture(scope="module")
def lfw():
    from aspl.datasets import folder_embeddings

    emb = folder_embeddings(LFW, backbone="dlib-resnet", cache_dir=CACHE, progress=False)
    return emb.X, np.unique(np.asarray(emb.labels), return_inverse=True)[1]


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_block_rounds_equal_full_matrix_rounds_on_lfw_dev(lfw, monkeypatch, seed):
    monkeypatch.setattr(summary_mod, "SCORE_BLOCK_ELEMENTS", 62 * 100)  # 100 faces per block
    X, y = lfw
    for method in ("aspl-margin", "aspl"):
        dense = _trace(method, "batched", X, y, seed, dense=True, rounds=3, query_size=20)
        blocks = _trace(method, "batched", X, y, seed, dense=False, rounds=3, query_size=20)
        assert dense == blocks
        assert sum(p >= 0 for p in blocks[-1]["pseudo"]) > 100
