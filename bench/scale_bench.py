"""Scale benchmark: the annotate key-press path, a round, and the index, on synthetic libraries of
10k-1M faces built through the storage API.

Faces are clustered 128-d unit vectors (``--people`` centres, Gaussian noise) with a tiny shared crop;
``--labelled`` of them get human labels (the rest are for the loop). ``--recall`` also measures the IVF
index's recall on the real lfw-dev dlib embeddings (the benchmark cache, if present).

    .venv/bin/python bench/scale_bench.py --faces 100000 --people 2000          # one size, a table
    .venv/bin/python bench/scale_bench.py --faces 10000 --people 1000 --json    # one JSON object
    .venv/bin/python bench/scale_bench.py --faces 1000000 --people 10000 --no-round
    .venv/bin/python bench/scale_bench.py --faces 100000 --people 2000 --dir /tmp/s100k --json   # keep the library
    .venv/bin/python bench/scale_bench.py --faces 100000 --people 2000 --dir /tmp/s100k --reuse --rounds 2

The round is one ``Service.run_round`` with the engine setting ``classifier`` (``--classifier``, default
``batched``): ``round_s`` (wall), ``round_cpu_s``, ``round_phases_s`` (the round's own progress steps:
``read_inputs`` vectors and labels, ``load_engine`` the stored loop, ``engine_step`` seeding, training,
scoring and selection, ``write`` auto-labels, queue and state), ``round_engine_wall_cpu_s`` (wall and CPU
seconds of the engine step's parts: ``seeding``, ``training``, ``scoring_selection``) and ``round_peak_rss_mb``
(the process's peak resident memory during the round: the peak is reset just before it where Linux
allows, ``/proc/self/clear_refs``; else the peak since start). ``vectors_read_s``: one
``Library.embeddings(backbone)`` (every vector of the backbone) before the round. The loop setting
``round_every`` is 0 here, so no round starts by itself after the timed answers (it would share the
cores with the timed round), and a timed round waits for any running background job first.

``--mix-lfw`` adds the 2,155 real lfw-dev faces (their dlib embeddings, 62 people named "LFW ...", labelled
at the same rate) to the synthetic library and reports the round's auto-labels on them
(``real_auto_labels``, ``real_auto_label_precision``): the engine's answers on real faces among many others.

``--import-photos N`` imports N small photos through the real ``Importer`` (a stand-in detector that finds one
face per photo and a stand-in 128-d embedder, so only what depends on the library's size is timed: the
database writes, the duplicate checks and the index load, adds and save) into the built library and into an
empty one, twice each (N and 3N photos), which splits the time into a fixed cost per import run
(``import_fixed_s``, ``import_fixed_s_empty``: mostly loading and saving the index) and a cost per photo
(``import_ms_per_photo``, ``import_ms_per_photo_empty``).

Key press = what the Annotate page calls between one answer and the next face drawn: ``confirm``,
``next_face``, ``face_view``, ``suggestions`` (k=5), the crops, ``last_action`` and the sidebar's
``stats``. CPU = ``time.process_time`` of this process; wall = ``time.perf_counter``.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from aspl.service import Service  # noqa: E402
from storage import IndexStore, Library  # noqa: E402
from storage.faces import NewFace  # noqa: E402

BACKBONE = "synthetic-128"


def _pick_labelled(rng: np.random.Generator, who: np.ndarray, labelled: float) -> np.ndarray:
    """Rows to label: a random ``labelled`` fraction, plus each person's first face."""
    first: dict[int, int] = {}
    for i, p in enumerate(who.tolist()):
        first.setdefault(p, i)
    pick = rng.permutation(len(who))[:int(labelled * len(who))]
    return np.unique(np.concatenate([pick, np.array(list(first.values()), dtype=np.int64)]))


