"""Effort benchmark: human decisions per face, the app's flow vs cluster-then-name, on lfw-dev slices.

Each slice is copied to a work folder (one folder per person), imported once with the real importer
(MTCNN + the default backbone), and the pristine library is copied for each run of
``python -m aspl annotate-sim`` (:mod:`aspl.annotate_sim`): the app's flow (``aspl``) and the
clustering baseline (``cluster``) at several distance thresholds, of which the best is reported (a
baseline tuned on the answers: the most favourable to it). The annotator answers by the folder rule
(the most prominent face of a photo is the folder's person, every other face a stranger) corrected by
``bench/lfw_dev_truth_fixes.json``: 15 faces of other lfw-dev people in someone's photo, checked by eye.

    python bench/effort_bench.py [--out bench/results/effort.md] [--quick]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: the package is the repository root
LFW = Path(os.environ.get("ASPL_LFW_DEV", ROOT.parent / "shared" / "data" / "lfw-dev"))
CLUSTER_DISTANCES = (0.5, 0.65, 0.8)
#: faces the folder rule calls strangers that are another lfw-dev person (checked by eye; see the file)
TRUTH_FIXES = ROOT / "bench" / "lfw_dev_truth_fixes.json"


def make_slice(dest: Path, people: int | None, photos: int | None, seed: int) -> Path:
    """Copy ``photos`` photos (all if None) of ``people`` random people (all if None) into ``dest``."""
    rng = random.Random(seed)
    names = sorted(p.name for p in LFW.iterdir() if p.is_dir())
    chosen = sorted(rng.sample(names, people)) if people else names
    if dest.exists():
        shutil.rmtree(dest)
    for n in chosen:
        files = sorted((LFW / n).glob("*.jpg"))
        if photos:
            files = sorted(rng.sample(files, min(photos, len(files))))
        (dest / n).mkdir(parents=True)
        for f in files:
            shutil.copy2(f, dest / n / f.name)
    return dest


def sim(folder: Path, db: Path, *args: str) -> dict:
    cmd = [sys.executable, "-m", "aspl", "annotate-sim", str(folder), "--db", str(db), "-q",
           "--truth-fixes", str(TRUTH_FIXES), *args]
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def cluster_purity(folder: Path, db: Path, thresholds=(0.5, 0.6, 0.7)) -> dict[str, float]:
    """Purity of the Batch tab's groups (:func:`aspl.service.batch.similarity_groups`, 12 groups of <= 24)
    over every face of a freshly imported library: the share of grouped faces that are their group's
    majority answer (a person, or "stranger")."""
    from collections import Counter

    from aspl.annotate_sim import folder_truth, load_truth_fixes
    from aspl.service.batch import similarity_groups
    from storage import Library

    with Library(db) as lib:
        truth = folder_truth(lib, folder, load_truth_fixes(TRUTH_FIXES))
        ids, X = lib.embeddings(lib.get_setting("backbone"))
    out = {}
    for t in thresholds:
        groups = similarity_groups(ids, X, t, 24, 12)
        n = sum(len(g.face_ids) for g in groups)
        maj = sum(Counter(truth.get(f) for f in g.face_ids).most_common(1)[0][1] for g in groups)
        out[str(t)] = round(maj / n, 4) if n else None
    return out


def run_slice(work: Path, name: str, people: int | None, photos: int | None, seed: int,
              reuse: bool = False, import_only: bool = False) -> list[dict]:
    """Import the slice (or reuse its pristine library with ``reuse``), then run every method on a copy."""
    folder = work / f"{name}-s{seed}"
    if not (reuse and folder.exists()):
        make_slice(folder, people, photos, seed)
    pristine = work / f"{name}-s{seed}.lib"
    done = pristine / ".imported"
    t0 = time.perf_counter()
    if not (reuse and done.exists()):
        if pristine.exists():
            shutil.rmtree(pristine)
        sim(folder, pristine, "--max-decisions", "0")  # import only
        done.write_text(str(time.perf_counter() - t0))
    import_s = float(done.read_text())
    if import_only:
        return []
    purity = cluster_purity(folder, pristine)
    print(json.dumps({"slice": name, "seed": seed, "group_purity": purity}), flush=True)
    rows = []
    runs = [("aspl", ()), ("aspl", ("--min-rel", "0.7"))] \
        + [("cluster", ("--cluster-distance", str(d))) for d in CLUSTER_DISTANCES]
    for method, extra in runs:
        db = work / "run.lib"
        if db.exists():
            shutil.rmtree(db)
        shutil.copytree(pristine, db)
        r = sim(folder, db, "--method", method, *extra)
        r.update(slice=name, seed=seed, import_seconds=round(import_s, 1), group_purity=purity,
                 cluster_distance=float(extra[1]) if method == "cluster" else None,
                 min_rel=float(extra[1]) if method == "aspl" and extra else None)
        rows.append(r)
        print(json.dumps({k: r[k] for k in ("slice", "seed", "method", "cluster_distance", "min_rel", "faces",
                                            "decisions", "hidden", "hidden_people",
                                            "auto_label_precision", "wrong_labels_left")}),
              flush=True)
    return rows


def table(rows: list[dict]) -> str:
    """Markdown: per slice and seed, the app's flow vs the best cluster threshold."""
    out = ["| slice | seed | faces (strangers) | aspl decisions (per face) | aspl + hide < 0.7 of the photo's largest "
           "face: decisions (per face; hidden, of them people) | cluster best decisions (per face, "
           "distance) | aspl auto-labels (precision) | suggestion top-1 | aspl keystrokes | cluster keystrokes | "
           "wrong left (aspl) | rounds | group purity at 0.5 / 0.6 / 0.7 |", "|" + "---|" * 13]
    keys = sorted({(r["slice"], r["seed"]) for r in rows}, key=lambda k: (k[0], k[1]))
    for sl, seed in keys:
        a = next(r for r in rows if (r["slice"], r["seed"], r["method"]) == (sl, seed, "aspl") and not r["min_rel"])
        h = next(r for r in rows if (r["slice"], r["seed"], r["method"]) == (sl, seed, "aspl") and r["min_rel"])
        c = min((r for r in rows if (r["slice"], r["seed"], r["method"]) == (sl, seed, "cluster")),
                key=lambda r: r["decisions"])
        prec = "-" if a["auto_label_precision"] is None else f"{a['auto_label_precision']:.1%}"
        top1 = "-" if a["suggestion_top1"] is None else f"{a['suggestion_top1']:.0%}"
        out.append(f"| {sl} | {seed} | {a['faces']} ({a['strangers_true']}) | {a['decisions']} "
                   f"({a['decisions_per_face']:.3f}) | {h['decisions']} ({h['decisions_per_face']:.3f}; "
                   f"{h['hidden']}, {h['hidden_people']}) | {c['decisions']} ({c['decisions_per_face']:.3f}, "
                   f"{c['cluster_distance']}) | {a['auto_labels']} ({prec}) | {top1} | {a['keystrokes']} | "
                   f"{c['keystrokes']} | {a['wrong_labels_left']} | {a['rounds']} | "
                   + " / ".join("-" if v is None else f"{v:.1%}" for v in a["group_purity"].values()) + " |")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/aspl-effort"))
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "effort.md")
    ap.add_argument("--quick", action="store_true", help="only the ~100-face slices")
    ap.add_argument("--reuse", action="store_true", help="reuse slices already imported under --work")
    ap.add_argument("--import-only", action="store_true", help="only import the slices (for a later --reuse)")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    slices = [("100-faces", 10, 10, s) for s in (0, 1, 2)]
    if not args.quick:
        slices += [("20-people", 20, None, s) for s in (0, 1)] + [("62-people", None, None, 0)]
    rows: list[dict] = []
    t0 = time.perf_counter()
    for name, people, photos, seed in slices:
        rows += run_slice(args.work, name, people, photos, seed, args.reuse, args.import_only)
    if args.import_only:
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    args.out.write_text(f"# Effort benchmark (`bench/effort_bench.py`, {time.perf_counter() - t0:.0f} s)\n\n"
                        + table(rows) + "\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
