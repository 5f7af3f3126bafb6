"""Index structures for large libraries: memory per face, build time and recall@k against exact search.

Builds each structure through :meth:`storage.index.FaceIndex.build` (the code the library's background
index job runs; ``"auto"`` is the default structure, anything else a FAISS factory string, the library
setting ``index``) over ``--faces`` synthetic clustered 128-d unit vectors (``--people`` people, the
generator of ``classifier_bench.py``) plus the 2,155 real lfw-dev faces (dlib embeddings from the benchmark
cache, unit-normalised), and reports per structure: bytes per face (serialised index / faces), build
seconds, query milliseconds, and recall@k against exact inner-product search for synthetic queries and for
the real faces as queries (their neighbours searched among all faces).

    .venv/bin/python bench/index_bench.py --faces 1000000 --people 10000
    .venv/bin/python bench/index_bench.py --faces 100000 --factories auto IVF1024,PQ32 --json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "bench"), str(REPO / "tests")]

DEFAULT_FACTORIES = ("auto", "IVF4096,PQ64", "IVF4096,PQ32", "IVF4096,SQ8")


def real_faces() -> np.ndarray | None:
    """The lfw-dev dlib embeddings (unit-normalised), or None without the data or the cache."""
    from aspl.datasets import folder_embeddings

    data, cache = REPO.parent / "shared" / "data" / "lfw-dev", REPO / ".cache" / "emb"
    if not data.is_dir():
        return None
    X = np.asarray(folder_embeddings(data, backbone="dlib-resnet", cache_dir=cache, progress=False).X, np.float32)
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def recall(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.mean([len(set(g.tolist()) & set(w.tolist())) / want.shape[1] for g, w in zip(got, want)]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faces", type=int, default=1_000_000)
    ap.add_argument("--people", type=int, default=10_000)
    ap.add_argument("--factories", nargs="+", default=list(DEFAULT_FACTORIES))
    ap.add_argument("--queries", type=int, default=500, help="synthetic queries")
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument("--nprobe", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)

    import faiss

    from classifier_bench import clustered
    from storage.index import FaceIndex

    X, _ = clustered(a.faces, a.people, 128, a.seed)
    real = real_faces()
    n_syn = len(X)
    if real is not None:
        if real.shape[1] != X.shape[1]:
            raise SystemExit(f"real faces are {real.shape[1]}-d, synthetic {X.shape[1]}-d")
        X = np.concatenate([X, real])
    ids = np.arange(len(X), dtype=np.int64)
    rng = np.random.default_rng(a.seed)
    q_syn = X[rng.choice(n_syn, min(a.queries, n_syn), replace=False)]
    q_real = X[n_syn:] if real is not None else None
    exact = faiss.IndexFlatIP(X.shape[1])
    exact.add(X)
    want_syn = exact.search(q_syn, a.k)[1]
    want_real = exact.search(q_real, a.k)[1] if q_real is not None else None
    del exact
    rows = []
    for factory in a.factories:
        t0 = time.perf_counter()
        idx = FaceIndex.build(ids, X, factory=factory, nprobe=a.nprobe, use_gpu=None)
        build_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        got_syn = idx.search(q_syn, a.k)[1]
        query_ms = 1000 * (time.perf_counter() - t0) / len(q_syn)
        row = {"factory": factory, "kind": idx.kind, "faces": int(idx.ntotal), "real_faces": 0 if real is None
               else len(real), "bytes_per_face": round(idx.memory_bytes() / idx.ntotal, 1),
               "build_s": round(build_s, 1), "query_ms": round(query_ms, 3), "nprobe": a.nprobe,
               f"recall@{a.k}_synthetic": round(recall(got_syn, want_syn), 4)}
        if q_real is not None:
            row[f"recall@{a.k}_real"] = round(recall(idx.search(q_real, a.k)[1], want_real), 4)
        rows.append(row)
        print(json.dumps(row) if a.json else "  ".join(f"{k}={v}" for k, v in row.items()), flush=True)
        del idx
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
