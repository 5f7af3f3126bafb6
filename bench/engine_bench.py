"""Benchmark of the ASPL engine against CEAL, AL_RAND, AL_ALL and SPL on lfw-dev.

Runs the simulation protocol (aspl.engine.simulate) over several seeds on two
representations of the same faces:

* ``dlib``: the frozen dlib-resnet embeddings (128-d, strong: one label per
  person already gives ~96% with a linear SVM);
* ``dlib-proj16``: those embeddings through a fixed random Gaussian projection
  to 16 dimensions, re-normalised: a weak backbone (~69% with one label per
  person, ~94% with all labels) where the gap between methods is visible.

Plus an open-set run (half of the people seeded) and a noisy-annotator run
(re-certification). Writes, per run, ``results.csv`` (every seed),
``curve.csv`` (mean over seeds), ``accuracy.png`` and ``summary.json`` under
``--out`` (default ``bench/results/engine/<run>/``), and the tables to
``<out>.md`` (``bench/results/engine.md``).

    .venv/bin/python bench/engine_bench.py                 # ~4 min on 2 cores
    .venv/bin/python bench/engine_bench.py --seeds 2 --rounds 10   # quick look
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from aspl.datasets import folder_embeddings  # noqa: E402
from aspl.engine.simulate import SimulationConfig, plot_results, simulate  # noqa: E402

log = logging.getLogger("engine_bench")

METHODS = ("aspl", "aspl-margin", "aspl-guarded", "ceal", "random", "all", "spl")
NAMES = {"aspl": "ASPL", "aspl-margin": "ASPL, margin queries", "aspl-guarded": "ASPL, guarded (the app's default)",
         "ceal": "CEAL", "random": "AL_RAND",
         "all": "AL_ALL", "spl": "SPL"}


def project(X: np.ndarray, dims: int, seed: int = 0) -> np.ndarray:
    """A fixed random Gaussian projection to ``dims`` dimensions, rows re-normalised."""
    P = np.random.default_rng(seed).standard_normal((X.shape[1], dims))
    Z = X @ P
    return (Z / np.linalg.norm(Z, axis=1, keepdims=True)).astype(np.float32)


def mean_curve(rows: list[dict]) -> list[dict]:
    """Mean over seeds of each (method, round); auto-label precision pooled over seeds."""
    groups: dict[tuple[str, int], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["method"], r["round"]), []).append(r)
    out = []
    for (m, t), rs in groups.items():
        used = sum(r["pseudo_labels"] for r in rs)
        right = sum(r["pseudo_labels"] * r["pseudo_label_precision"] for r in rs if r["pseudo_labels"])
        out.append(dict(method=m, round=t, seeds=len(rs),
                        human_labels=float(np.mean([r["human_labels"] for r in rs])),
                        fraction_annotated=float(np.mean([r["fraction_annotated"] for r in rs])),
                        pseudo_labels=float(np.mean([r["pseudo_labels"] for r in rs])),
                        pseudo_label_precision=right / used if used else math.nan,
                        test_accuracy=float(np.mean([r["test_accuracy"] for r in rs])),
                        test_accuracy_std=float(np.std([r["test_accuracy"] for r in rs])),
                        people_known=float(np.mean([r["people_known"] for r in rs])),
                        people_total=rs[0]["people_total"],
                        reviews=float(np.mean([r["reviews"] for r in rs])),
                        review_fixes=float(np.mean([r["review_fixes"] for r in rs])),
                        wrong_human_labels=float(np.mean([r["wrong_human_labels"] for r in rs]))))
    order = {m: i for i, m in enumerate(METHODS)}
    return sorted(out, key=lambda r: (order.get(r["method"], 99), r["round"]))


def first_reaching(curve: list[dict], method: str, level: float) -> float | None:
    for r in curve:
        if r["method"] == method and r["test_accuracy"] >= level - 1e-12:
            return r["fraction_annotated"]
    return None


def summarize_curve(curve: list[dict], rows: list[dict]) -> dict:
    """Fraction annotated to come within 1 point of AL_ALL, auto-label precision, and
    labels needed at each accuracy level, per method (on the mean curve)."""
    ceiling = max(r["test_accuracy"] for r in curve if r["method"] == "all")
    methods = [m for m in METHODS if any(r["method"] == m for r in curve)]
    start = min(r["test_accuracy"] for r in curve if r["round"] == 0)
    levels = [round(v, 3) for v in np.arange(math.ceil(start * 200) / 200, ceiling - 0.01 + 1e-9, 0.005)]
    per = {}
    for m in methods:
        mr = [r for r in rows if r["method"] == m]
        used = sum(r["pseudo_labels"] for r in mr)
        right = sum(r["pseudo_labels"] * r["pseudo_label_precision"] for r in mr if r["pseudo_labels"])
        rounds = [r for r in curve if r["method"] == m]
        per[m] = dict(
            fraction_within_1pt=first_reaching(curve, m, ceiling - 0.01),
            auto_label_precision=right / used if used else None,
            worst_round_precision=min((r["pseudo_label_precision"] for r in rounds if r["pseudo_labels"]),
                                      default=None),
            final_accuracy=rounds[-1]["test_accuracy"],
            final_fraction=rounds[-1]["fraction_annotated"],
            fraction_at_level={f"{lv:.3f}": first_reaching(curve, m, lv) for lv in levels},
        )
    wins = {}
    for mine in ("aspl", "aspl-margin", "aspl-guarded"):
        for rival in ("ceal", "random"):
            if mine in per and rival in per:
                cmp = []
                for lv in levels:
                    a = per[mine]["fraction_at_level"][f"{lv:.3f}"]
                    b = per[rival]["fraction_at_level"][f"{lv:.3f}"]
                    cmp.append(a is not None and (b is None or a <= b))
                wins[f"{mine} vs {rival}"] = dict(levels=len(levels), fewer_or_equal=int(sum(cmp)))
    return dict(ceiling_accuracy=ceiling, start_accuracy=start, levels=levels, methods=per, wins=wins)


def fmt(v: float | None, pct: bool = True) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return f"{v:.1%}" if pct else f"{v}"


def table(summary: dict) -> str:
    lines = ["| method | fraction annotated to reach AL_ALL − 1 pt | auto-label precision (worst round) | "
             "final accuracy @ fraction |", "|---|---|---|---|"]
    for m, s in summary["methods"].items():
        within = fmt(s["fraction_within_1pt"]) if s["fraction_within_1pt"] is not None else \
            f"not reached (≤ {s['final_fraction']:.1%})"
        prec = "—" if s["auto_label_precision"] is None else \
            f"{s['auto_label_precision']:.1%} ({fmt(s['worst_round_precision'])})"
        lines.append(f"| {NAMES[m]} | {within} | {prec} | {s['final_accuracy']:.1%} @ {s['final_fraction']:.1%} |")
    return "\n".join(lines)


def write_csv(rows: list[dict], path: Path) -> None:
    keys = list(rows[0].keys())
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in r.items()})


def run(name: str, X: np.ndarray, y: np.ndarray, seeds: int, out: Path, title: str, **cfg) -> tuple[dict, list]:
    rows = []
    t0 = time.time()
    for s in range(seeds):
        for r in simulate(X, y, SimulationConfig(seed=s, **cfg), progress=False):
            rows.append({"seed": s, **r})
        log.info("%s: seed %d done (%.0f s)", name, s, time.time() - t0)
    d = out / name
    d.mkdir(parents=True, exist_ok=True)
    curve = mean_curve(rows)
    write_csv(rows, d / "results.csv")
    write_csv(curve, d / "curve.csv")
    plot_results(curve, d / "accuracy.png", title)
    summary = summarize_curve(curve, rows)
    summary["seconds"] = round(time.time() - t0, 1)
    summary["config"] = {k: v for k, v in cfg.items() if k != "settings"} | {"settings": cfg.get("settings", {}),
                                                                             "seeds": seeds}
    (d / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary, curve


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "lfw-dev"))
    ap.add_argument("--cache-dir", default=str(REPO / ".cache" / "emb"))
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--query-size", type=int, default=None, help="default: 2.5%% of the pool (43 here)")
    ap.add_argument("--dlib-query-size", type=int, default=10,
                    help="K for the closed-set dlib run: small, to resolve its fast saturation")
    ap.add_argument("--dlib-rounds", type=int, default=25)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "engine"))
    ap.add_argument("--only", default="dlib,dlib-proj16,open-set,noisy",
                    help="comma-separated runs: dlib, dlib-proj16, open-set, noisy")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    emb = folder_embeddings(args.data, backbone="dlib-resnet", cache_dir=args.cache_dir)
    X, y = emb.X, emb.y
    only = set(args.only.split(","))
    base = dict(rounds=args.rounds, query_size=args.query_size, seed_labels=1, test_fraction=0.2,
                settings={"min_labels": 1})
    k = args.query_size or "2.5% of the pool (43)"
    md = [f"# Engine benchmark on lfw-dev ({len(y)} faces, {len(set(emb.labels))} people)", "",
          f"{args.seeds} seeds, 1 seed label per person, K = {k} queries per round, {args.rounds} rounds "
          f"(closed-set dlib run: K = {args.dlib_query_size}, {args.dlib_rounds} rounds), "
          f"20% of each person held out for testing (pool 1,726 faces, test 429); accuracy = mean over seeds. "
          f"Engine defaults (C = 10, positive weight 5, pace 0.12 + 0.08/round up to 0.9, CEAL entropy "
          f"queries, delta0 = 0.005, dr = 0.00033, softmax temperature 0.1) with min_labels = 1.", ""]
    results = {}
    dlib_k = dict(base, query_size=args.dlib_query_size, rounds=args.dlib_rounds)
    for name, Xr, title, cfg in (("dlib", X, "dlib-resnet embeddings (128-d)", dlib_k),
                                 ("dlib-proj16", project(X, 16), "dlib projected to 16 random dims", base)):
        if name not in only:
            continue
        s, _ = run(name, Xr, y, args.seeds, out, f"lfw-dev, {title}", methods=METHODS, **cfg)
        results[name] = s
        md += [f"## {title}", "", f"AL_ALL accuracy {s['ceiling_accuracy']:.1%}; with the seed labels only "
               f"{s['start_accuracy']:.1%}.", "", table(s), ""]
        for pair, w in s["wins"].items():
            mine, rival = pair.split(" vs ")
            md.append(f"- {NAMES[mine]} needs no more labels than {NAMES[rival]} at {w['fewer_or_equal']} of "
                      f"{w['levels']} accuracy levels (0.5-point steps from the start to AL_ALL − 1 pt).")
        md.append("")
    if "open-set" in only:
        cfg = dict(base, open_set=0.5)
        s, curve = run("open-set", X, y, args.seeds, out, "lfw-dev open set (half the people seeded), dlib",
                       methods=("aspl", "aspl-margin", "aspl-guarded", "ceal", "random", "all"), **cfg)
        total = curve[0]["people_total"]
        md += ["## Open set (dlib; half of the people seeded, the rest to be discovered)", "",
               "| method | people known after round 2 / 5 / last | human labels when all known (mean) | "
               "accuracy after round 2 / 5 / last |",
               "|---|---|---|---|"]
        for m in ("aspl", "aspl-margin", "aspl-guarded", "ceal", "random"):
            rs = [r for r in curve if r["method"] == m]
            pick = [rs[min(i, len(rs) - 1)]["people_known"] for i in (2, 5, len(rs) - 1)]
            allk = next((r["human_labels"] for r in rs if r["people_known"] >= total - 1e-9), None)
            accs = [rs[min(i, len(rs) - 1)]["test_accuracy"] for i in (2, 5, len(rs) - 1)]
            md.append(f"| {NAMES[m]} | {' / '.join(f'{v:.1f}' for v in pick)} of {total} | "
                      f"{'not all' if allk is None else f'{allk:.0f}'} | {' / '.join(f'{a:.1%}' for a in accs)} |")
        results["open-set"] = s
        md.append("")
    if "noisy" in only:
        cfg = dict(base, label_noise=0.05)
        s, curve = run("noisy", X, y, args.seeds, out, "lfw-dev, dlib, annotator wrong 5% of the time",
                       methods=("aspl", "aspl-margin", "aspl-guarded", "random", "all"), **cfg)
        md += ["## Noisy annotator (dlib; each answer wrong with probability 5%)", "",
               "| method | flagged labels reviewed | of which wrong (fixed) | "
               "wrong human labels left (of those given) | final accuracy | auto-label precision |",
               "|---|---|---|---|---|---|"]
        for m in ("aspl", "aspl-margin", "aspl-guarded", "random"):
            rs = [r for r in curve if r["method"] == m]
            prec = s["methods"][m]["auto_label_precision"]
            given = rs[-1]["wrong_human_labels"] + rs[-1]["review_fixes"]
            md.append(f"| {NAMES[m]} | {rs[-1]['reviews']:.1f} | {rs[-1]['review_fixes']:.1f} | "
                      f"{rs[-1]['wrong_human_labels']:.1f} (of {given:.1f}) | {rs[-1]['test_accuracy']:.1%} | "
                      f"{fmt(prec)} |")
        md.append("")
        results["noisy"] = s
    out.with_suffix(".md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
