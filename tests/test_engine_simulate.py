"""The simulation protocol end to end: splits, rows, determinism, outputs, open set, ASPL vs random."""
import csv
import json
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
    assert by["aspl"][2]["pseudo_labels"] > 0
    for m in ("aspl", "spl", "ceal"):  # self-paced / CEAL auto-labels on separable blobs: (almost) all right
        for r in by[m]:
            if r["pseudo_labels"]:  # measured 1.0 in every round for seeds 1-5
                assert r["pseudo_label_precision"] >= 0.97, (m, r)
            else:
                assert np.isnan(r["pseudo_label_precision"])
    other = simulate(X, y, SimulationConfig(rounds=3, query_size=5, seed=2), progress=False)
    assert other != rows


def test_outputs_csv_png_and_summary(tmp_path):
    X, y = _blobs(people=4, per=10)
    rows = simulate(X, y, SimulationConfig(rounds=2, query_size=3, methods=("aspl", "all")), progress=False)
    paths = write_results(rows, tmp_path / "out", title="test")
    with open(paths["csv"]) as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == list(COLUMNS) and len(table) == len(rows)
    for line, r in zip(table, rows):  # one CSV line per row, in order, with the row's values
        for c in COLUMNS:
            if isinstance(r[c], float):
                assert float(line[c]) == pytest.approx(r[c], abs=1e-6, nan_ok=True), (c, line, r)
            else:
                assert line[c] == str(r[c]), (c, line, r)
    assert [(t["method"], t["round"]) for t in table] == [("aspl", "0"), ("aspl", "1"), ("aspl", "2"),
                                                          ("all", "0"), ("all", "1")]
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads(paths["summary"].read_text())
    assert list(summary) == ["aspl", "all"]
    assert summary == json.loads(json.dumps(summarize(rows), default=float))
    for m, s in summary.items():  # the summary agrees with the rows it was made from
        rs = [r for r in rows if r["method"] == m]
        assert s["final_accuracy"] == rs[-1]["test_accuracy"] and s["final_fraction"] == rs[-1]["fraction_annotated"]
        assert s["ceiling_accuracy"] == rows[-1]["test_accuracy"]  # AL_ALL's last row
        assert s["auto_labels_used"] == sum(r["pseudo_labels"] for r in rs)
        assert s["people_total"] == 4 and s["people_seeded"] == rs[0]["people_known"]
        reach = next(r for r in rs if r["test_accuracy"] >= s["ceiling_accuracy"] - 0.01 - 1e-12)
        assert (s["fraction_to_ceiling"], s["human_labels_to_ceiling"]) == (reach["fraction_annotated"],
                                                                           reach["human_labels"])
    assert summary["aspl"]["auto_labels_used"] > 0 and summary["aspl"]["auto_label_precision"] >= 0.97
    assert summary["all"]["auto_labels_used"] == 0 and summary["all"]["auto_label_precision"] is None
    assert summary["all"]["final_fraction"] == 1.0


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
    rows = simulate(X[keep], y[keep], SimulationConfig(methods=("aspl", "aspl-margin", "random"), rounds=6,
                                                       query_size=10), progress=False)
    s = summarize(rows)
    for m in ("aspl", "aspl-margin"):  # measured (seeds 0-2): 1257-1433 auto-labels, precision 1.0 every round
        assert s[m]["auto_labels_used"] > 1000 and s[m]["auto_label_precision"] >= 0.98
        assert all(r["pseudo_label_precision"] >= 0.97 for r in rows if r["method"] == m and r["pseudo_labels"])
        assert s[m]["final_accuracy"] >= s["random"]["final_accuracy"] >= 0.95


# Measured on one machine (seeds 0-4, 16-d projection seed 0, 9 rounds, 62 + 9 x 43 = 449 labels each):
#   final test accuracy  aspl-margin / random: 0.9254/0.8904  0.9254/0.8695  0.9394/0.8858  0.9347/0.8951
#                                               0.9254/0.8881  (gap +0.035 .. +0.056, mean +0.044)
#   labels aspl-margin needs to reach random's final accuracy: 277, 277, 191, 277, 234 (of 449)
# Seeds 5-9 gave gaps +0.019 .. +0.070 and 234-320 labels; another projection (seed 1) +0.044 .. +0.072.
# Run-to-run / machine noise on one seed is about 0.005, so the assertions below leave a margin of
# at least one query round (43 labels) and half the smallest measured mean gap.
ASPL_VS_RANDOM_SEEDS = (0, 1, 2, 3, 4)


@needs_lfw
def test_aspl_needs_fewer_labels_than_random_on_a_weak_lfw_representation():
    """The app's default method (ASPL, margin queries) at equal human budget against random queries."""
    X, y = _lfw()
    Z = X @ np.random.default_rng(0).standard_normal((X.shape[1], 16))  # a weak 16-d backbone
    Z = (Z / np.linalg.norm(Z, axis=1, keepdims=True)).astype(np.float32)
    gaps, measured = [], []
    for seed in ASPL_VS_RANDOM_SEEDS:
        rows = simulate(Z, y, SimulationConfig(methods=("aspl-margin", "random"), rounds=9, seed=seed),
                        progress=False)
        aspl = [r for r in rows if r["method"] == "aspl-margin"]
        rand = [r for r in rows if r["method"] == "random"]
        budget = rand[-1]["human_labels"]
        step = rand[1]["human_labels"] - rand[0]["human_labels"]
        assert [r["human_labels"] for r in aspl] == [r["human_labels"] for r in rand]  # equal budget each round
        target = rand[-1]["test_accuracy"]
        needed = next((r["human_labels"] for r in aspl if r["test_accuracy"] >= target), None)
        gap = aspl[-1]["test_accuracy"] - target
        measured.append((seed, round(aspl[-1]["test_accuracy"], 4), round(target, 4), needed, budget))
        # ASPL reaches random's final accuracy with at least two query rounds' labels to spare ...
        assert needed is not None and needed <= budget - 2 * step, measured
        # ... and is not worse than random at the full budget on any seed
        assert gap >= 0.0, measured
        gaps.append(gap)
    assert float(np.mean(gaps)) >= 0.02, measured  # measured mean gap +0.044