def build(root: Path, faces: int, people: int, labelled: float, seed: int = 0, batch: int = 5000) -> dict:
    """A library at ``root`` with ``faces`` one-face photos of ``people`` people; returns truth and timing."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((people, 128)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    crop = np.full((16, 16, 3), 128, np.uint8)
    lib = Library(root)
    lib.set_setting("backbone", BACKBONE)
    who = rng.integers(0, people, faces)
    names = [f"Person {p:05d}" for p in range(people)]
    t0 = time.perf_counter()
    ids = np.zeros(faces, np.int64)
    for start in tqdm(range(0, faces, batch), desc="building", unit_scale=batch, file=sys.stderr):
        stop = min(faces, start + batch)
        X = centres[who[start:stop]] + 0.35 * rng.standard_normal((stop - start, 128)).astype(np.float32) / 8
        X /= np.linalg.norm(X, axis=1, keepdims=True)
        with lib.transaction():
            for i in range(start, stop):
                sha = hashlib.sha256(f"{seed}-{i}".encode()).hexdigest()
                _, fids = lib.add_image(f"synthetic/{i}.jpg", sha, 1000, 160, 160, [NewFace(
                    (10.0, 10.0, 150.0, 150.0), np.zeros((5, 2), np.float32), 0.99, crop,
                    {BACKBONE: X[i - start]})])
                ids[i] = fids[0]
    build_s = time.perf_counter() - t0
    pick = _pick_labelled(rng, who, labelled)
    with lib.transaction():
        pid = {p: lib.person_id(names[p], create=True) for p in range(people)}
        for i in pick:
            lib.add_label(int(ids[i]), pid[int(who[i])], "human", 1.0, annotator="bench")
    if lib.dialect == "postgresql":
        lib.db.raw("ANALYZE")  # planner statistics after a bulk load, as autovacuum would gather them
    t1 = time.perf_counter()
    IndexStore(lib).rebuild(BACKBONE)
    index_s = time.perf_counter() - t1
    lib.close()
    return {"truth": {int(ids[i]): names[int(who[i])] for i in range(faces)}, "build_s": build_s,
            "index_build_s": index_s, "labelled": int(len(pick))}


def build_bulk(root: Path, faces: int, people: int, labelled: float, seed: int = 0, batch: int = 50_000) -> dict:
    """Like :func:`build`, but rows go in with ``insert_all`` (tens of thousands per statement) instead of one
    ``add_image`` call per photo: for 1M-face libraries. The triggers keep counts and flags as usual; the
    embedding fingerprint is recomputed once at the end."""
    from storage.faces import encode_crop

    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((people, 128)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    crop = encode_crop(np.full((16, 16, 3), 128, np.uint8))
    lib = Library(root)
    lib.set_setting("backbone", BACKBONE)
    who = rng.integers(0, people, faces)
    names = [f"Person {p:05d}" for p in range(people)]
    t0 = time.perf_counter()
    db = lib.db
    for start in tqdm(range(0, faces, batch), desc="building (bulk)", unit_scale=batch, file=sys.stderr):
        stop = min(faces, start + batch)
        X = centres[who[start:stop]] + 0.35 * rng.standard_normal((stop - start, 128)).astype(np.float32) / 8
        X /= np.linalg.norm(X, axis=1, keepdims=True)
        with lib.transaction():
            db["images"].insert_all(({"id": i + 1, "path": f"synthetic/{i}.jpg", "sha256": f"{seed}-{i}",
                                      "size": 1000, "width": 160, "height": 160, "status": "ok",
                                      "imported_at": "2026-01-01T00:00:00+00:00"} for i in range(start, stop)),
                                     batch_size=10_000)
            db["faces"].insert_all(({"id": i + 1, "image_id": i + 1, "x1": 10.0, "y1": 10.0, "x2": 150.0,
                                     "y2": 150.0, "landmarks": "[]", "prob": 0.99, "crop": crop}
                                    for i in range(start, stop)), batch_size=10_000)
            db["embeddings"].insert_all(({"face_id": i + 1, "backbone": BACKBONE, "dim": 128,
                                          "vector": X[i - start].tobytes()} for i in range(start, stop)),
                                        batch_size=10_000)
    lib.embedding_fingerprint(BACKBONE, recompute=True)
    build_s = time.perf_counter() - t0
    pick = _pick_labelled(rng, who, labelled)
    with lib.transaction():
        pid = {p: lib.person_id(names[p], create=True) for p in range(people)}
        db["labels"].insert_all(({"face_id": int(i) + 1, "person_id": pid[int(who[i])], "source": "human",
                                  "confidence": 1.0, "annotator": "bench", "created_at": "2026-01-01T00:00:00+00:00"}
                                 for i in pick), batch_size=10_000)
    if lib.dialect == "postgresql":
        lib.db.raw("ANALYZE")  # planner statistics after a bulk load, as autovacuum would gather them
    t1 = time.perf_counter()
    IndexStore(lib).rebuild(BACKBONE)
    index_s = time.perf_counter() - t1
    lib.close()
    return {"truth": {i + 1: names[int(who[i])] for i in range(faces)}, "build_s": build_s,
            "index_build_s": index_s, "labelled": int(len(pick))}


def keypresses(svc: Service, truth: dict[int, str], n: int) -> dict:
    """``n`` answers through the service calls the Annotate page makes; per-call CPU and wall."""
    lib = svc.library
    calls: dict[str, list[float]] = {}
    cpu, wall = [], []

    def timed(name, fn, *a, **kw):
        c0, w0 = time.process_time(), time.perf_counter()
        out = fn(*a, **kw)
        calls.setdefault(name, []).append(time.perf_counter() - w0)
        return out, time.process_time() - c0

    face = svc.next_face("bench")
    for _ in range(n):
        c0, w0 = time.process_time(), time.perf_counter()
        timed("confirm", svc.confirm, face, lib.person_id(truth[face]), "bench")
        face, _ = timed("next_face", svc.next_face, "bench")
        if face is None:
            break
        timed("face_view", svc.face_view, face)
        sugg, _ = timed("suggestions", svc.suggestions, face, 5)
        timed("crops", lambda: [svc.face_crop_jpeg(face)] + [svc.face_crop_jpeg(s.thumb_face_id) for s in sugg
                                                               if s.thumb_face_id])
        timed("last_action", svc.last_action, "bench")
        timed("stats", svc.stats, False)
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    ms = lambda v, q: round(1000 * float(np.percentile(v, q)), 2)  # noqa: E731
    return {"keypress_cpu_ms_p50": ms(cpu, 50), "keypress_cpu_ms_p95": ms(cpu, 95),
            "keypress_wall_ms_p50": ms(wall, 50), "keypress_wall_ms_p95": ms(wall, 95),
            "calls_wall_ms_p50": {k: ms(v, 50) for k, v in calls.items()}, "keypresses": len(cpu)}


def batch_page(svc: Service, n: int = 3) -> dict:
    """Seconds to build the Batch tab's groups after a round (first call, then warm calls: an answer
    changes what they hold, so each warm call follows one batch accept)."""
    t0 = time.perf_counter()
    groups = svc.batch_groups("bench")
    out = {"batch_groups_first_s": round(time.perf_counter() - t0, 3), "batch_groups": len(groups)}
    warm = []
    for _ in range(n):
        g = next((g for g in groups if g.kind in ("person", "check") and g.face_ids), None)
        if g is None:
            break
        svc.accept_batch(g.face_ids[:1], g.person_id, "bench", deselected=g.face_ids[1:2])
        t0 = time.perf_counter()
        groups = svc.batch_groups("bench")
        warm.append(time.perf_counter() - t0)
    if warm:
        out["batch_groups_after_accept_s"] = round(float(np.median(warm)), 3)
    return out


def index_recall(X: np.ndarray, queries: int = 200, k: int = 10, seed: int = 0) -> dict:
    """Recall@k of the IVF index (as the library builds it past its threshold) against exact search."""
    import faiss

    from storage.index import FaceIndex

    X = np.ascontiguousarray(X, np.float32)
    ids = np.arange(len(X), dtype=np.int64)
    ivf = FaceIndex.build(ids, X, ivf_threshold=1, use_gpu=False)
    flat = faiss.IndexFlatIP(X.shape[1])
    flat.add(X)
    q = X[np.random.default_rng(seed).choice(len(X), min(queries, len(X)), replace=False)]
    t0 = time.perf_counter()
    _, got = ivf.search(q, k)
    ivf_ms = 1000 * (time.perf_counter() - t0) / len(q)
    _, want = flat.search(q, k)
    hits = sum(len(set(g.tolist()) & set(w.tolist())) for g, w in zip(got, want))
    return {"faces": len(X), "nlist": int(ivf._index.nlist), "nprobe": int(ivf._index.nprobe),
            f"recall@{k}": round(hits / (k * len(q)), 4), "ivf_query_ms": round(ivf_ms, 3)}


def add_lfw(root: Path, truth: dict[int, str], labelled: float, seed: int = 0) -> list[int]:
    """Add the real lfw-dev faces (dlib embeddings from the benchmark cache) to the library at ``root`` as
    one-face photos of people named "LFW <name>", ``labelled`` of them (and each person's first) with human
    labels; ``truth`` gets their names. Returns their face ids."""
    from aspl.datasets import folder_embeddings

    data = REPO.parent / "shared" / "data" / "lfw-dev"
    emb = folder_embeddings(data, backbone="dlib-resnet", cache_dir=REPO / ".cache" / "emb", progress=False)
    names = [f"LFW {n.replace('_', ' ')}" for n in emb.labels]
    lib = Library(root)
    crop = np.full((16, 16, 3), 128, np.uint8)
    ids = []
    with lib.transaction():
        for i, x in enumerate(np.asarray(emb.X, np.float32)):
            sha = hashlib.sha256(f"lfw-{seed}-{i}".encode()).hexdigest()
            _, fids = lib.add_image(f"lfw/{i}.jpg", sha, 1000, 160, 160, [NewFace(
                (10.0, 10.0, 150.0, 150.0), np.zeros((5, 2), np.float32), 0.99, crop, {BACKBONE: x})])
            ids.append(int(fids[0]))
            truth[int(fids[0])] = names[i]
        who = np.unique(np.asarray(names), return_inverse=True)[1]
        for i in _pick_labelled(np.random.default_rng(seed), who, labelled):
            lib.add_label(ids[i], lib.person_id(names[i], create=True), "human", 1.0, annotator="bench")
    IndexStore(lib).rebuild(BACKBONE)
    lib.close()
    return ids


def real_auto_labels(lib: Library, real: list[int], truth: dict[int, str]) -> dict:
    """Auto-labels on the real lfw-dev faces mixed into the library: how many, and how many right."""
    names = lib.names_of_people()
    real_set = set(real)
    auto = [(r["face_id"], names.get(lib.resolve_person(r["person_id"]))) for r in lib.label_rows(("auto",))
            if r["face_id"] in real_set]
    right = sum(truth[f] == n for f, n in auto)
    return {"real_faces": len(real), "real_auto_labels": len(auto),
            "real_auto_label_precision": round(right / len(auto), 4) if auto else None}


def real_recall(k: int = 10) -> dict | None:
    """:func:`index_recall` on the real lfw-dev dlib embeddings (the benchmark cache), or None without it."""
    from aspl.datasets import folder_embeddings

    cache = REPO / ".cache" / "emb"
    data = REPO.parent / "shared" / "data" / "lfw-dev"
    if not cache.is_dir() or not data.is_dir():
        return None
    emb = folder_embeddings(data, backbone="dlib-resnet", cache_dir=cache, progress=False)
    return index_recall(emb.X, k=k)


def _reset_peak_rss() -> bool:
    """Reset this process's peak RSS (``VmHWM``) where Linux allows it; whether it did."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_rss_mb() -> float:
    """Peak RSS in MiB: ``VmHWM`` (since the last reset) where readable, else ``ru_maxrss`` (since start)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


#: ``Service.run_round``'s progress steps (``done`` out of 5) -> the bench's names of the phase they start.
ROUND_PHASES = {0: "read_inputs", 1: "load_engine", 2: "engine_step", 3: "write", 5: "done"}


#: Parts of the engine step timed inside a round: (module, class, method) -> the bench's name.
ENGINE_PARTS = {("aspl.engine.aspl_engine", "ASPLEngine", "_update_seeds"): "seeding",
                ("aspl.engine.base", "Engine", "_fit"): "training",
                ("aspl.engine.aspl_engine", "ASPLEngine", "_decide"): "scoring_selection"}


@contextlib.contextmanager
def engine_part_timer():
    """Wall and CPU seconds of the engine step's parts (:data:`ENGINE_PARTS`) while inside; yields the dict
    ``{part: [wall, cpu]}`` it fills. The methods are wrapped on their classes and restored on exit."""
    import importlib

    spent: dict[str, list[float]] = {}
    saved = []
    for (mod, cls, meth), name in ENGINE_PARTS.items():
        klass = getattr(importlib.import_module(mod), cls)
        fn = klass.__dict__[meth]

        def timed(*a, _fn=fn, _name=name, **kw):
            c0, w0 = time.process_time(), time.perf_counter()
            try:
                return _fn(*a, **kw)
            finally:
                part = spent.setdefault(_name, [0.0, 0.0])
                part[0] += time.perf_counter() - w0
                part[1] += time.process_time() - c0

        saved.append((klass, meth, fn))
        setattr(klass, meth, timed)
    try:
        yield spent
    finally:
        for klass, meth, fn in saved:
            setattr(klass, meth, fn)


def timed_round(svc: Service) -> dict:
    """One ``Service.run_round``: wall and CPU seconds, seconds per progress step, the engine step's parts
    (wall / CPU), peak RSS during it."""
    marks: list[tuple[float, str]] = []
    while any(svc.jobs.running(k) for k in ("round", "import", "backbone", "index")):
        time.sleep(0.5)  # a background job would share the cores with the timed round
    load = os.getloadavg()[0]
    reset = _reset_peak_rss()
    c0, w0 = time.process_time(), time.perf_counter()
    with engine_part_timer() as parts:
        m = svc.run_round("bench", lambda done, total, msg: marks.append((time.perf_counter(),
                                                                          ROUND_PHASES.get(done, msg))))
    w1 = time.perf_counter()
    marks.append((w1, "end"))
    phases = {name: round(t1 - t0, 2) for (t0, name), (t1, _) in zip(marks, marks[1:]) if name != "done"}
    return {"round_s": round(w1 - w0, 1), "round_cpu_s": round(time.process_time() - c0, 1),
            "round_phases_s": phases,
            "round_engine_wall_cpu_s": {k: [round(w, 2), round(c, 2)] for k, (w, c) in parts.items()},
            "round_peak_rss_mb": _peak_rss_mb(),
            "round_peak_rss_since": "round start" if reset else "process start",
            "round_auto_labels": m["auto_labels"], "round_queries": m["queries"], "round_unclear": m["unclear"],
            "round_people_modelled": m["people_modelled"],
            "round_loadavg_1m": [round(load, 2), round(os.getloadavg()[0], 2)]}  # other work on the machine


class _OneFace:
    """Stand-in detector: one face per photo (the photo itself as the crop)."""

    min_face_size = 20

    def detect(self, images):
        from models.detection import DetectedFace

        return [[DetectedFace((4.0, 4.0, 60.0, 60.0), np.zeros((5, 2), np.float32), 0.99,
                              np.asarray(im.convert("RGB").resize((32, 32)), np.uint8))] for im in images]


class _HashEmbedder:
    """Stand-in embedder under the bench's backbone name: a unit 128-d vector from the crop's bytes."""

    def __init__(self):
        from models import BackboneInfo

        self.info = BackboneInfo(name=BACKBONE, family="synthetic", input_size=32, embedding_dim=128)

    def embed(self, crops, batch_size: int = 64):
        X = np.stack([np.random.default_rng(int.from_bytes(hashlib.sha256(c.tobytes()).digest()[:8], "little"))
                      .standard_normal(128) for c in crops]).astype(np.float32)
        return X / np.linalg.norm(X, axis=1, keepdims=True)


def import_seconds(root: Path, photos: int, work: Path, seed: int) -> float:
    """Seconds to import ``photos`` new small photos into the library at ``root``."""
    from PIL import Image

    from aspl.importer import Importer

    folder = work / f"photos-{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(photos):
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    lib = Library(root)
    if not lib.get_setting("backbone"):
        lib.set_setting("backbone", BACKBONE)
    imp = Importer(lib, IndexStore(lib), detector=_OneFace(), embedder=_HashEmbedder(), batch_size=16)
    t0 = time.perf_counter()
    s = imp.run(folder, progress=False)
    dt = time.perf_counter() - t0
    lib.close()
    assert s.faces == photos, s
    return dt


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faces", type=int, default=10_000)
    ap.add_argument("--people", type=int, default=1_000)
    ap.add_argument("--labelled", type=float, default=0.1, help="fraction of faces with human labels")
    ap.add_argument("--keys", type=int, default=50, help="key presses to time")
    ap.add_argument("--no-round", action="store_true", help="skip the round (slow at large sizes)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="rounds to time (after the first, each follows --keys answers: round2, ...)")
    ap.add_argument("--method", default="aspl-guarded", help="the app's default (%(default)s)")
    ap.add_argument("--classifier", default="batched", choices=("batched", "liblinear"),
                    help="the engine setting classifier (one-vs-all SVMs)")
    ap.add_argument("--engine", default="{}", help="more JSON engine settings, e.g. '{\"query_size\": 50}'")
    ap.add_argument("--dir", type=Path, default=None, help="where to build (default: a temp folder)")
    ap.add_argument("--reuse", action="store_true", help="reuse the library already built in --dir")
    ap.add_argument("--bulk", action="store_true", help="build with insert_all (for 1M faces)")
    ap.add_argument("--recall", action="store_true", help="measure IVF recall@10 against exact search")
    ap.add_argument("--mix-lfw", action="store_true",
                    help="add the real lfw-dev faces (dlib, from the benchmark cache) to the synthetic library "
                         "and report the round's auto-label precision on them")
    ap.add_argument("--import-photos", type=int, default=0,
                    help="import this many small photos into the built library and into an empty one")
    ap.add_argument("--pg", default=None, metavar="URL",
                    help="build the library in this (empty) PostgreSQL database instead of a SQLite file")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    work = a.dir or Path(tempfile.mkdtemp(prefix="aspl-scale-"))
    root = work / "lib"
    saved = work / "truth.json"
    if a.pg:  # the library on PostgreSQL: the database at the URL, its index files in --dir/lib
        os.environ["ASPL_DATA"] = str(root)
        root = a.pg
    if a.reuse and saved.is_file():
        b = json.loads(saved.read_text())
        b["truth"] = {int(k): v for k, v in b["truth"].items()}
    else:
        b = (build_bulk if a.bulk else build)(root, a.faces, a.people, a.labelled)
        if a.mix_lfw:
            b["real"] = add_lfw(root, b["truth"], a.labelled)
        saved.write_text(json.dumps(b))
    lib = Library(root)
    svc = Service(lib)
    engine = {"min_labels": 1, "classifier": a.classifier, **json.loads(a.engine)}
    # round_every 0: no round starts by itself after the timed answers (it would run beside the timed one)
    svc.set_loop_settings({"method": a.method, "engine": engine, "round_every": 0})
    out = {"engine": lib.dialect, "faces": len(b["truth"]), "people": len(set(b["truth"].values())),
           "labelled": b["labelled"],
           "method": a.method, "engine": engine, "build_s": round(b["build_s"], 1),
           "index_build_s": round(b["index_build_s"], 2)}
    t0 = time.perf_counter()
    ids, X = lib.embeddings(BACKBONE)
    out.update(vectors_read_s=round(time.perf_counter() - t0, 3), vectors=int(len(ids)))
    del ids, X
    if a.keys:
        out.update(keypresses(svc, b["truth"], a.keys))
    if not a.no_round:
        out.update(timed_round(svc))
        if b.get("real"):
            out.update(real_auto_labels(lib, b["real"], b["truth"]))
        if a.keys:
            out.update({f"after_round_{k}": v for k, v in keypresses(svc, b["truth"], a.keys).items()
                        if k.startswith("keypress")})
        out.update(batch_page(svc))
        for i in range(2, a.rounds + 1):  # the next rounds: warm start, the --keys answers since the last
            r = timed_round(svc)
            out[f"round{i}"] = {k[len("round_"):]: v for k, v in r.items()}
            if a.keys:
                keypresses(svc, b["truth"], a.keys)
    if a.recall:
        ids, X = lib.embeddings(BACKBONE)
        out["ivf_recall_synthetic"] = index_recall(X)
        out["ivf_recall_lfw_dlib"] = real_recall()
    if a.import_photos:
        n = a.import_photos
        with tempfile.TemporaryDirectory(prefix="aspl-import-") as tmp:
            out["import_photos"] = [n, 3 * n]
            for key, target, seed in (("_empty", Path(tmp) / "empty", 1), ("", root, 3)):
                t1 = import_seconds(target, n, Path(tmp), seed)
                t3 = import_seconds(target, 3 * n, Path(tmp), seed + 1)
                per = max(0.0, (t3 - t1) / (2 * n))
                out[f"import_ms_per_photo{key}"] = round(1000 * per, 2)
                out[f"import_fixed_s{key}"] = round(max(0.0, t1 - n * per), 2)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    if a.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:32} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
