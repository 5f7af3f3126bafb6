"""Benchmark of the two one-vs-all classifiers: liblinear (``OneVsAllSVM``) and ``BatchedOneVsAll``.

Synthetic clustered faces (``--faces`` x ``--people`` x ``--dims``, unit-norm,
people in look-alike groups, uneven face counts; 70% of the faces labelled
with weight 1, 25% pseudo-labelled with weights in (0.1, 1], 5% "none of
them" (-1)), every face a training row: the worst case of one engine round.
Times one fit and the scoring of every face (liblinear: the dense score
matrix + argmax; batched: :meth:`~aspl.engine.batched.BatchedOneVsAll.top2`),
each classifier in its own process so peak RSS is its own; for the batched
classifier also the next round's fit (1% of the faces relabelled), warm-started. Reports CPU
seconds (``time.process_time``, all threads), wall seconds, peak RSS
(``resource.getrusage``), test accuracy on held-out faces and top-1 agreement
with liblinear where liblinear ran. ``--lfw`` adds the agreement on lfw-dev
(dlib embeddings) for the engine's kind of training set.

    .venv/bin/python bench/classifier_bench.py --faces 20000 --people 500
    .venv/bin/python bench/classifier_bench.py --faces 100000 --people 2000 --classifiers batched
    .venv/bin/python bench/classifier_bench.py --classifiers batched batched-torch [--torch-device cuda]
    .venv/bin/python bench/classifier_bench.py --lfw
    .venv/bin/python bench/classifier_bench.py --lfw --project 16 --lfw-seeds 3 --sim-rounds 9
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from test_engine_batched import _lfw_round as lfw_round  # noqa: E402  (the training sets the tests check)

CLASSIFIERS = ("liblinear", "batched")
#: Benchmark variants: ``batched-sub`` is the batched classifier with ``--max-negatives``, ``batched-torch``
#: the batched classifier on the torch device ``--torch-device`` (``cpu``; ``cuda`` on a GPU machine).
VARIANTS = CLASSIFIERS + ("batched-sub", "batched-torch")
#: Face noise around a person's centre and weight of the look-alike group's shared direction.
SPREAD, SHARED = 1.2, 1.2


def clustered(faces: int, people: int, dims: int = 128, seed: int = 0, spread: float = SPREAD,
              shared: float = SHARED, draw: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unit-norm faces around person centres; people come in look-alike groups of ~20, sizes uneven.

    The people depend on ``seed`` only, the faces also on ``draw`` (another draw: held-out faces).
    """
    rng = np.random.default_rng(seed)
    groups = rng.standard_normal((max(1, people // 20), dims))
    centres = rng.standard_normal((people, dims)) + shared * groups[rng.integers(groups.shape[0], size=people)]
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    size = rng.lognormal(0.0, 0.75, people)
    counts = np.maximum(2, np.floor(size / size.sum() * faces)).astype(np.int64)
    counts[np.argsort(-size)[: max(0, faces - counts.sum())]] += 1
    y = np.repeat(np.arange(people), counts)[:faces]
    rng = np.random.default_rng([seed, draw])
    X = centres[y] + spread * rng.standard_normal((y.size, dims)) / np.sqrt(dims)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    perm = rng.permutation(y.size)
    return X[perm].astype(np.float32), y[perm]


def training_rows(y: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels and weights of one round: 70% labelled, 25% pseudo-labelled (weight 0.1-1), 5% -1."""
    rng = np.random.default_rng([seed, 1])
    u = rng.random(y.size)
    lab = y.copy()
    w = np.ones(y.size)
    pseudo = (u >= 0.70) & (u < 0.95)
    w[pseudo] = rng.uniform(0.1, 1.0, pseudo.sum())
    lab[u >= 0.95] = -1
    return lab, w


def make(name: str, **kw):
    from aspl.engine.batched import BatchedOneVsAll
    from aspl.engine.classifier import OneVsAllSVM

    return (BatchedOneVsAll if name == "batched" else OneVsAllSVM)(**kw)


def run_one(args: argparse.Namespace) -> None:
    """Child process: fit + score one classifier, print a JSON line, save top-1 columns to ``--save``."""
    X, y = clustered(args.faces, args.people, args.dims, args.seed)
    X_test, y_test = clustered(args.faces // 10, args.people, args.dims, args.seed, draw=1)  # held out
    lab, w = training_rows(y, args.seed)
    kw = {"min_labels": 1}
    if args.one == "batched-sub":
        kw["max_negatives"] = args.max_negatives
    if args.one != "liblinear" and args.n_jobs > 1:
        kw["n_jobs"] = args.n_jobs
    if args.one == "batched-torch":
        kw["device"] = args.torch_device
    elif args.one != "liblinear":
        kw["device"] = "numpy"
    base = args.one.replace("-sub", "").replace("-torch", "")
    m = make(base, **kw)
    t0, c0 = time.perf_counter(), time.process_time()
    m.fit(X, lab, w)
    t1, c1 = time.perf_counter(), time.process_time()
    if args.one != "liblinear":
        top = m.top2(X).first
        test = m.top2(X_test).first
    else:
        top = m.decision_function(X).argmax(axis=1)
        test = m.decision_function(X_test).argmax(axis=1)
    t2, c2 = time.perf_counter(), time.process_time()
    np.save(args.save, m.classes_[top])
    np.save(str(args.save).replace(".npy", "-test.npy"), m.classes_[test])
    out = {"classifier": args.one + (f" (max_negatives={args.max_negatives})" if "sub" in args.one else "")
           + (f" (device={args.torch_device})" if "torch" in args.one else "")
           + (f" (n_jobs={args.n_jobs})" if args.one != "liblinear" and args.n_jobs > 1 else ""),
           "fit_cpu": c1 - c0, "fit_wall": t1 - t0, "score_cpu": c2 - c1,
           "score_wall": t2 - t1, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "people": int(m.classes_.size), "test_accuracy": float((m.classes_[test] == y_test).mean())}
    if args.one != "liblinear":
        out.update(passes=int(m.n_passes_), newton_max=int(m.n_iter_.max()))
        # the next round: 1% of the faces get a (new) label, warm start from this fit
        rng = np.random.default_rng([args.seed, 2])
        ch = rng.choice(y.size, max(1, y.size // 100), replace=False)
        lab2 = lab.copy()
        lab2[ch] = np.where(lab[ch] == y[ch], -1, y[ch])  # labelled faces leave, others get their person
        t0, c0 = time.perf_counter(), time.process_time()
        m2 = make(base, **kw).fit(X, lab2, w, init=m)
        out.update(warm_fit_cpu=time.process_time() - c0, warm_fit_wall=time.perf_counter() - t0,
                   warm_people_stepped=int((m2.n_iter_ > 1).sum()))
    print(json.dumps(out))


def synthetic(args: argparse.Namespace) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        preds = {}
        for name in args.classifiers:
            save = Path(tmp) / f"{name}.npy"
            cmd = [sys.executable, __file__, "--one", name, "--save", str(save), "--faces", str(args.faces),
                   "--people", str(args.people), "--dims", str(args.dims), "--seed", str(args.seed)]
            if name == "batched-sub":
                cmd += ["--max-negatives", str(args.max_negatives)]
            cmd += ["--n-jobs", str(args.n_jobs), "--torch-device", args.torch_device]
            res = subprocess.run(cmd, capture_output=True, text=True, check=True)
            r = json.loads(res.stdout.strip().splitlines()[-1])
            preds[name] = (np.load(save), np.load(str(save).replace(".npy", "-test.npy")))
            rows.append((name, r))
        ref_name = "liblinear" if "liblinear" in preds else "batched"
        if ref_name in preds:
            for name, r in rows:
                if name == ref_name:
                    continue
                mine, ref = preds[name], preds[ref_name]
                r[f"top1_agreement_train_vs_{ref_name}"] = float((mine[0] == ref[0]).mean())
                r[f"top1_agreement_test_vs_{ref_name}"] = float((mine[1] == ref[1]).mean())
        rows = [r for _, r in rows]
    for r in rows:
        print(json.dumps({"faces": args.faces, "people": args.people, "dims": args.dims, **r}), flush=True)
    return rows


def lfw(args: argparse.Namespace) -> dict:
    """Agreement on lfw-dev dlib embeddings for an engine-like training set (see tests/test_engine_batched.py)."""
    from aspl.datasets import folder_embeddings
    from aspl.engine.selection import self_paced_labels

    emb = folder_embeddings(REPO.parent / "shared" / "data" / "lfw-dev", backbone="dlib-resnet",
                            cache_dir=REPO / ".cache" / "emb", progress=False)
    X, names = emb.X, np.asarray(emb.labels)
    _, y = np.unique(names, return_inverse=True)
    if args.project:  # a weak backbone: fixed random projection, re-normalised (as bench/engine_bench.py)
        Z = X @ np.random.default_rng(0).standard_normal((X.shape[1], args.project))
        X = (Z / np.linalg.norm(Z, axis=1, keepdims=True)).astype(np.float32)
    out = {}
    for seed in range(args.lfw_seeds):
        lab, w = lfw_round(y, seed)
        tr = w > 0
        res = {}
        for name in CLASSIFIERS:
            m = make(name, min_labels=1)
            c0 = time.process_time()
            m.fit(X[tr], lab[tr], w[tr])
            res[name] = (m, time.process_time() - c0, m.decision_function(X))
        Sa, Sb = res["liblinear"][2], res["batched"][2]
        r = {"train_rows": int(tr.sum()), "people": int(Sa.shape[1]),
             "top1": float((Sa.argmax(1) == Sb.argmax(1)).mean()), "max_abs_diff": float(np.abs(Sa - Sb).max()),
             "fit_cpu_liblinear": res["liblinear"][1], "fit_cpu_batched": res["batched"][1]}
        for lam in (0.12, 0.5, 0.9):
            la = self_paced_labels(Sa, np.full(Sa.shape[1], lam)).labels
            lb = self_paced_labels(Sb, np.full(Sb.shape[1], lam)).labels
            r[f"pseudo_{lam}"] = float((la == lb).mean())
        out[seed] = r
        print(json.dumps({"lfw_seed": seed, **r}), flush=True)
    # the engine end to end: the simulation protocol with either classifier (aspl-margin, the app's default)
    from aspl.engine.simulate import SimulationConfig, simulate

    for seed in range(args.sim_seeds):
        res = {}
        for name in CLASSIFIERS:
            c0 = time.process_time()
            rows = simulate(X, y, SimulationConfig(methods=("aspl-margin",), rounds=args.sim_rounds, seed=seed,
                                                   settings={"min_labels": 1, "classifier": name}),
                            progress=False)
            res[name] = (rows, time.process_time() - c0)
        a, b = res["liblinear"][0], res["batched"][0]
        r = {"sim_seed": seed, "rounds": len(a), "rows_identical": sum(x == z for x, z in zip(a, b)),
             "final_accuracy": [a[-1]["test_accuracy"], b[-1]["test_accuracy"]],
             "auto_labels_last_round": [a[-1]["pseudo_labels"], b[-1]["pseudo_labels"]],
             "max_accuracy_gap": max(abs(x["test_accuracy"] - z["test_accuracy"]) for x, z in zip(a, b)),
             "cpu_s": [res["liblinear"][1], res["batched"][1]]}
        print(json.dumps(r), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--faces", type=int, default=20000)
    ap.add_argument("--people", type=int, default=500)
    ap.add_argument("--dims", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--classifiers", nargs="+", default=list(CLASSIFIERS), choices=VARIANTS)
    ap.add_argument("--max-negatives", type=int, default=10000, help="batched-sub: shared negative subsample")
    ap.add_argument("--n-jobs", type=int, default=1, help="batched: threads (n_jobs)")
    ap.add_argument("--torch-device", default="cpu", help="batched-torch: the torch device (cpu, cuda)")
    ap.add_argument("--lfw", action="store_true", help="agreement on lfw-dev instead of synthetic data")
    ap.add_argument("--lfw-seeds", type=int, default=5, help="training sets compared on lfw-dev")
    ap.add_argument("--sim-seeds", type=int, default=3, help="simulation runs compared on lfw-dev")
    ap.add_argument("--sim-rounds", type=int, default=10)
    ap.add_argument("--project", type=int, default=0, help="lfw: random projection to this many dims (0: off)")
    ap.add_argument("--one", choices=VARIANTS, help=argparse.SUPPRESS)
    ap.add_argument("--save", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        run_one(args)
    elif args.lfw:
        lfw(args)
    else:
        synthetic(args)


if __name__ == "__main__":
    main()
