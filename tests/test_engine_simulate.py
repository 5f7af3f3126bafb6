"""The simulation protocol end to end: splits, rows, determinism, outputs, open set, ASPL vs random."""
import csv
from pathlib import Path

import numpy as np
import pytest

from aspl.engine.simulate import COLUMNS, SimulationConfig, simulate, split_pool, summarize, write_results

REPO = Path(__file__).resolve().parents[1]
LFW = REPO.parent / "shared" / "data" / "lfw-dev"
CACHE = REPO / ".cache" / "emb"


def _blobs(people=8, per=20, dims=10, spread=0.25, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((people, dims))
    X = np.concatenate([c + spread * np.linalg.norm(c) * rng.standard_normal((per, dims)) / np.sqrt(dims)
                        for c in centres])
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X.astype(np.float32), np.repeat(np.arange(people), per)


def test_split_holds_out_a_test_fraction_per_person_and_seeds_from_the_pool():
    y = np.repeat(np.arange(5), [10, 20, 5, 8, 30])
    s = split_pool(y, 0.2, seed_labels=2, seed=3)
    assert np.intersect1d(s.pool, s.test).size == 0 and s.pool.size + s.test.size == y.size
    assert np.bincount(y[s.test]).tolist() == [2, 4, 1, 2, 6]
    assert set(s.seeded) <= set(s.pool) and np.bincount(y[s.seeded]).tolist() == [2] * 5
    again = split_pool(y, 0.2, seed_labels=2, seed=3)
    assert np.array_equal(again.pool, s.pool) and np.array_equal(again.seeded, s.seeded)
    o = split_pool(y, 0.2, seed_labels=1, open_set=0.4, seed=3)
    assert o.seeded_people.size == 2 and set(y[o.seeded]) == set(o.seeded_people.tolist())


def test_rows_follow_the_protocol_and_are_deterministic():
    X, y = _blobs()
    cfg = SimulationConfig(rounds=3, query_size=5, seed=1)
    rows = simulate(X, y, cfg, progress=False)
    assert rows == simulate(X, y, cfg, progress=False)
    assert set(COLUMNS) <= set(rows[0])
    by = {}
    for r in rows:
        by.setdefault(r["method"], []).append(r)
    assert list(by) == ["aspl", "ceal", "random", "all", "spl"]
    pool = rows[0]["pool_size"]
    for m in ("aspl", "ceal", "random"):
        assert [r["human_labels"] for r in by[m]] == [8, 13, 18, 23]
    assert [r["human_labels"] for r in by["spl"]] == [8] * 4
    assert [r["fraction_annotated"] for r in by["all"]] == [8 / pool, 1.0]
    assert all(r["pseudo_labels"] == 0 for r in by["random"] + by["all"])
    assert by["aspl"][2]["pseudo_labels"] > 0 and 0 <= by["aspl"][2]["pseudo_label_precision"] <= 1
    other = simulate(X, y, SimulationConfig(rounds=3, query_size=5, seed=2), progress=False)
    assert other != rows


def test_outputs_csv_png_and_summary(tmp_path):
    X, y = _blobs(people=4, per=10)
    rows = simulate(X, y, SimulationConfig(rounds=2, query_size=3, methods=("aspl", "all")), progress=False)
    paths = write_results(rows, tmp_path / "out", title="test")
    with open(paths["csv"]) as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == list(COLUMNS) and len(table) == len(rows)
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "aspl" in paths["summary"].read_text()


def test_summary_finds_the_first_fraction_within_one_point_of_al_all():
    base = dict(pseudo_labels=0, pseudo_label_precision=float("nan"), people_known=3, people_total=3)
    rows = [dict(base, method="aspl", round=t, human_labels=h, fraction_annotated=h / 100, test_accuracy=a)
            for t, (h, a) in enumerate([(3, 0.80), (13, 0.975), (23, 0.99)])]
    rows += [dict(base, method="all", round=t, human_labels=h, fraction_annotated=h / 100, test_accuracy=a)
             for t, (h, a) in enumerate([(3, 0.80), (100, 0.99)])]
    s = summarize(rows)
    assert s["aspl"]["fraction_to_ceiling"] == 0.23 and s["all"]["fraction_to_ceiling"] == 1.0
    assert summarize(rows, within=0.02)["aspl"]["fraction_to_ceiling"] == 0.13


def test_open_set_discovers_unseeded_people_through_queries():
    X, y = _blobs(people=10, per=15)
    rows = simulate(X, y, SimulationConfig(methods=("aspl",), rounds=6, query_size=8, open_set=0.5), progress=False)
    assert rows[0]["people_known"] == 5
    assert rows[-1]["people_known"] == 10
    s = summarize(rows)["aspl"]
    assert s["people_discovered"] == 5 and s["human_labels_to_discover_all"] <= 5 + 6 * 8


def test_invalid_configuration_names_valid_choices():
    X, y = _blobs(people=3, per=5)
    with pytest.raises(ValueError, match="valid choices: aspl, ceal, random, all, spl"):
        simulate(X, y, SimulationConfig(methods=("aspl", "magic")), progress=False)
    with pytest.raises(ValueError, match="test_fraction"):
        simulate(X, y, SimulationConfig(test_fraction=1.5), progress=False)
    with pytest.raises(ValueError, match="open_set"):
        simulate(X, y, SimulationConfig(open_set=0), progress=False)


def _lfw():
    from aspl.datasets import folder_embeddings

    emb = folder_embeddings(LFW, backbone="dlib-resnet", cache_dir=CACHE, progress=False)
    return emb.X, emb.y


# The first run embeds all of lfw-dev (about 2.5 min on 2 cores) into .cache/emb; later runs read the cache.
needs_lfw = pytest.mark.slow


@needs_lfw
def test_aspl_labels_a_15_person_lfw_subset_precisely_with_dlib():
    X, y = _lfw()
    keep = y < 15
    rows = simulate(X[keep], y[keep], SimulationConfig(methods=("aspl", "random"), rounds=6, query_size=10),
                    progress=False)
    s = summarize(rows)
    assert s["aspl"]["auto_labels_used"] > 1000 and s["aspl"]["auto_label_precision"] >= 0.98
    assert s["aspl"]["final_accuracy"] >= s["random"]["final_accuracy"] >= 0.95


@needs_lfw
def test_aspl_beats_random_at_equal_budget_on_a_weak_lfw_representation():
    X, y = _lfw()
    Z = X @ np.random.default_rng(0).standard_normal((X.shape[1], 16))  # a weak 16-d backbone
    Z = (Z / np.linalg.norm(Z, axis=1, keepdims=True)).astype(np.float32)
    for seed in (0, 1):
        rows = simulate(Z, y, SimulationConfig(methods=("aspl", "random"), rounds=9, seed=seed), progress=False)
        aspl = [r for r in rows if r["method"] == "aspl"]
        rand = [r for r in rows if r["method"] == "random"]
        assert aspl[-1]["human_labels"] == rand[-1]["human_labels"]  # equal budget: 62 + 9 x 43 labels
        assert aspl[-1]["test_accuracy"] > rand[-1]["test_accuracy"] + 0.01
