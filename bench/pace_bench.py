"""Pace and open-set guard of ASPL against CEAL on lfw-dev (dlib): which engine settings need no more
labels than CEAL at every accuracy level, and how precise their auto-labels are.

Same protocol and mean-curve code as ``bench/engine_bench.py`` (one seed label per person, 20% of each
person held out), one run per representation:

* ``dlib``: closed set, K = 10 queries a round, 25 rounds;
* ``open``: half of the people seeded, K = 2.5% of the pool (43), 15 rounds;
* ``proj16``: dlib through a fixed random projection to 16 dims (weak features), K = 43, 15 rounds.

    .venv/bin/python bench/pace_bench.py dlib open proj16 [--seeds 5] [--variants ceal,guarded,...]

Prints, per variant: accuracy levels (0.5-point steps from the start to AL_ALL - 1 pt) where it needs no
more labels than CEAL, the fraction annotated to come within 1 pt of AL_ALL, and the auto-labels' precision
(pooled over seeds) with its worst round.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from engine_bench import first_reaching, mean_curve, project  # noqa: E402

from aspl.datasets import folder_embeddings  # noqa: E402
from aspl.engine.simulate import SimulationConfig, simulate  # noqa: E402

#: name -> (method, engine settings); every run also needs ``all`` (the ceiling) and ``ceal``.
VARIANTS = {
    "all": ("all", {}),
    "ceal": ("ceal", {}),
    "margin-0.4+0.15": ("aspl-margin", {"lambda_start": 0.4, "lambda_step": 0.15}),
    "margin-0.9": ("aspl-margin", {"lambda_start": 0.9, "lambda_step": 0.0}),
    "margin-0.9-guard0.5": ("aspl-margin", {"lambda_start": 0.9, "lambda_step": 0.0, "support_similarity": 0.5}),
    "guarded": ("aspl-guarded", {}),
    "guarded-q0.9": ("aspl-guarded", {"support_quantile": 0.9}),
    "guarded-q0.95": ("aspl-guarded", {"support_quantile": 0.95}),
    "guarded-q0.75": ("aspl-guarded", {"support_quantile": 0.75}),
    "guarded-q0.99": ("aspl-guarded", {"support_quantile": 0.99}),
    "guarded-sep0.15": ("aspl-guarded", {"separate_gap": 0.15}),
    "guarded-sep0.2": ("aspl-guarded", {"separate_gap": 0.2}),
    "guard0.7-q0.99": ("aspl-guarded", {"support_similarity": 0.7, "support_quantile": 0.99}),
    "guard0.7-q0.9": ("aspl-guarded", {"support_similarity": 0.7, "support_quantile": 0.9}),
    "guard0.7-q0.95": ("aspl-guarded", {"support_similarity": 0.7, "support_quantile": 0.95}),
    "guard0.7-sep0.15": ("aspl-guarded", {"support_similarity": 0.7, "separate_gap": 0.15}),
    "guard0.7-q0.95-sep0.15": ("aspl-guarded", {"support_similarity": 0.7, "support_quantile": 0.95,
                                                "separate_gap": 0.15}),
    "margin-0.9-guard0.7": ("aspl-margin", {"lambda_start": 0.9, "lambda_step": 0.0, "support_similarity": 0.7}),
    "margin-0.7+0.1-guard0.6": ("aspl-margin", {"lambda_start": 0.7, "lambda_step": 0.1,
                                                "support_similarity": 0.6}),
}
RUNS = {"dlib": dict(rounds=25, query_size=10), "open": dict(rounds=15, query_size=None, open_set=0.5),
        "proj16": dict(rounds=15, query_size=None)}


def run(which: str, X: np.ndarray, y: np.ndarray, variants: list[str], seeds: int) -> dict:
    """Simulate every variant on ``which`` over ``seeds`` seeds; returns the summary per variant."""
    Xr = project(X, 16) if which == "proj16" else X
    rows = []
    for name in dict.fromkeys(["all", "ceal", *variants]):
        method, extra = VARIANTS[name]
        for s in range(seeds):
            cfg = SimulationConfig(seed=s, methods=(method,), seed_labels=1, test_fraction=0.2,
                                   settings={"min_labels": 1, **extra}, **RUNS[which])
            rows += [{"seed": s, **r, "method": name} for r in simulate(Xr, y, cfg, progress=False)]
    curve = mean_curve(rows)
    ceiling = max(r["test_accuracy"] for r in curve if r["method"] == "all")
    start = min(r["test_accuracy"] for r in curve if r["round"] == 0)
    levels = [round(v, 3) for v in np.arange(math.ceil(start * 200) / 200, ceiling - 0.01 + 1e-9, 0.005)]
    ceal = [first_reaching(curve, "ceal", lv) for lv in levels]
    out = {}
    for name in dict.fromkeys(["ceal", *variants]):
        mine = [first_reaching(curve, name, lv) for lv in levels]
        mr = [r for r in rows if r["method"] == name and r["pseudo_labels"]]
        used = sum(r["pseudo_labels"] for r in mr)
        right = sum(r["pseudo_labels"] * r["pseudo_label_precision"] for r in mr)
        worst = min((r["pseudo_label_precision"] for r in curve if r["method"] == name and r["pseudo_labels"]),
                    default=None)
        out[name] = {"levels_le_ceal": sum(a is not None and (b is None or a <= b + 1e-9) for a, b in zip(mine, ceal)),
                     "levels": len(levels), "within_1pt": first_reaching(curve, name, ceiling - 0.01),
                     "precision": right / used if used else None, "worst_round_precision": worst}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", choices=sorted(RUNS))
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--variants", default="margin-0.4+0.15,margin-0.9,guarded",
                    help=f"comma-separated, of: {', '.join(v for v in VARIANTS if v != 'all')}")
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "lfw-dev"))
    ap.add_argument("--cache-dir", default=str(REPO / ".cache" / "emb"))
    args = ap.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        ap.error(f"unknown variant(s) {', '.join(bad)}; valid choices: {', '.join(VARIANTS)}")
    emb = folder_embeddings(args.data, backbone="dlib-resnet", cache_dir=args.cache_dir)
    for which in args.runs:
        t0 = time.time()
        res = run(which, emb.X, emb.y, variants, args.seeds)
        print(json.dumps({"run": which, "seconds": round(time.time() - t0), "seeds": args.seeds, "variants": res}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
