#!/usr/bin/env python
"""Fault-injection and security probe: SIGKILLs, bad files, hostile uploads, concurrency, auth, damaged files.

    python bench/fault_probe.py [--only 1,5] [--quick] [--seed N] [--json] [--out bench/results/faults.md] [--keep]

Prints one Markdown table (``--json``: one JSON object) with a row per probe:

    probe | trials | failures | data lost | notes

*failure*: the behaviour the app must have did not happen (a crash or traceback, a hang, a wrong outcome,
access granted); *data lost*: committed data missing or inconsistent afterwards (photos imported before a
kill missing, duplicated faces, an index that does not agree with the database, human labels lost, gaps in
the event log, ...). A trial counts once in each column however many checks it failed; every failed check
is listed under the table (``--out`` writes table and details to a file).

Probes (default trials; ``--quick`` runs a few of each for a smoke run):

1. SIGKILLs at random moments of ``python -m aspl import`` of 16 real lfw-dev photos (40 kills over 4
   libraries, then a final complete run each).
2. SIGKILLs of a process running ``Service.run_round()`` in a loop on a synthetic library (10 kills).
3. SIGKILLs of ``python -m aspl use-backbone lrcn-small`` / ``embed --backbone lrcn-small`` (5 kills).
4. SIGKILLs inside each schema migration (3 per migration; tests/test_faults_kill.py's approach).
5. Bad files (50+ distinct) mixed with good photos, imported with ``Importer`` under a timeout.
6. Hostile uploads (zips and file names) through ``Service.save_uploads``.
7. Four processes making 800 decisions while rounds run and another process imports.
8. Authentication and authorisation probes (AppTest of app.py, sessions, throttling, import roots, CSV
   export, planted pickles).
9. Damaged index files and damaged ``library.db-wal`` files after a killed writer.

Each probe works in its own temporary folder (kept with ``--keep``). Corpus builders are imported from the
tests (tests/apphelpers.py, tests/test_import_faults.py, tests/test_uploads_faults.py,
tests/test_faults_kill.py, tests/test_index_integrity.py, tests/test_storage_loop_state.py).
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import hashlib
import io
import json
import os
import random
import re
import select
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import traceback
import warnings
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"
BENCH = REPO / "bench"
for _p in (str(BENCH), str(TESTS), str(REPO)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

LFW = Path(os.environ.get("ASPL_LFW_DEV", REPO.parent / "shared" / "data" / "lfw-dev"))
PY = sys.executable
BACKBONE = "dlib-resnet"
SYNTH = "synthetic"
IMPORT_PEOPLE = ("Ariel_Sharon", "Hans_Blix", "Laura_Bush", "Tony_Blair")

PROBES: dict[int, tuple[str, Callable]] = {}


def probe(n: int, title: str):
    def reg(fn):
        PROBES[n] = (title, fn)
        return fn
    return reg


# ============================================================== bookkeeping
@dataclass
class Row:
    n: int
    probe: str
    trials: int = 0
    failures: int = 0
    data_lost: int = 0
    notes: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    seconds: float = 0.0
    bar: Any = None

    def trial(self, name: str, count: bool = True) -> "Trial":
        return Trial(self, name, count)

    def note(self, text: str) -> None:
        self.notes.append(text)


class Trial:
    """One trial: ``fail`` / ``lost`` record problems; an exception inside the block is a failure (crash)."""

    def __init__(self, row: Row, name: str, count: bool = True):
        self.row, self.name, self.count = row, name, count
        self.fails: list[str] = []
        self.losts: list[str] = []

    def __enter__(self) -> "Trial":
        return self

    def fail(self, msg: str) -> None:
        self.fails.append(str(msg))

    def lost(self, msg: str) -> None:
        self.losts.append(str(msg))

    def check(self, cond: Any, msg: str) -> bool:
        if not cond:
            self.fail(msg)
        return bool(cond)

    def __exit__(self, et, e, tb) -> bool:
        if et is not None and issubclass(et, KeyboardInterrupt):
            return False
        if et is not None:
            self.fail(f"exception {et.__name__}: {str(e)[:400]} (at {where(tb)})")
        r = self.row
        if self.count:
            r.trials += 1
            if r.bar is not None:
                r.bar.update(1)
        r.failures += bool(self.fails)
        r.data_lost += bool(self.losts)
        r.details += [f"[{self.name}] failure: {m}" for m in self.fails]
        r.details += [f"[{self.name}] data lost: {m}" for m in self.losts]
        return True


def where(tb) -> str:
    """``file:line`` of the innermost frames of a traceback (app frames first)."""
    frames = traceback.extract_tb(tb)
    app = [f for f in frames if "/bench/" not in f.filename]
    f = (app or frames)[-1]
    return f"{os.path.relpath(f.filename, REPO)}:{f.lineno}"


@dataclass
class Ctx:
    tmp: Path
    rng: random.Random
    quick: bool
    seed: int

    def scale(self, full: int, quick: int) -> int:
        return quick if self.quick else full


# ================================================================ helpers
_MODELS: dict[str, Any] = {}


def models() -> tuple[Any, Any]:
    """The MTCNN detector and the dlib embedder, loaded once per process (one torch thread, as the tests)."""
    if not _MODELS:
        import torch

        torch.set_num_threads(1)
        from models import create_backbone
        from models.detection import FaceDetector

        _MODELS["detector"] = FaceDetector()
        _MODELS["dlib"] = create_backbone(BACKBONE)
    return _MODELS["detector"], _MODELS["dlib"]


class SynthEmbedder:
    """A stand-in embedder named ``synthetic`` (the backbone of tests/apphelpers.build_synthetic libraries):
    a deterministic unit vector per crop, so real photos can be imported into a synthetic library."""

    def __init__(self, dim: int = 32):
        from models.registry import BackboneInfo

        self.info = BackboneInfo(name=SYNTH, family="probe", input_size=48, embedding_dim=dim, trainable=False)

    def embed(self, crops):
        import numpy as np

        out = []
        for c in crops:
            seed = int.from_bytes(hashlib.sha256(np.ascontiguousarray(c).tobytes()).digest()[:8], "little")
            v = np.random.default_rng(seed).normal(size=self.info.embedding_dim)
            out.append(v / np.linalg.norm(v))
        return np.asarray(out, np.float32).reshape(len(crops), self.info.embedding_dim)


def lfw_photos(people: tuple[str, ...], per_person: int, skip: int = 0) -> list[Path]:
    out: list[Path] = []
    for p in people:
        out += sorted((LFW / p).glob("*.jpg"))[skip:skip + per_person]
    return out


def ro(db_file: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db_file}?mode=ro", uri=True, timeout=5)


def count_rows(db_file: Path, sql: str, params: tuple = ()) -> int:
    """A COUNT from a read-only connection (0 while the database or table does not exist yet)."""
    if not Path(db_file).exists():
        return 0
    try:
        con = ro(db_file)
        try:
            return int(con.execute(sql, params).fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def integrity(con: sqlite3.Connection) -> str:
    return str(con.execute("PRAGMA integrity_check").fetchone()[0])


def event_gaps(con: sqlite3.Connection) -> list[int]:
    ids = [r[0] for r in con.execute("SELECT id FROM events ORDER BY id")]
    return sorted(set(range(1, (ids[-1] if ids else 0) + 1)) - set(ids))


def tail(path: Path | str, n: int = 600) -> str:
    try:
        return Path(path).read_text(errors="replace")[-n:].strip().replace("\n", " | ")
    except OSError:
        return ""


def run_and_kill(cmd: list[str], cond: Callable[[], bool], delay: float, log: Path, timeout: float = 240,
                 env: dict | None = None) -> tuple[int, float]:
    """Start ``cmd``; once ``cond()`` holds (polled), wait ``delay`` s and SIGKILL it if still running.
    Returns ``(returncode, seconds)``."""
    t0 = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            while proc.poll() is None and not cond() and time.monotonic() - t0 < timeout:
                time.sleep(0.02)
            time.sleep(delay)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            rc = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return rc, time.monotonic() - t0


def child_code(body: str) -> str:
    """A ``python -c`` program with the repository, tests and bench on its path."""
    head = f"import sys\nsys.path[:0] = [{str(REPO)!r}, {str(TESTS)!r}, {str(BENCH)!r}]\n"
    return head + textwrap.dedent(body)


def run_in_thread(fn: Callable, timeout: float) -> tuple[str, Any]:
    """``("ok", value)``, ``("error", exception)`` or ``("hung", None)`` after ``timeout`` seconds."""
    out: dict[str, Any] = {}

    def target() -> None:
        try:
            out["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - reported by the caller
            out["error"] = e

    th = threading.Thread(target=target, daemon=True)
    th.start()
    th.join(timeout)
    if th.is_alive():
        return "hung", None
    if "error" in out:
        return "error", out["error"]
    return "ok", out["value"]


def exc_text(e: BaseException) -> str:
    return f"{type(e).__name__}: {str(e)[:300]} (at {where(e.__traceback__)})"


# ================================================ 1. kills during import
def check_import_library(t: Trial, root: Path, files: list[Path], final: bool) -> dict:
    """Invariants of a library that an import of ``files`` (labels from folders) was killed in."""
    import numpy as np

    from storage import FaceIndex, IndexStore, Library

    db_file = root / "library.db"
    info: dict[str, Any] = {}
    if not db_file.exists():
        return {"images": 0}
    try:
        lib = Library(root)
    except Exception as e:  # noqa: BLE001
        t.fail(f"the library does not open after the kill: {exc_text(e)}")
        return {}
    try:
        con = lib.db.conn
        ok = integrity(con)
        if ok != "ok":
            t.lost(f"integrity_check: {ok}")
        shas = {hashlib.sha256(f.read_bytes()).hexdigest(): f for f in files}
        rows = con.execute("SELECT id, path, sha256, status FROM images").fetchall()
        info["images"] = len(rows)
        stray = [r[1] for r in rows if r[2] not in shas]
        if stray:
            t.fail(f"images that are not the imported photos: {stray[:3]}")
        paths = Counter(r[1] for r in rows)
        if any(c > 1 for c in paths.values()):
            t.lost(f"a photo stored twice: {[p for p, c in paths.items() if c > 1][:3]}")
        bad_status = [(Path(r[1]).name, r[3]) for r in rows if r[3] != "ok"]
        if bad_status:
            t.fail(f"photos not stored as ok: {bad_status[:3]}")
        dup = con.execute("SELECT COUNT(*) FROM (SELECT image_id FROM faces GROUP BY image_id, x1, y1, x2, y2 "
                          "HAVING COUNT(*) > 1)").fetchone()[0]
        if dup:
            t.lost(f"{dup} faces stored twice")
        faceless = con.execute("SELECT COUNT(*) FROM images i WHERE i.status = 'ok' AND NOT EXISTS "
                               "(SELECT 1 FROM faces f WHERE f.image_id = i.id)").fetchone()[0]
        if faceless:
            t.lost(f"{faceless} photos stored without their faces")
        unembedded = len(lib.faces_missing_embedding(BACKBONE))
        if unembedded:
            t.lost(f"{unembedded} faces without a {BACKBONE} embedding")
        seeds = dict(con.execute("SELECT f.image_id, COUNT(*) FROM labels l JOIN faces f ON f.id = l.face_id "
                                 "WHERE l.source = 'seed' AND l.revoked = 0 GROUP BY f.image_id").fetchall())
        with_faces = [r[0] for r in con.execute("SELECT DISTINCT image_id FROM faces")]
        wrong_seeds = [i for i in with_faces if seeds.get(i, 0) != 1]
        if wrong_seeds:
            t.lost(f"{len(wrong_seeds)} photos without exactly one seed label")
        gaps = event_gaps(con)
        if gaps:
            t.lost(f"event log ids missing: {gaps[:10]}")
        info["in_sync"] = IndexStore(lib).in_sync(BACKBONE)
        if final:
            missing = sorted(f.name for s, f in shas.items() if s not in {r[2] for r in rows})
            if missing:
                t.lost(f"photos missing after the final run: {missing}")
            store = IndexStore(lib)
            if not store.in_sync(BACKBONE, deep=True):
                t.lost("index not in sync with the database after the final run (deep check)")
            else:
                ids, X = lib.embeddings(BACKBONE)
                held_ids, held_X = FaceIndex.load(store.path(BACKBONE)).stored()
                order = np.argsort(held_ids)
                if not (np.array_equal(held_ids[order], ids) and np.array_equal(held_X[order], X)):
                    t.lost("the index file's vectors differ from the database's")
                _, found = store.get(BACKBONE).search(X, 1)
                if found[:, 0].tolist() != ids.tolist():
                    t.fail("a face's nearest neighbour in the index is not itself")
            if lib.embedding_fingerprint(BACKBONE) != lib.embedding_fingerprint(BACKBONE, recompute=True):
                t.lost("stored embedding fingerprint differs from the recomputed one")
    finally:
        lib.close()
    return info


@probe(1, "SIGKILL during `python -m aspl import` (16 real photos)")
def probe_import_kills(ctx: Ctx, row: Row) -> None:
    from apphelpers import copy_photos
    from test_faults_kill import _images_stored

    kills = ctx.scale(40, 6)
    sessions = ctx.scale(4, 2)
    per = [kills // sessions + (1 if s < kills % sessions else 0) for s in range(sessions)]
    row.bar.total = kills
    src_files = lfw_photos(IMPORT_PEOPLE, 4)
    phases: Counter = Counter()
    stale = 0
    logged_then_killed = 0
    for s in range(sessions):
        base = ctx.tmp / f"lib{s}"
        src = copy_photos(src_files, base / "photos")
        files = sorted(src.rglob("*.jpg"))
        n = len(files)
        root, db_file = base / "lib", base / "lib" / "library.db"
        finished = 0
        last_after = 0
        for k in range(per[s]):
            with row.trial(f"library {s}, kill {k + 1}") as t:
                bs = ctx.rng.choice((1, 2, 4))
                cmd = [PY, "-m", "aspl", "import", str(src), "--db", str(root), "--labels-from-folders", "-q",
                       "--batch-size", str(bs)]
                before = _images_stored(db_file)
                seen = [before]
                if ctx.rng.random() < 0.15 or before >= n - 1:  # while it starts (loads models) or at its end
                    target, delay = before, ctx.rng.uniform(0.0, 6.0)
                else:  # after 1-2 more photos are committed, a little later
                    target, delay = min(n - 1, before + ctx.rng.randint(1, 2)), ctx.rng.uniform(0.0, 0.6)

                def cond() -> bool:
                    c = _images_stored(db_file)
                    seen.append(c)
                    return c >= target

                log = base / f"run{k}.log"
                rc, _ = run_and_kill(cmd, cond, delay, log)
                after = _images_stored(db_file)
                if rc == 0:
                    finished += 1
                    phases["finished before the kill"] += 1
                elif rc != -signal.SIGKILL:
                    t.fail(f"import exited with rc {rc}: {tail(log)}")
                elif before >= n:
                    phases["with nothing left to import"] += 1
                elif after == before:
                    phases["before its first photo"] += 1
                elif after >= n:
                    phases["after its last photo"] += 1
                else:
                    phases["mid-import"] += 1
                if after < max(seen) or after < last_after:
                    t.lost(f"{max(seen)} photos were committed before the kill, {after} after it")
                last_after = max(last_after, after)
                info = check_import_library(t, root, files, final=False)
                stale += info.get("in_sync") is False
        with row.trial(f"library {s}, final run", count=False) as t:
            before = _images_stored(db_file)
            cmd = [PY, "-m", "aspl", "import", str(src), "--db", str(root), "--labels-from-folders", "-q"]
            final = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
            if final.returncode != 0:
                t.fail(f"final run rc {final.returncode}: {final.stderr[-600:]}")
            m = re.search(r"(\d+) image files: (\d+) imported .* (\d+) already in the library", final.stdout)
            if not m or (int(m[1]), int(m[2]), int(m[3])) != (n, n - before, before):
                t.fail(f"final run summary {final.stdout.strip()[:200]!r}, expected {n - before} imported and "
                       f"{before} already in the library")
            check_import_library(t, root, files, final=True)
            con = ro(db_file)
            try:
                imports = con.execute("SELECT COUNT(*) FROM events WHERE kind = 'import'").fetchone()[0]
            finally:
                con.close()
            if imports < finished + 1:  # a run killed after it logged its import event adds one
                t.lost(f"{imports} import events for {finished + 1} finished runs")
            elif imports > per[s] + 1:
                t.fail(f"{imports} import events for {per[s] + 1} runs")
            logged_then_killed += imports - finished - 1
    row.note(f"{sessions} libraries x 16 photos; kills landed: " + ", ".join(f"{v} {k}" for k, v in phases.items()))
    row.note(f"index file stale after {stale} kills (rebuilt on open, as designed); {logged_then_killed} killed "
             "runs had logged their import event already; every photo exactly once after the final runs")


# ================================================= 2. kills during rounds
ROUND_CHILD = """
import os, signal
from aspl.service import Service
from storage import Library
if len(sys.argv) > 2:  # SIGKILL itself right after the n-th call of a Library method a round makes
    point, after = sys.argv[2], int(sys.argv[3])
    orig, calls = getattr(Library, point), [0]
    def hooked(self, *a, **kw):
        out = orig(self, *a, **kw)
        calls[0] += 1
        if calls[0] >= after:
            os.kill(os.getpid(), signal.SIGKILL)
        return out
    setattr(Library, point, hooked)
svc = Service(Library(sys.argv[1]))
print("ready", flush=True)
while True:
    m = svc.run_round("killer")
    print("round", m["round"], flush=True)
"""


#: Library writes of a round, in order: its row (own transaction), then in one transaction the auto-labels,
#: the queue, the loop state and its finish.
ROUND_WRITES = ("start_round", "replace_auto_labels", "set_queue", "save_loop_state", "finish_round")


@probe(2, "SIGKILL during rounds (`Service.run_round` loop, 300 synthetic faces)")
def probe_round_kills(ctx: Ctx, row: Row) -> None:
    from apphelpers import build_synthetic
    from aspl.service import Service
    from storage import Library

    kills = ctx.scale(10, 3)
    row.bar.total = kills
    root = ctx.tmp / "lib"
    lib, _ = build_synthetic(root, n_people=6, per_person=50, human_per_person=3)
    lib.close()
    db_file = root / "library.db"
    code = child_code(ROUND_CHILD)
    inside = between = 0
    hooked_points: Counter = Counter()
    rounds_run = 0
    for k in range(kills):
        with row.trial(f"kill {k + 1}") as t:
            con = ro(db_file)
            humans = set(con.execute("SELECT id, face_id, person_id FROM labels WHERE revoked = 0 "
                                     "AND source IN ('human', 'seed')").fetchall())
            con.close()
            log = ctx.tmp / f"child{k}.log"
            hook: list[str] = []
            if k % 2 == 1:  # at a chosen write of a round: after its row, inside its one transaction, after it
                point = ROUND_WRITES[-1 - (k // 2) % len(ROUND_WRITES)]  # finish_round first
                hook = [point, str(ctx.rng.randint(1, 3))]
                hooked_points[point] += 1
            with open(log, "w") as err:
                proc = subprocess.Popen([PY, "-c", code, str(root), *hook], cwd=REPO, stdout=subprocess.PIPE,
                                        stderr=err, text=True)
                try:
                    ready, _, _ = select.select([proc.stdout], [], [], 120)
                    line = proc.stdout.readline() if ready else ""
                    if line.strip() != "ready":
                        t.fail(f"round child did not start: {line!r} {tail(log)}")
                    if hook:
                        try:
                            proc.wait(timeout=90)
                        except subprocess.TimeoutExpired:  # that write is not made by rounds (any more)
                            row.note(f"hook {hook[0]} was never reached: killed at a random moment instead")
                    else:
                        time.sleep(ctx.rng.uniform(0.02, 1.5))
                    if proc.poll() is None:
                        proc.send_signal(signal.SIGKILL)
                    rc = proc.wait(timeout=60)
                finally:
                    if proc.poll() is None:
                        proc.kill()
                        proc.wait()
            if rc != -signal.SIGKILL:
                t.fail(f"round child exited by itself (rc {rc}): {tail(log)}")
            try:
                lib = Library(root)
            except Exception as e:  # noqa: BLE001
                t.fail(f"library does not open after the kill: {exc_text(e)}")
                continue
            try:
                c = lib.db.conn
                ok = integrity(c)
                if ok != "ok":
                    t.lost(f"integrity_check: {ok}")
                all_rounds = c.execute("SELECT id, finished_at, metrics FROM rounds ORDER BY id").fetchall()
                for rid, fin, met in all_rounds:
                    if fin is not None and (met is None or not isinstance(json.loads(met), dict)):
                        t.lost(f"round {rid} finished without metrics")
                if all_rounds and all_rounds[-1][1] is None:
                    inside += 1
                else:
                    between += 1
                last = lib.last_round_id()
                autos = dict(c.execute("SELECT round, COUNT(*) FROM labels WHERE source = 'auto' AND revoked = 0 "
                                       "GROUP BY round").fetchall())
                if last is None:
                    if autos:
                        t.lost(f"auto-labels without a finished round: {autos}")
                else:
                    metrics = lib.last_round()["metrics"]
                    if set(autos) - {last}:
                        t.lost(f"live auto-labels of several rounds {autos} (last finished: {last})")
                    elif autos.get(last, 0) != metrics["auto_labels"]:
                        t.lost(f"round {last} wrote {metrics['auto_labels']} auto-labels, {autos.get(last, 0)} live")
                    st = c.execute("SELECT round FROM loop_state WHERE backbone = ?", [SYNTH]).fetchone()
                    if st is None or st[0] != last:
                        t.lost(f"loop state of round {st and st[0]}, last finished round {last}")
                    q = dict(c.execute("SELECT round, COUNT(*) FROM queue GROUP BY round").fetchall())
                    if set(q) - {last} or q.get(last, 0) != metrics["queries"]:
                        t.lost(f"queue {q} does not belong to round {last} ({metrics['queries']} queries)")
                now = set(c.execute("SELECT id, face_id, person_id FROM labels WHERE revoked = 0 "
                                    "AND source IN ('human', 'seed')").fetchall())
                if humans - now:
                    t.lost(f"{len(humans - now)} human labels lost")
                gaps = event_gaps(c)
                if gaps:
                    t.lost(f"event log ids missing: {gaps[:10]}")
                finished = sum(1 for r in all_rounds if r[1] is not None)
                ev = c.execute("SELECT COUNT(*) FROM events WHERE kind = 'round_finished'").fetchone()[0]
                if ev != finished:
                    t.lost(f"{ev} round_finished events for {finished} finished rounds")
                rounds_run = finished
                m = Service(lib).run_round("probe")
                autos = dict(c.execute("SELECT round, COUNT(*) FROM labels WHERE source = 'auto' AND revoked = 0 "
                                       "GROUP BY round").fetchall())
                if set(autos) != {m["round"]} or autos[m["round"]] != m["auto_labels"]:
                    t.fail(f"the next round's auto-labels are not exactly its own: {autos}, round {m['round']}")
            finally:
                lib.close()
    row.note(f"half the kills at random moments, half right after a round's write "
             f"({', '.join(f'{k} x{v}' for k, v in hooked_points.items())}; all but start_round inside the "
             f"round's one write transaction); {inside} left a started, unfinished round row, {between} did not; "
             f"{rounds_run}+ rounds finished in all")


# ============================================ 3. kills during re-embedding
def _replicate_faces(lib, copies: int) -> None:
    """Copies of the library's real faces (same crops and embeddings, new photo rows) to make it larger."""
    import numpy as np

    from storage.db import NewFace, decode_crop

    rows = lib.db.execute("SELECT id, path, sha256, size, width, height FROM images WHERE status = 'ok'").fetchall()
    for k in range(1, copies + 1):
        for iid, path, sha, size, w, h in rows:
            faces = lib.db.execute("SELECT id, x1, y1, x2, y2, landmarks, prob, crop FROM faces WHERE image_id = ?",
                                   [iid]).fetchall()
            new = []
            for fid, x1, y1, x2, y2, lm, prob, crop in faces:
                vec = lib.embedding(fid, BACKBONE)
                new.append(NewFace((x1, y1, x2, y2), np.asarray(json.loads(lm), np.float32), prob, decode_crop(crop),
                                   {BACKBONE: vec}))
            lib.add_image(path, f"{sha}-copy{k}", size, w, h, new)


def _reembed_checks(t: Trial, root: Path, before: dict, command: str, rc: int, after_rerun: bool) -> dict:
    from storage import IndexStore, Library

    out: dict[str, Any] = {}
    try:
        lib = Library(root)
    except Exception as e:  # noqa: BLE001
        t.fail(f"library does not open: {exc_text(e)}")
        return out
    try:
        c = lib.db.conn
        ok = integrity(c)
        if ok != "ok":
            t.lost(f"integrity_check: {ok}")
        setting = lib.get_setting("backbone")
        missing = lib.faces_missing_embedding("lrcn-small")
        out.update(setting=setting, lrcn=before["faces"] - len(missing))
        if setting == "lrcn-small" and missing:
            t.fail(f"backbone switched to lrcn-small with {len(missing)} faces not embedded with it")
        if command == "embed" and setting != BACKBONE:
            t.fail(f"`embed` changed the backbone setting to {setting}")
        if command == "use-backbone" and rc == 0 and setting != "lrcn-small":
            t.fail(f"`use-backbone` finished but the setting is {setting}")
        bad_dim = c.execute("SELECT COUNT(*) FROM embeddings WHERE backbone = 'lrcn-small' AND "
                            "(dim != 128 OR length(vector) != 512)").fetchone()[0]
        if bad_dim:
            t.lost(f"{bad_dim} half-written lrcn-small embeddings")
        if lib.embedding_fingerprint(BACKBONE, recompute=True) != before["dlib_fp"]:
            t.lost("the dlib-resnet embeddings changed")
        labels = c.execute("SELECT COUNT(*) FROM labels WHERE revoked = 0").fetchone()[0]
        if labels != before["labels"]:
            t.lost(f"{before['labels']} live labels before, {labels} after")
        gaps = event_gaps(c)
        if gaps:
            t.lost(f"event log ids missing: {gaps[:10]}")
        store = IndexStore(lib)
        if not store.in_sync(BACKBONE, deep=True):
            t.lost("the dlib-resnet index is out of sync")
        if out["lrcn"]:
            out["lrcn_index_in_sync"] = store.in_sync("lrcn-small", deep=True)
            idx = store.get("lrcn-small")
            if (idx.ntotal, idx.fingerprint) != lib.embedding_fingerprint("lrcn-small", recompute=True):
                t.lost("the lrcn-small index served after opening disagrees with the database")
        if after_rerun:
            if missing:
                t.fail(f"re-run did not complete: {len(missing)} faces still without lrcn-small")
            if not store.in_sync("lrcn-small", deep=True):
                t.lost("lrcn-small index not in sync after the re-run")
            if command == "use-backbone" and setting != "lrcn-small":
                t.fail(f"after a completed use-backbone the setting is {setting}")
            swaps = c.execute("SELECT COUNT(*) FROM events WHERE kind = 'backbone_swapped'").fetchone()[0]
            out["swap_events"] = swaps
    finally:
        lib.close()
    return out


@probe(3, "SIGKILL during re-embedding (`use-backbone` / `embed` lrcn-small)")
def probe_reembed_kills(ctx: Ctx, row: Row) -> None:
    from apphelpers import copy_photos
    from aspl.importer import Importer
    from storage import IndexStore, Library

    kills = ctx.scale(5, 2)
    row.bar.total = kills
    detector, dlib = models()
    src = copy_photos(lfw_photos(IMPORT_PEOPLE, 4), ctx.tmp / "photos")
    base = ctx.tmp / "base"
    lib = Library(base)
    Importer(lib, IndexStore(lib), detector=detector, embedder=dlib, batch_size=8).run(
        src, labels_from_folders=True, progress=False)
    real_faces = lib.stats()["faces"]
    _replicate_faces(lib, ctx.scale(15, 5))
    IndexStore(lib).rebuild(BACKBONE)
    before = {"faces": lib.stats()["faces"], "dlib_fp": lib.embedding_fingerprint(BACKBONE, recompute=True),
              "labels": lib.db.execute("SELECT COUNT(*) FROM labels WHERE revoked = 0").fetchone()[0]}
    lib.close()
    n = before["faces"]
    landed: Counter = Counter()
    no_swap_event = 0
    for k in range(kills):
        command = "use-backbone" if k % 2 == 0 else "embed"
        with row.trial(f"{command} kill {k + 1}") as t:
            root = ctx.tmp / f"lib{k}"
            shutil.copytree(base, root)
            db_file = root / "library.db"
            cmd = ([PY, "-m", "aspl", "use-backbone", "lrcn-small", "--db", str(root), "-q"] if command == "use-backbone"
                   else [PY, "-m", "aspl", "embed", "--backbone", "lrcn-small", "--db", str(root), "-q"])
            r = ctx.rng.random()
            if r < 0.2:
                target, delay = 0, ctx.rng.uniform(1.0, 6.0)  # while it starts or embeds its first batch
            elif r < 0.75:
                target, delay = ctx.rng.randrange(1, n), ctx.rng.uniform(0.0, 0.3)  # between batches
            else:
                target, delay = n, ctx.rng.uniform(0.0, 0.5)  # index rebuild, setting, events

            def cond() -> bool:
                return count_rows(db_file, "SELECT COUNT(*) FROM embeddings WHERE backbone = 'lrcn-small'") >= target

            log = ctx.tmp / f"run{k}.log"
            rc, _ = run_and_kill(cmd, cond, delay, log)
            if rc not in (0, -signal.SIGKILL):
                t.fail(f"{command} exited with rc {rc}: {tail(log)}")
            got = _reembed_checks(t, root, before, command, rc, after_rerun=False)
            state = ("finished before the kill" if rc == 0 else
                     "no lrcn-small embedding yet" if not got.get("lrcn") else
                     "all faces embedded" if got.get("lrcn") == n else "part of the faces embedded")
            if got.get("setting") == "lrcn-small" and rc != 0:
                state = "setting switched"
                con = ro(db_file)
                if not con.execute("SELECT COUNT(*) FROM events WHERE kind = 'backbone_swapped'").fetchone()[0]:
                    no_swap_event += 1
                con.close()
            landed[state] += 1
            rerun = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
            if rerun.returncode != 0:
                t.fail(f"re-run of {command} failed (rc {rerun.returncode}): {rerun.stderr[-500:]}")
            _reembed_checks(t, root, before, command, rerun.returncode, after_rerun=True)
    row.note(f"{real_faces} faces of 16 real photos + copies = {n} faces; kills landed: "
             + ", ".join(f"{v} {k}" for k, v in landed.items()))
    if no_swap_event:
        row.note(f"{no_swap_event} kill(s) after the setting switched but before its `backbone_swapped` event "
                 "(aspl/cli.py cmd_use_backbone writes them in two transactions; the setting_changed event is there)")


# ============================================ 4. kills inside migrations
KILL_AFTER_COMMIT = """
import os, signal
from storage import migrations
root, target = sys.argv[1], sys.argv[2]
names = [m.__name__ for m in migrations.MIGRATIONS]
i = names.index(target)
if i + 1 < len(names):
    nxt = migrations.MIGRATIONS[i + 1]
    def killed(db):
        os.kill(os.getpid(), signal.SIGKILL)  # the target committed; killed before the next one starts
    killed.__name__ = nxt.__name__
    migrations.MIGRATIONS[i + 1] = killed
from storage import Library
Library(root)
os.kill(os.getpid(), signal.SIGKILL)
"""


@probe(4, "SIGKILL inside each schema migration")
def probe_migration_kills(ctx: Ctx, row: Row) -> None:
    from storage import Library, migrations
    from test_faults_kill import KILL_IN_MIGRATION, _applied, _integrity, _schema, migration_prefix_facts

    full = list(migrations.MIGRATIONS)
    names = [m.__name__ for m in full]
    per = ctx.scale(3, 1)
    row.bar.total = len(names) * per
    schemas, counts = migration_prefix_facts(lambda i: ctx.tmp / f"prefix{i}")

    def seeded(root: Path, position: int) -> int:
        """A library at schema ``position`` holding a few committed rows (0 when there is no schema yet)."""
        if position == 0:
            return 0
        try:
            migrations.MIGRATIONS[:] = full[:position]
            Library(root).close()
        finally:
            migrations.MIGRATIONS[:] = full
        con = sqlite3.connect(root / "library.db")
        with con:
            for i in range(3):
                con.execute("INSERT INTO events (time, actor, kind, payload) VALUES ('t', 'probe', 'before', ?)",
                            [json.dumps({"i": i})])
                con.execute("INSERT INTO images (path, sha256, size, status, imported_at) VALUES (?, ?, 1, 'ok', 't')",
                            [f"/p/{i}.jpg", f"sha{i}"])
        con.close()
        return 3

    def committed_rows(db: Path) -> int:
        con = sqlite3.connect(db)
        try:
            return min(con.execute("SELECT COUNT(*) FROM events WHERE kind = 'before'").fetchone()[0],
                       con.execute("SELECT COUNT(*) FROM images WHERE sha256 LIKE 'sha%'").fetchone()[0])
        finally:
            con.close()

    for position, name in enumerate(names):
        rng = random.Random(f"{ctx.seed}-{name}")
        c = max(1, counts[name])
        points: list[Any] = [1, 0, "committed"] if c < 3 else [1, rng.randint(2, c - 1), 0]
        for after in points[:per] if per < 3 else points:
            with row.trial(f"{name}, kill {'after its COMMIT' if after == 'committed' else 'after its body' if after == 0 else f'after statement {after}'}") as t:
                root = ctx.tmp / f"{name}-{after}"
                rows = seeded(root, position)
                if after == "committed":
                    code, args, expect = child_code(KILL_AFTER_COMMIT), [str(root), name], position + 1
                else:
                    code, args, expect = KILL_IN_MIGRATION, [str(root), name, str(after)], position
                child = subprocess.run([PY, "-c", code, *args], cwd=REPO, capture_output=True, text=True, timeout=120)
                if child.returncode != -signal.SIGKILL:
                    t.fail(f"child rc {child.returncode}: {child.stderr[-400:]}")
                db = root / "library.db"
                if _applied(db) != names[:expect]:
                    t.lost(f"migrations recorded {_applied(db)[-2:]}, expected the first {expect}")
                if _schema(db) != schemas[expect]:
                    t.lost(f"part of {name} survived the kill (schema differs from the first {expect} migrations)")
                if rows and committed_rows(db) != rows:
                    t.lost("rows committed before the migration are missing")
                try:
                    lib = Library(root)
                    lib.log_event("opened_after_kill", "probe")
                    lib.close()
                except Exception as e:  # noqa: BLE001
                    t.fail(f"the library does not reopen: {exc_text(e)}")
                    continue
                if _applied(db) != names or _schema(db) != schemas[-1] or _integrity(db) != "ok":
                    t.fail("after reopening, the schema is not the full one or integrity_check fails")
                if rows and committed_rows(db) != rows:
                    t.lost("rows committed before the migration are missing after reopening")
    row.note(f"{len(names)} migrations; kills after the first statement, a random one or the whole body (before "
             "COMMIT), or just after COMMIT for one-statement migrations; libraries held rows from before")


# ============================================================ 5. bad files
def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png_with(w: int, h: int, extra: bytes = b"", bad_ihdr_crc: bool = False) -> bytes:
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    chunk = _png_chunk(b"IHDR", ihdr)
    if bad_ihdr_crc:
        chunk = chunk[:-1] + bytes([chunk[-1] ^ 0xFF])
    raw = b"".join(b"\0" + b"\x80" * w for _ in range(max(h, 1))) if w * h < 10_000 else b""
    return b"\x89PNG\r\n\x1a\n" + chunk + extra + _png_chunk(b"IDAT", zlib.compress(raw)) + _png_chunk(b"IEND", b"")


def _jpeg_header(w: int, h: int) -> bytes:
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, h, w, 3) + b"\x01\x11\x00\x02\x11\x01\x03\x11\x01"
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    return b"\xff\xd8" + app0 + sof + b"\xff\xd9"


def _tiff_header(w: int, h: int) -> bytes:
    entries = [(256, 4, w), (257, 4, h), (258, 3, 8), (259, 3, 1), (262, 3, 1), (273, 4, 8 + 2 + 12 * 9 + 4),
               (277, 3, 1), (278, 4, h), (279, 4, 16)]
    ifd = struct.pack("<H", len(entries))
    for tag, typ, v in entries:
        ifd += struct.pack("<HHII", tag, typ, 1, v) if typ == 4 else struct.pack("<HHIHH", tag, typ, 1, v, 0)
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + b"\0" * 16


def _webp_vp8x(w: int, h: int) -> bytes:
    body = b"VP8X" + struct.pack("<I", 10) + b"\0\0\0\0" + (w - 1).to_bytes(3, "little") + (h - 1).to_bytes(3, "little")
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


def _bmp_header(w: int, h: int) -> bytes:
    return (b"BM" + struct.pack("<IHHI", 54, 0, 0, 54) + struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, 0, 0, 0, 0, 0))


def _encode(img, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def build_extra_corpus(root: Path) -> dict[str, tuple[str, str]]:
    """More bad inputs (and odd but valid photos) under ``root``: ``{relative path: (expect, what)}`` with expect
    one of ``reject`` (must be rejected with a reason), ``import`` (must be imported with a face), ``either``
    (rejected with a reason or imported), ``ignore`` (not a file: must not be recorded or crash)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(5)
    bad, odd = root / "bad2", root / "odd2"
    bad.mkdir(parents=True)
    odd.mkdir(parents=True)
    src = lfw_photos(("Gerhard_Schroeder", "Junichiro_Koizumi", "Jean_Chretien", "John_Ashcroft"), 4)
    photos = [Image.open(p).convert("RGB") for p in src]
    real = src[0].read_bytes()
    png = _encode(photos[1], "PNG")
    webp = _encode(photos[2], "WEBP", quality=90)
    tif = _encode(photos[3], "TIFF")
    prog = _encode(photos[4], "JPEG", progressive=True, quality=90)
    out: dict[str, tuple[str, str]] = {}

    def put(name: str, expect: str, what: str, data: bytes | None = None, folder: Path = bad) -> Path:
        p = folder / name
        if data is not None:
            p.write_bytes(data)
        out[str(p.relative_to(root))] = (expect, what)
        return p

    put("jpeg_soi_only.jpg", "reject", "JPEG of 2 bytes (SOI only)", b"\xff\xd8")
    put("jpeg_cut_10pct.jpg", "reject", "JPEG cut at 10%", real[:len(real) // 10])
    put("jpeg_cut_90pct.jpg", "either", "JPEG cut at 90%", real[:len(real) * 9 // 10])
    put("jpeg_no_eoi.jpg", "either", "JPEG without its last 2 bytes (EOI)", real[:-2])
    put("jpeg_progressive_cut.jpg", "either", "progressive JPEG cut at 60%", prog[:len(prog) * 6 // 10])
    put("png_signature_only.png", "reject", "PNG of its 8-byte signature", png[:8])
    put("png_cut_after_ihdr.png", "reject", "PNG cut after IHDR", png[:33])
    put("png_cut_90pct.png", "reject", "PNG cut at 90%", png[:len(png) * 9 // 10])
    put("webp_cut_half.webp", "reject", "WebP cut at 50%", webp[:len(webp) // 2])
    put("webp_header_only.webp", "reject", "WebP of its 20-byte header", webp[:20])
    put("tiff_cut_half.tif", "reject", "TIFF cut at 50%", tif[:len(tif) // 2])
    put("tiff_header_only.tif", "reject", "TIFF of its 8-byte header", tif[:8])
    put("bomb_jpeg_header.jpg", "reject", "JPEG header declaring 60000x60000", _jpeg_header(60000, 60000))
    put("bomb_tiff_header.tif", "reject", "TIFF header declaring 100000x100000", _tiff_header(100000, 100000))
    put("bomb_webp_header.webp", "reject", "WebP VP8X header declaring 16384x16384", _webp_vp8x(16384, 16384))
    put("bomb_bmp_header.bmp", "reject", "BMP header declaring 50000x50000", _bmp_header(50000, 50000))
    put("bomb_ppm_header.ppm", "reject", "PPM header declaring 100000x100000", b"P6\n100000 100000\n255\n")
    ztxt = _png_chunk(b"zTXt", b"Comment\0\0" + zlib.compress(b"A" * 50_000_000, 9))
    put("png_ztxt_bomb.png", "either", "PNG with a zTXt chunk inflating to 50 MB",
        _png_with(64, 64, extra=ztxt))
    put("png_bad_crc_ihdr.png", "reject", "PNG with a bad IHDR CRC", _png_with(64, 64, bad_ihdr_crc=True))
    i = png.find(b"IDAT")
    n_idat = struct.unpack(">I", png[i - 4:i])[0]
    crc_at = i + 4 + n_idat
    put("png_bad_crc_idat.png", "either", "real PNG with a bad IDAT CRC",
        png[:crc_at] + bytes([png[crc_at] ^ 0xFF]) + png[crc_at + 1:])
    put("png_zero_dims.png", "reject", "PNG declaring 0x0", _png_with(0, 0))
    put("html.jpg", "reject", "HTML saved as .jpg", b"<!DOCTYPE html><html><body><img src=x onerror=alert(1)>"
        b"</body></html>\n")
    put("pdf.jpg", "reject", "PDF saved as .jpg", b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n")
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as zf:
        zf.writestr("inner.jpg", real)
    put("zip.jpg", "reject", "ZIP saved as .jpg", zbuf.getvalue())
    put("random.jpg", "reject", "4 KB of random bytes", rng.bytes(4096))
    put("random_after_soi.jpg", "reject", "JPEG SOI+APP0 then random bytes", real[:20] + rng.bytes(4096))
    put("zeros_1mb.jpg", "reject", "1 MB of zero bytes", b"\0" * (1 << 20))
    sparse = put("sparse_200mb.jpg", "reject", "200 MB sparse file of zeros")
    with open(sparse, "wb") as f:
        f.truncate(200 << 20)
    put("svg.png", "reject", "SVG saved as .png", b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>')
    put("gif_as.jpg", "either", "a GIF photo saved as .jpg", _encode(photos[5], "GIF"))
    exif = photos[6].getexif()
    exif[0x0112] = 1
    app1 = b"Exif\0\0" + b"MM\0*\0\0\0\x08" + rng.bytes(3000)
    good_jpeg = _encode(photos[6], "JPEG", quality=92)
    put("exif_garbage.jpg", "either", "JPEG with a garbage EXIF block",
        good_jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + good_jpeg[2:])
    a = np.asarray(photos[7], np.float32).mean(axis=2)
    a[:10] = np.nan
    a[10:20] = np.inf
    put("float_nan_inf.tif", "either", "32-bit float TIFF with NaN and inf rows", _encode(Image.fromarray(a, "F"), "TIFF"))
    put("one_by_one.jpg", "reject", "1x1 JPEG", _encode(Image.new("RGB", (1, 1), (9, 9, 9)), "JPEG"))
    put("wide_20000x3.png", "reject", "20000x3 PNG", _encode(Image.new("RGB", (20000, 3), (9, 9, 9)), "PNG"))
    put("tiny_19x19.png", "reject", "19x19 PNG (below the detector's 20 px)",
        _encode(photos[8].resize((19, 19)), "PNG"))
    os.mkfifo(put("fifo.png", "reject", "a FIFO named .png"))
    put("urandom.jpg", "reject", "symlink to /dev/urandom").symlink_to("/dev/urandom")
    put("dangling.jpg", "reject", "dangling symlink").symlink_to(bad / "no_such_file.jpg")
    put("passwd.jpg", "reject", "symlink to /etc/passwd (outside the root)").symlink_to("/etc/passwd")
    d = put("folder.jpg", "ignore", "a directory named .jpg")
    d.mkdir()
    locked = put("chmod000.jpg", "either", "a good photo with mode 000", _encode(photos[9], "JPEG", quality=90))
    locked.chmod(0)
    # odd but valid photos: each must be imported with its face
    put("photo.webp", "import", "WebP photo", _encode(photos[10], "WEBP", quality=90), odd)
    put("photo.bmp", "import", "BMP photo", _encode(photos[11], "BMP"), odd)
    put("grey.jpg", "import", "greyscale JPEG", _encode(photos[12].convert("L"), "JPEG", quality=92), odd)
    rgba = photos[13].convert("RGBA")
    rgba.putalpha(200)
    put("rgba.png", "import", "RGBA PNG", _encode(rgba, "PNG"), odd)
    pal = photos[14].convert("P", palette=Image.Palette.ADAPTIVE, colors=255)
    put("palette_alpha.png", "import", "palette PNG with transparency", _encode(pal, "PNG", transparency=0), odd)
    ex = Image.Exif()
    ex[0x0112] = 6
    put("exif_rotated.jpg", "import", "EXIF orientation 6 (stored rotated)",
        _encode(photos[15].transpose(Image.Transpose.ROTATE_90), "JPEG", quality=92, exif=ex.tobytes()), odd)
    bogus = Image.Exif()
    bogus[0x0112] = 9
    extra = lfw_photos(("Vladimir_Putin", "Serena_Williams"), 3)
    more = [Image.open(p).convert("RGB") for p in extra]
    put("exif_orientation_9.jpg", "import", "EXIF orientation 9 (invalid)",
        _encode(more[0], "JPEG", quality=92, exif=bogus.tobytes()), odd)
    put("L" + "o" * 230 + "ng.jpg", "import", "a 235-byte file name", _encode(more[1], "JPEG", quality=91), odd)
    put("new\nline.jpg", "import", "a newline in the file name", _encode(more[2], "JPEG", quality=91), odd)
    put("UPPER.JPG", "import", "upper-case extension", _encode(more[3], "JPEG", quality=91), odd)
    put("trailing_garbage.jpg", "import", "JPEG followed by 64 KB of random bytes",
        _encode(more[4], "JPEG", quality=91) + rng.bytes(65536), odd)
    a16 = (np.asarray(more[5].convert("L"), np.uint16) * 257)
    put("sixteen_bit.tif", "import", "16-bit greyscale TIFF", _encode(Image.fromarray(a16), "TIFF"), odd)
    return out


@probe(5, "Bad files mixed with good photos (`Importer`, timeout)")
def probe_bad_files(ctx: Ctx, row: Row) -> None:
    from aspl.importer import Importer
    from storage import IndexStore, Library
    from storage.faces import fs_path
    from test_import_faults import build_corpus

    root, good, expected = build_corpus(ctx.tmp, LFW)
    items: dict[str, tuple[str, str]] = {f"bad/{k}": ("reject", f"test corpus ({v})") for k, v in expected.items()}
    items.update({g: ("import", "test corpus good photo") for g in good})
    items["bad/alias.jpg"] = ("duplicate", "link to a photo inside the tree")
    items["bad/round_and_round"] = ("ignore", "folder link looping to the root")
    items["bad/README.txt"] = ("ignore", "not a photo type")
    items.update(build_extra_corpus(root))
    n_bad = sum(1 for e, _ in items.values() if e in ("reject", "either"))
    n_good = sum(1 for e, _ in items.values() if e == "import")
    row.bar.total = len(items) + 1
    detector, dlib = models()
    lib = Library(ctx.tmp / "lib")
    imp = Importer(lib, IndexStore(lib), detector=detector, embedder=dlib, batch_size=8)
    timeout = 300
    t0 = time.monotonic()
    status, value = run_in_thread(lambda: imp.run(root, labels_from_folders=True, progress=False), timeout)
    first_s = time.monotonic() - t0
    if status != "ok":
        with row.trial("import run") as t:
            t.fail("the import hung (still running after %d s)" % timeout if status == "hung" else
                   f"the import crashed: {exc_text(value)}")
        return
    summary = value
    by_path = {}
    for r in lib.images(limit=-1):
        by_path[fs_path(r)] = r
    for r in lib.images(status="rejected", limit=-1):
        by_path[fs_path(r)] = r
    reasons = Counter()
    surprises = []
    for rel, (expect, what) in sorted(items.items()):
        with row.trial(f"{rel} ({what})") as t:
            p = str(root / rel)
            r = by_path.get(p)
            if expect == "ignore":
                t.check(r is None, f"recorded as {r and r['status']}")
                continue
            if expect == "duplicate":
                t.check(r is None, f"a link to an imported photo was recorded again ({r and r['status']})")
                continue
            if r is None:
                if expect == "import":
                    t.fail("good photo not imported and not recorded")
                    t.lost("good photo missing")
                else:
                    t.fail("bad file without a recorded reason")
                continue
            if r["status"] == "rejected":
                reasons[r["error_reason"]] += 1
                if not r["error_reason"]:
                    t.fail("rejected without a reason")
                if expect == "import":
                    t.fail(f"good photo rejected: {r['error_reason']} ({r['error_detail']})")
                    t.lost("good photo missing")
                elif expect == "either":
                    surprises.append(f"{Path(rel).name}: rejected ({r['error_reason']})")
                want = what.split("(", 1)[-1].rstrip(")") if what.startswith("test corpus (") else None
                if want and want != r["error_reason"]:
                    surprises.append(f"{Path(rel).name}: reason {r['error_reason']!r}, the tests expect {want!r}")
            else:
                faces = lib.faces_of_image(r["id"])
                if expect == "reject":
                    t.fail(f"a bad file was imported as a photo ({r['status']}, {len(faces)} faces)")
                elif expect == "either":
                    surprises.append(f"{Path(rel).name}: imported ({len(faces)} faces)")
                elif not faces:
                    t.fail("good photo imported without a face")
                    t.lost("good photo's face missing")
    with row.trial("re-run adds nothing, index in sync") as t:
        before = lib.stats()
        status, s2 = run_in_thread(lambda: imp.run(root, labels_from_folders=True, progress=False), timeout)
        if status != "ok":
            t.fail(f"second run {status}: {s2 if status == 'hung' else exc_text(s2)}")
        else:
            t.check(s2.imported == 0 and s2.faces == 0, f"second run imported {s2.imported} photos")
            t.check(lib.stats() == before, "second run changed the library")
        t.check(imp.indexes.in_sync(BACKBONE, deep=True), "index not in sync with the database")
    lib.close()
    row.note(f"{n_bad} bad inputs + {n_good} good photos (+3 links/folders/other files); first run {first_s:.0f} s: "
             f"{summary.imported} imported, {sum(summary.rejected.values())} rejected in "
             f"{len(summary.rejected)} reasons, {summary.duplicates} duplicate")
    row.note("outcomes of the tolerated inputs: " + "; ".join(surprises))
    row.note("running as root, the mode-000 photo is readable" if os.geteuid() == 0 else
             "not running as root: the mode-000 photo cannot be read")


# ===================================================== 6. hostile uploads
def _zip(members: list[tuple[Any, bytes]], compression: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with zipfile.ZipFile(buf, "w", compression) as zf:
            for name, data in members:
                zf.writestr(name, data)
    return buf.getvalue()


def _symlink_member(name: str, target: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (0o120777 << 16)
    return info


def _set_flag(zip_bytes: bytes, bit: int) -> bytes:
    """Set a general-purpose flag bit (0: encrypted) on every member, in local and central headers."""
    raw = bytearray(zip_bytes)
    for sig, off in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        i = raw.find(sig)
        while i >= 0:
            flags = int.from_bytes(raw[i + off:i + off + 2], "little") | (1 << bit)
            raw[i + off:i + off + 2] = flags.to_bytes(2, "little")
            i = raw.find(sig, i + 4)
    return bytes(raw)


def _lie_size(zip_bytes: bytes, size: int) -> bytes:
    """Declare ``size`` bytes as the uncompressed size of every member (local and central headers)."""
    raw = bytearray(zip_bytes)
    for sig, off in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        i = raw.find(sig)
        while i >= 0:
            raw[i + off:i + off + 4] = size.to_bytes(4, "little")
            i = raw.find(sig, i + 4)
    return bytes(raw)


def _files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file() or p.is_symlink()} if folder.exists() else set()


@probe(6, "Hostile uploads (`Service.save_uploads`)")
def probe_uploads(ctx: Ctx, row: Row) -> None:
    from aspl.service import Service, ServiceError
    from storage import Library
    from test_uploads_faults import corrupt_member, unsupported_method

    photos = [p.read_bytes() for p in lfw_photos(("Colin_Powell", "Donald_Rumsfeld", "Tony_Blair"), 4)]
    G = photos[:8]
    EVIL = photos[8]  # hostile members carry this photo: it must never be written
    token = f"evil-{ctx.seed}-{os.getpid()}"
    big = b"\0" * (210 << 20)
    bomb = _zip([("bomb.jpg", big), ("ok.jpg", G[0])], zipfile.ZIP_DEFLATED)
    ratio = len(big) / max(1, len(bomb))
    del big
    liar = _lie_size(_zip([("liar.jpg", b"\0" * (20 << 20))], zipfile.ZIP_DEFLATED), 1000)
    inner = _zip([("inner.jpg", G[2])])
    many = io.BytesIO()
    with zipfile.ZipFile(many, "w") as zf:
        for i in range(100_001):
            zf.writestr(f"m{i}.txt", b"")
    many_bytes = many.getvalue()
    sym_zip = io.BytesIO()
    with zipfile.ZipFile(sym_zip, "w") as zf:
        zf.writestr(_symlink_member("link.jpg", "/etc/passwd"), "/etc/passwd")
        zf.writestr(_symlink_member("linkdir", "/tmp"), "/tmp")
        zf.writestr("linkdir/through_link.jpg", G[3])  # lands in a real folder inside (no link is made)
        zf.writestr("good.jpg", G[1])
    # (name, files, good contents that must be saved, names that must be rejected, note)
    cases: list[tuple[str, list, list[bytes], set[str], bool]] = [
        ("zip member ../../", [("a.zip", _zip([(f"../../{token}.jpg", EVIL), ("ok/good.jpg", G[0])]))],
         [G[0]], {f"../../{token}.jpg"}, False),
        ("zip member with an absolute path", [("a.zip", _zip([(f"/tmp/{token}.jpg", EVIL), ("good.jpg", G[0])]))],
         [G[0]], {f"/tmp/{token}.jpg"}, False),
        ("zip member with a drive letter", [("a.zip", _zip([(f"C:\\{token}.jpg", EVIL), (f"d:/{token}.jpg", EVIL),
                                                           ("good.jpg", G[0])]))],
         [G[0]], {f"C:\\{token}.jpg", f"d:/{token}.jpg"}, False),
        ("zip member ..\\..\\ (backslashes)", [("a.zip", _zip([(f"..\\..\\{token}.jpg", EVIL), ("good.jpg", G[0])]))],
         [G[0]], {f"..\\..\\{token}.jpg"}, False),
        ("zip member a/../../", [("a.zip", _zip([(f"a/../../{token}.jpg", EVIL), ("good.jpg", G[0])]))],
         [G[0]], {f"a/../../{token}.jpg"}, False),
        ("zip member //server/share", [("a.zip", _zip([(f"//server/share/{token}.jpg", EVIL), ("good.jpg", G[0])]))],
         [G[0]], {f"//server/share/{token}.jpg"}, False),
        ("zip symlink members (+ a file through the link's name)", [("a.zip", sym_zip.getvalue())],
         [G[1]], {"link.jpg"}, False),
        ("zip member with a bad CRC", [("a.zip", corrupt_member(_zip([("good.jpg", G[0]), ("bad_crc.jpg", EVIL),
                                                                      ("after.jpg", G[1])]), EVIL))],
         [G[0], G[1]], {"bad_crc.jpg"}, False),
        ("zip member name of 7,500 characters", [("a.zip", _zip([("é" * 7500 + ".jpg", G[2]), ("good.jpg", G[0])]))],
         [G[2], G[0]], set(), False),
        ("zip member nested 3,000 folders deep", [("a.zip", _zip([("x/" * 3000 + "deep.jpg", EVIL),
                                                                  ("good.jpg", G[0])]))],
         [G[0]], {"x/" * 3000 + "deep.jpg"}, False),
        ("duplicate member names in one zip", [("a.zip", _zip([("p/face.jpg", G[0]), ("p/face.jpg", G[1]),
                                                               ("q?.jpg", G[2]), ("q*.jpg", G[3])]))],
         [G[0], G[1], G[2], G[3]], set(), False),
        ("duplicate upload names (files and zips)", [("face.jpg", G[0]), ("face.jpg", G[1]),
                                                     ("same.zip", _zip([("x.jpg", G[2])])),
                                                     ("same.zip", _zip([("x.jpg", G[3])]))],
         [G[0], G[1], G[2], G[3]], set(), False),
        (f"zip bomb (210 MB of zeros, ratio {ratio:,.0f}:1)", [("bomb.zip", bomb)], [G[0]], {"bomb.jpg"}, False),
        ("zip member lying about its size (1 KB declared, 20 MB inside)", [("liar.zip", liar), ("good.jpg", G[0])],
         [G[0]], {"liar.jpg"}, False),
        ("nested zip", [("outer.zip", _zip([("inner.zip", inner), ("good.jpg", G[0])]))],
         [G[0]], {"inner.zip"}, False),
        ("encrypted member (flag bit 0)", [("enc.zip", _set_flag(_zip([("secret.jpg", EVIL)]), 0)),
                                          ("good.jpg", G[0])], [G[0]], {"secret.jpg"}, False),
        ("member with an unsupported compression (AES, 99)", [("aes.zip", unsupported_method(_zip([("aes.jpg", EVIL)]))),
                                                              ("good.jpg", G[0])], [G[0]], {"aes.jpg"}, False),
        ("non-image members", [("a.zip", _zip([("notes.txt", b"hi"), ("run.exe", b"MZ"), ("page.html", b"<script>"),
                                               ("x.svg", b"<svg/>"), (".htaccess", b"x"), ("good.jpg", G[0])]))],
         [G[0]], {"notes.txt", "run.exe", "page.html", "x.svg", ".htaccess"}, False),
        ("zip of 100,001 members", [("many.zip", many_bytes), ("good.jpg", G[0])], [G[0]], {"many.zip"}, False),
        ("not a zip, named .zip", [("fake.zip", b"garbage" * 100), ("good.jpg", G[0])], [G[0]], {"fake.zip"}, False),
        ("truncated zip", [("cut.zip", _zip([("x.jpg", G[1]), ("y.jpg", G[2])])[:len(G[1]) // 2]), ("good.jpg", G[0])],
         [G[0]], {"cut.zip"}, False),
        ("upload name of 7,500 characters", [("a" * 7500 + ".jpg", G[4])], [G[4]], set(), False),
        ("upload name ../../../", [(f"../../../{token}.jpg", G[5])], [G[5]], set(), False),
        ("upload name with an absolute path", [(f"/etc/cron.d/{token}.jpg", G[6])], [G[6]], set(), False),
        ("upload name with a NUL byte", [("a\x00b.jpg", G[7])], [G[7]], set(), False),
        ("upload names '..' and '.jpg'", [("..", G[0]), (".jpg", G[1]), ("good.jpg", G[2])], [G[2]], set(), False),
        ("non-image uploads", [("x.html", b"<script>alert(1)</script>"), ("x.exe", b"MZ"), ("good.jpg", G[3])],
         [G[3]], {"x.html", "x.exe"}, False),
        ("upload over the quota", [("one.jpg", G[0]), ("two.jpg", G[1])], [G[0]], {"two.jpg"}, True),
    ]
    row.bar.total = len(cases)
    lib_root = ctx.tmp / "lib"
    svc = Service(Library(lib_root))
    outside_roots = [ctx.tmp, Path("/tmp"), Path("/")]

    def outside_snapshot() -> set[str]:
        found = set()
        for p in ctx.tmp.rglob("*"):
            if "uploads" not in p.relative_to(ctx.tmp).parts:
                found.add(str(p))
        for r in outside_roots[1:]:
            found |= {str(p) for p in r.glob(f"*{token}*")}
        return found

    for name, files, goods, bads, quota in cases:
        with row.trial(name) as t:
            old_quota = os.environ.get("ASPL_UPLOAD_QUOTA_BYTES")
            s = svc
            if quota:
                s = Service(Library(ctx.tmp / "quota_lib"))
            before = outside_snapshot()
            if quota:
                os.environ["ASPL_UPLOAD_QUOTA_BYTES"] = str(len(G[0]) + len(G[1]) // 2)
            try:
                res = s.save_uploads(files)
                if quota:  # what is left is too little, then nothing is left: clean refusals
                    again = s.save_uploads([("three.jpg", G[2])])
                    t.check(not again.saved and again.rejected, "an upload past the quota was saved")
                    os.environ["ASPL_UPLOAD_QUOTA_BYTES"] = str(len(G[0]))
                    try:
                        s.save_uploads([("four.jpg", G[3])])
                        t.fail("an upload with the quota used up was accepted")
                    except ServiceError as e:
                        t.check("ASPL_UPLOAD_QUOTA_BYTES" in str(e), f"unclear quota message: {e}")
            except Exception as e:  # noqa: BLE001
                t.fail(f"exception escaped: {exc_text(e)}")
                continue
            finally:
                if quota:
                    if old_quota is None:
                        os.environ.pop("ASPL_UPLOAD_QUOTA_BYTES", None)
                    else:
                        os.environ["ASPL_UPLOAD_QUOTA_BYTES"] = old_quota
            new_outside = outside_snapshot() - before
            if new_outside:
                t.fail(f"files written outside the upload folder: {sorted(new_outside)[:3]}")
            folder = Path(os.path.realpath(res.folder))
            stray = [p for p in res.saved if folder not in Path(os.path.realpath(p)).parents]
            if stray:
                t.fail(f"saved outside the upload folder: {stray[:2]}")
            on_disk = _files_under(res.folder)
            if on_disk != set(res.saved):
                t.fail(f"partial or unreported files left: {sorted(str(p) for p in on_disk - set(res.saved))[:3]}")
            if len(set(res.saved)) != len(res.saved):
                t.fail("two uploads saved to one path (silent overwrite)")
            saved = Counter(p.read_bytes() for p in res.saved if p.is_file())
            if saved.get(EVIL):
                t.fail("a hostile member's content was saved")
            missing = Counter(goods) - saved
            if missing:
                t.fail(f"{sum(missing.values())} good images not saved")
                t.lost(f"{sum(missing.values())} good images of the upload not saved "
                       f"(rejected: {[(n[:40], r[:60]) for n, r in res.rejected][:4]})")
            rejected = {n: r for n, r in res.rejected}
            unreported = [b for b in bads if b not in rejected]
            if unreported:
                t.fail(f"hostile entries not rejected: {[u[:50] for u in unreported]}")
            if any(not r for r in rejected.values()):
                t.fail("a rejection without a reason")
    row.note(f"{len(cases)} uploads, each mixed with good photos; the zip bomb is refused from its header; "
             "hostile names become safe names inside the folder")


# ====================================================== 7. concurrency
ANNOTATOR = """
import json
from pathlib import Path
from aspl.service import Service
from storage import Library
root, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
truth = json.loads(Path(sys.argv[4]).read_text())
svc = Service(Library(root))
shown, refused, accepted, empty = [], [], 0, 0
while len(shown) < n:
    f = svc.next_face(name)
    if f is None:
        empty += 1
        if empty > 200:
            break
        import time
        time.sleep(0.05)
        continue
    shown.append(f)
    who = truth.get(str(f)) or Path(svc.library.face(f)["path"]).parent.name.replace("_", " ")
    try:
        svc.new_person(f, who, name)
        accepted += 1
    except Exception as e:
        refused.append([f, type(e).__name__, str(e)[:200]])
print(json.dumps({"shown": shown, "refused": refused, "accepted": accepted, "empty": empty}))
"""

IMPORT_CHILD = """
import json, os
os.environ["ASPL_IMPORT_ROOTS"] = sys.argv[2]
from aspl.service import Service
from fault_probe import SynthEmbedder
from storage import Library
svc = Service(Library(sys.argv[1]), embedder_factory=lambda name: SynthEmbedder())
job = svc.start_import(sys.argv[2], "importer").wait(900)
print(json.dumps({"status": job.status, "error": job.error,
                  "summary": (job.result or {}).get("summary")}))
"""


@probe(7, "Concurrency: 4 annotator processes + rounds + an import")
def probe_concurrency(ctx: Ctx, row: Row) -> None:
    from apphelpers import build_synthetic, copy_photos
    from aspl.service import Service
    from storage import IndexStore, Library

    per = ctx.scale(200, 40)
    workers = ("alice", "bob", "carol", "dave")
    row.bar.total = per * len(workers)
    root = ctx.tmp / "lib"
    lib, truth = build_synthetic(root, n_people=8, per_person=max(10, per * len(workers) // 8 + 10),
                                 human_per_person=2)
    humans0 = len(lib.label_rows(("human",)))
    lib.close()
    truth_file = ctx.tmp / "truth.json"
    truth_file.write_text(json.dumps({str(k): v for k, v in truth.items()}))
    photos = copy_photos(lfw_photos(("Colin_Powell", "Tony_Blair", "Hans_Blix"), 4), ctx.tmp / "photos")
    procs = [subprocess.Popen([PY, "-c", child_code(ANNOTATOR), str(root), w, str(per), str(truth_file)], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for w in workers]
    imp = subprocess.Popen([PY, "-c", child_code(IMPORT_CHILD), str(root), str(photos)], cwd=REPO,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    svc = Service(Library(root))
    rounds, round_errors = 0, []
    t0 = time.monotonic()
    while any(p.poll() is None for p in procs + [imp]) and time.monotonic() - t0 < 900:
        try:
            svc.run_round("admin")
            rounds += 1
        except Exception as e:  # noqa: BLE001
            round_errors.append(exc_text(e))
        time.sleep(0.3)
    outs = {}
    for w, p in zip(workers, procs):
        out, err = p.communicate(timeout=120)
        try:
            outs[w] = json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            outs[w] = {"shown": [], "refused": [["?", "crash", err[-300:]]], "accepted": 0, "empty": 0}
    iout, ierr = imp.communicate(timeout=120)
    try:
        ires = json.loads(iout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        ires = {"status": "crashed", "error": ierr[-400:]}
    seconds = time.monotonic() - t0
    owner: dict[int, str] = {}
    for w in workers:
        o = outs[w]
        for i, f in enumerate(o["shown"]):
            with row.trial(f"{w} decision {i + 1}") as t:
                if f in owner and owner[f] != w:
                    t.fail(f"face {f} handed to {owner[f]} and {w}")
                owner.setdefault(f, w)
                hit = [r for r in o["refused"] if r[0] == f]
                if hit:
                    t.fail(f"answer refused: {hit[0][1]}: {hit[0][2]}")
        for i in range(len(o["shown"]), per):
            with row.trial(f"{w} decision {i + 1}") as t:
                t.fail("no face handed out (ran out, or the worker crashed)"
                       + (f": {o['refused'][0]}" if o["refused"] and o["refused"][0][0] == "?" else ""))
    with row.trial("library after the run", count=False) as t:
        for e in round_errors[:3]:
            t.fail(f"round failed: {e}")
        if ires.get("status") != "done":
            t.fail(f"the import did not finish: {ires}")
        lib = Library(root)
        try:
            accepted = sum(o["accepted"] for o in outs.values())
            humans = lib.label_rows(("human",))
            if len(humans) != humans0 + accepted:
                t.lost(f"{humans0 + accepted} human labels expected ({accepted} accepted answers), {len(humans)} live")
            per_face = Counter(r["face_id"] for r in humans)
            twice = [f for f, c in per_face.items() if c > 1]
            if twice:
                t.lost(f"{len(twice)} faces with two live human labels")
            wrong = [r for r in humans if r["face_id"] in truth and lib.person_name(r["person_id"]) != truth[r["face_id"]]]
            if wrong:
                t.fail(f"{len(wrong)} human labels name the wrong person")
            c = lib.db.conn
            if integrity(c) != "ok":
                t.lost("integrity_check failed")
            gaps = event_gaps(c)
            if gaps:
                t.lost(f"event log ids missing: {gaps[:10]}")
            if not IndexStore(lib).in_sync(SYNTH, deep=True):
                t.lost("the index is not in sync with the database after the import")
            if lib.faces_missing_embedding(SYNTH):
                t.lost("imported faces without embeddings")
        finally:
            lib.close()
    with row.trial("deterministic: a round while alice looks at a face it does not re-queue", count=False) as t:
        lib, truth = build_synthetic(None, n_people=4, per_person=40, human_per_person=2)
        alice, bob = Service(lib), Service(lib)
        f = alice.next_face("alice")
        alice.run_round("admin")
        queued = f in lib.queue()
        handed = None
        for _ in range(500):
            g = bob.next_face("bob")
            if g is None or g == f:
                handed = g
                break
            bob.new_person(g, truth[g], "bob")
        if handed == f:
            bob.new_person(f, truth[f], "bob")
            try:
                alice.new_person(f, truth[f], "alice")
                t.fail(f"face {f}, shown to alice, was handed to bob after a round (not re-queued: its lease was "
                       "dropped); both answers were accepted")
            except Exception as e:  # noqa: BLE001
                t.fail(f"face {f}, shown to alice, was handed to bob after a round that did not re-queue it "
                       f"(in the new queue: {queued}; the round dropped alice's lease); alice's answer then "
                       f"fails: {type(e).__name__}: {e}")
        lib.close()
    summ = ires.get("summary") or {}
    row.note(f"{sum(len(o['shown']) for o in outs.values())} faces handed out, "
             f"{sum(o['accepted'] for o in outs.values())} answers accepted in {seconds:.0f} s while {rounds} rounds "
             f"ran and an import of {summ.get('files', '?')} real photos ({summ.get('faces', '?')} faces) finished "
             f"({ires.get('status')})")


# ================================================================ 8. auth
class _Env:
    """Set / unset environment variables for a block."""

    def __init__(self, **values: str | None):
        self.values, self.old = values, {}

    def __enter__(self):
        for k, v in self.values.items():
            self.old[k] = os.environ.get(k)
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        return self

    def __exit__(self, *a):
        for k, v in self.old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _apptest(script: str = "app.py", token: str | None = None, query: dict | None = None):
    import streamlit.logger
    from streamlit.testing.v1 import AppTest

    streamlit.logger.set_log_level("error")  # "missing ScriptRunContext" in bare mode: noise
    at = AppTest.from_file(str(REPO / script), default_timeout=90)
    if token:
        at.session_state["_token"] = token
    for k, v in (query or {}).items():
        at.query_params[k] = v
    at.run()
    return at


def _pages(at) -> set[str]:
    return {Path(p["script_path"]).stem for p in at._registered_pages.values()}


@probe(8, "Authentication and authorisation")
def probe_auth(ctx: Ctx, row: Row) -> None:
    import logging

    import numpy as np

    from apphelpers import USER_PASSWORD, build_synthetic, log_in, texts
    from aspl.service import AuthError, Service, ServiceError, ThrottledError
    from storage import FaceIndex, IndexStore, Library
    from test_storage_loop_state import _old_library

    os.environ.setdefault("STREAMLIT_LOGGER_LEVEL", "error")
    logging.getLogger("app_pages").setLevel(logging.ERROR)
    logging.getLogger("aspl.app").setLevel(logging.ERROR)
    row.bar.total = 42
    os.chdir(REPO)
    fresh = ctx.tmp / "fresh"  # no account at all, no ASPL_ADMIN_PASSWORD
    lib_root = ctx.tmp / "lib"
    lib, truth = build_synthetic(lib_root, human_per_person=1)
    svc = Service(lib)
    svc.add_user("root", USER_PASSWORD, "admin", "probe")
    svc.add_user("ann", USER_PASSWORD, "annotator", "probe")
    svc.add_user("rev", USER_PASSWORD, "reviewer", "probe")
    svc.add_user("victim", USER_PASSWORD, "annotator", "probe")
    gated = ("annotate", "review", "people", "import_page", "admin")

    with _Env(ASPL_DB=str(fresh), ASPL_ADMIN_PASSWORD=None, ASPL_ADMIN_USER=None):
        with row.trial("anonymous session on a new library: only the Log in page") as t:
            at = _apptest()
            t.check(_pages(at) == {"login"}, f"navigation offers {_pages(at)}")
            t.check("Log in" in texts(at) and not at.exception, "no Log in page")
            t.check(not [b for b in at.button if b.key and str(b.key).startswith("kb_")], "labelling keys shown")
        with row.trial("setup token guessed wrong") as t:
            at.text_input(key="setup_token").set_value("guess-" + "x" * 20)
            at.text_input(key="setup_name").set_value("eve")
            at.text_input(key="setup_pw1").set_value("long enough pw")
            at.text_input(key="setup_pw2").set_value("long enough pw")
            next(b for b in at.button if b.label == "Create the admin account").click().run()
            fs = Service(Library(fresh))
            t.check(not fs.has_admin() and fs.library.user("eve") is None, "an admin was created with a wrong token")
            t.check("wrong setup token" in texts(at), "no 'wrong setup token' message")
            t.check(_pages(at) == {"login"}, "pages opened after a wrong setup token")
        with row.trial("setup token cannot be replayed once an admin exists") as t:
            tok = fs.setup_token()
            fs.create_first_admin(tok, "boss", USER_PASSWORD)
            try:
                fs.create_first_admin(tok, "eve", USER_PASSWORD)
                t.fail("a second admin was created with a used setup token")
            except AuthError:
                pass
            fs.library.close()

    with _Env(ASPL_DB=str(lib_root), ASPL_ADMIN_PASSWORD=None, ASPL_ADMIN_USER=None):
        with row.trial("anonymous session: only the Log in page") as t:
            at = _apptest()
            t.check(_pages(at) == {"login"}, f"navigation offers {_pages(at)}")
            t.check("Signed in as" not in texts(at), "signed in without a login")
        for page in gated:
            with row.trial(f"anonymous session cannot switch to {page}") as t:
                try:
                    at.switch_page(f"app_pages/{page}.py").run()
                    t.check("Signed in as" not in texts(at) and "Log in" in texts(at),
                            f"{page} reachable without a login")
                except ValueError:
                    pass
        for page in ("import_page", "admin"):
            with row.trial(f"anonymous direct run of app_pages/{page}.py stops") as t:
                at = _apptest(f"app_pages/{page}.py")
                t.check("Log in to continue" in texts(at), f"{page} ran without a login: {texts(at)[:120]!r}")
        for q in ({"annotator": "alice"}, {"user": "root", "role": "admin"}):
            with row.trial(f"query parameters {q} have no effect") as t:
                at = _apptest(query=q)
                t.check(_pages(at) == {"login"} and "Signed in as" not in texts(at), f"query {q} granted {_pages(at)}")
        with row.trial("annotator account: navigation is Annotate only") as t:
            at = _apptest()
            log_in(at, "ann", USER_PASSWORD)
            t.check("Signed in as **ann** (annotator)" in texts(at), "annotator login failed")
            t.check(_pages(at) == {"annotate"}, f"annotator navigation offers {_pages(at)}")
        for page in ("import_page", "admin", "review", "people"):
            with row.trial(f"annotator cannot reach {page}") as t:
                try:
                    at.switch_page(f"app_pages/{page}.py").run()
                    t.fail(f"switched to {page}: {texts(at)[:120]!r}")
                except ValueError:
                    pass
        ann_tok = svc.session_token("ann")
        for page, marker in (("import_page", "Import folder"), ("admin", "Run a round")):
            with row.trial(f"annotator's session running app_pages/{page}.py directly is stopped") as t:
                at = _apptest(f"app_pages/{page}.py", token=ann_tok)
                t.check("needs the admin role" in texts(at) and marker not in texts(at),
                        f"{page} ran for an annotator: {texts(at)[:150]!r}")
        with row.trial("reviewer cannot reach Import or Admin") as t:
            at = _apptest()
            log_in(at, "rev", USER_PASSWORD)
            t.check(_pages(at) == {"annotate", "review", "people"}, f"reviewer navigation offers {_pages(at)}")

    now = time.time()
    tok = svc.session_token("ann", now=now, seconds=3600)
    body, sig = tok.split(".")
    with row.trial("forged session token (admin body, annotator signature)") as t:
        forged = svc.session_token("root", now=now).split(".")[0] + "." + sig
        t.check(svc.user_from_token(forged) is None, "forged token accepted")
    with row.trial("tampered session token (one character of the body changed)") as t:
        import base64

        data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        data["u"] = "root"
        evil = base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
        flipped = body[:-1] + ("A" if body[-1] != "A" else "B")
        t.check(svc.user_from_token(f"{evil}.{sig}") is None and svc.user_from_token(f"{flipped}.{sig}") is None,
                "tampered token accepted")
    with row.trial("expired session token") as t:
        old = svc.session_token("ann", now=now - 10_000, seconds=60)
        t.check(svc.user_from_token(old) is None, "expired token accepted")
    with row.trial("unsigned / garbage tokens") as t:
        for bad in (f"{body}.", f"{body}", ".", "", "a.b.c", body + "." + "A" * 43, "\x00", "é.é"):
            try:
                if svc.user_from_token(bad) is not None:
                    t.fail(f"token {bad[:20]!r} accepted")
            except Exception as e:  # noqa: BLE001
                t.fail(f"token {bad[:20]!r} raised {exc_text(e)}")
    with row.trial("token of another library (other secret)") as t:
        other = Service(Library(ctx.tmp / "other"))
        other.add_user("ann", USER_PASSWORD, "admin", "probe")
        t.check(svc.user_from_token(other.session_token("ann")) is None, "another library's token accepted")
        other.library.close()
    with row.trial("a disabled account's token stops working") as t:
        vt = svc.session_token("victim")
        ok = svc.user_from_token(vt) is not None
        svc.disable_user("victim", "root")
        t.check(ok and svc.user_from_token(vt) is None, "disabled account's token still works")
        try:
            svc.authenticate("victim", USER_PASSWORD)
            t.fail("disabled account can log in")
        except AuthError:
            pass
        svc.disable_user("victim", "root", disabled=False)
    with row.trial("a demoted account's token carries the new role") as t:
        rt = svc.session_token("rev")
        svc.set_role("rev", "annotator", "root")
        got = svc.user_from_token(rt)
        t.check(got and got["role"] == "annotator", f"demoted account still {got}")
        svc.set_role("rev", "reviewer", "root")
    with row.trial("a session token issued before a password change stops working") as t:
        pt = svc.session_token("victim")
        svc.set_password("victim", "a brand new password", "root")
        t.check(svc.user_from_token(pt) is None,
                "a session token issued before a password change keeps working until it expires (7 days): "
                "aspl/service/auth.py user_from_token checks signature, expiry and the account, not the password")
        t.check(svc.user_from_token(svc.session_token("victim")) is not None, "a new session after it is refused")
    with row.trial("brute force: 10 wrong passwords, then the right one, is throttled") as t:
        svc.add_user("bruted", USER_PASSWORD, "annotator", "probe")
        kinds = []
        t_bf = time.time()
        for i in range(10):
            try:
                svc.authenticate("bruted", f"wrong password {i}", now=t_bf + 0.1 * i)
                t.fail("a wrong password was accepted")
            except ThrottledError:
                kinds.append("throttled")
            except AuthError:
                kinds.append("wrong")
        try:
            svc.authenticate("bruted", USER_PASSWORD, now=t_bf + 1.1)
            t.fail(f"the right password right after 10 wrong ones was accepted ({Counter(kinds)})")
        except ThrottledError:
            pass
    with row.trial("throttle holds for other spellings of the name") as t:
        for spelling in ("BRUTED", " bruted ", "Bruted", "bruted\t"):
            try:
                svc.authenticate(spelling, USER_PASSWORD, now=t_bf + 1.2)
                t.fail(f"{spelling!r} bypassed the throttle")
            except ThrottledError:
                pass
            except AuthError as e:
                t.fail(f"{spelling!r}: {e}")
    with row.trial("empty, None and 1 MB passwords are refused without a crash") as t:
        for pw in ("", None, "x" * (1 << 20)):
            try:
                svc.authenticate("rev", pw)
                t.fail("accepted")
            except ThrottledError:
                pass
            except AuthError:
                pass
    with row.trial("passwords are stored hashed (no plaintext in the database files)") as t:
        svc.library.db.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        blob = b"".join(p.read_bytes() for p in lib_root.glob("library.db*") if p.is_file())
        for pw in (USER_PASSWORD, "a brand new password"):
            t.check(pw.encode() not in blob, f"plaintext password {pw!r} found in the database files")
        rec = svc.library.user("ann")["password"]
        t.check(rec.get("algo") == "scrypt" and rec.get("salt"), f"password record {list(rec)}")
    with _Env(ASPL_IMPORT_ROOTS=str(ctx.tmp / "allowed")):
        (ctx.tmp / "allowed").mkdir()
        (ctx.tmp / "secret").mkdir()
        (ctx.tmp / "allowed" / "escape").symlink_to(ctx.tmp / "secret", target_is_directory=True)
        for bad in ("/root", "/etc", "/proc/self", str(ctx.tmp / "allowed" / "escape"),
                    str(ctx.tmp / "allowed" / ".." / "secret")):
            with row.trial(f"server import of {bad.replace(str(ctx.tmp), '<tmp>')} refused") as t:
                try:
                    job = svc.start_import(bad, "root")
                    job.wait(60)
                    t.fail(f"import of {bad} started ({job.status})")
                except ServiceError:
                    pass
    with row.trial("CSV export: formula-like names are escaped") as t:
        evil_names = ['=HYPERLINK("http://evil.example","x")', "+1+1", "-2+3", "@SUM(A1)", "\t=1", " =cmd|' /C calc'!A0"]
        faces = sorted(truth)[-len(evil_names):]
        for f, nm in zip(faces, evil_names):
            svc.new_person(f, nm, "root")
        svc.add_user("-admin@x", USER_PASSWORD, "annotator", "root")
        svc.new_person(sorted(truth)[-len(evil_names) - 1], "=1+2", "-admin@x")
        res = svc.export(ctx.tmp / "export", crops=False)
        import csv

        with open(res.csv, newline="") as fh:
            cells = [c for r in csv.reader(fh) for c in r]

        def number(c: str) -> bool:
            try:
                float(c)
                return True
            except ValueError:
                return False

        risky = [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r") and not number(c)]
        t.check(not risky, f"formula cells in the CSV: {risky[:4]}")
        t.check(sum(c.startswith("'") for c in cells) >= len(evil_names), "escaped names not found")
    with row.trial("export crops: person names with paths stay inside the export folder") as t:
        hostile = ["../../evil-export", "..", "/etc/evil-export", "a/../../evil-export", "CON", "..\\..\\evil-export"]
        faces = sorted(truth)[-len(evil_names) - 1 - len(hostile):-len(evil_names) - 1]
        for f, nm in zip(faces, hostile):
            svc.new_person(f, nm, "root")
        before = {str(p) for p in ctx.tmp.rglob("*")}
        out = ctx.tmp / "exports" / "x"
        res = svc.export(out, crops=True)
        new = {Path(p) for p in {str(p) for p in ctx.tmp.rglob("*")} - before}
        outside = [p for p in new if out not in p.parents and p != out and p not in out.parents]
        t.check(not outside, f"export wrote outside its folder: {sorted(map(str, outside))[:3]}")
        with zipfile.ZipFile(res.crops_zip) as zf:
            names = zf.namelist()
        t.check(all(not n.startswith("/") and ".." not in Path(n).parts for n in names),
                f"unsafe names in crops.zip: {[n for n in names if '..' in n or n.startswith('/')][:3]}")
        t.check(not list(Path("/etc").glob("evil-export*")), "a file was written to /etc")
    with row.trial("planted pickle in an old library's engine_state runs no code") as t:
        marker = ctx.tmp / "pwned_engine_state"
        _old_library(ctx.tmp / "old", marker)
        old = Library(ctx.tmp / "old")
        st = old.loop_state("dlib-resnet")
        old.close()
        t.check(not marker.exists() and st is None, "the planted pickle ran or was loaded")
    with row.trial("planted pickle in loop_state / in an index file runs no code") as t:
        from test_storage_loop_state import _Payload
        import pickle

        marker = ctx.tmp / "pwned_loop_state"
        svc.library.db.execute("INSERT OR REPLACE INTO loop_state VALUES (?, '{}', ?, 1, 'now')",
                               [SYNTH, pickle.dumps(_Payload(marker))])
        svc.library.db.conn.commit()
        try:
            Service(svc.library).suggestions(sorted(truth)[0])
            svc.run_round("root")
        except Exception as e:  # noqa: BLE001
            t.fail(f"a damaged loop state crashed a round: {exc_text(e)}")
        marker2 = ctx.tmp / "pwned_index"
        p = IndexStore(svc.library).path(SYNTH)
        with open(p, "wb") as fh:
            np.savez(fh, index=np.array([_Payload(marker2)], dtype=object), ids=np.arange(3), dim=np.int64(32))
        idx = IndexStore(svc.library).get(SYNTH)
        t.check(not marker.exists() and not marker2.exists(), "a planted pickle ran")
        t.check(isinstance(idx, FaceIndex) and idx.ntotal == svc.library.embedding_count(SYNTH),
                "the index was not rebuilt from the database")
    svc.library.close()
    row.note("AppTest of app.py (anonymous, annotator, reviewer; page switches, pages run directly with a session, "
             "query parameters, a wrong setup token), session tokens (forged, tampered, expired, unsigned, another "
             "library's, disabled / demoted account, password changed), throttled logins (10 wrong then right, other "
             "spellings), hashes in the database files, server imports of /root, /etc, /proc/self, a link and "
             "../ out of the import root, CSV injection and path names in exports, pickles planted in engine_state, "
             "loop_state and an index file")


# ===================================================== 9. damaged files
WAL_CHILD = """
import json, os, signal
import numpy as np
from storage import IndexStore, Library
from storage.db import NewFace
lib = Library(sys.argv[1])
c = lib.db.conn
a = []
for f in (20, 21, 22):
    a.append(lib.add_label(f, lib.person_id("Checkpointed Person", create=True), "human", 1.0, annotator="probe"))
lib.log_event("probe_a", "probe")
c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
b = []
for f in (23, 24, 25):
    b.append(lib.add_label(f, lib.person_id("Wal Person", create=True), "human", 1.0, annotator="probe"))
rng = np.random.default_rng(1)
v = rng.normal(size=(2, 32)).astype(np.float32)
v /= np.linalg.norm(v, axis=1, keepdims=True)
_, fids = lib.add_image("/probe/new.jpg", "probe-new", 1, 10, 10, [
    NewFace((0, 0, 5, 5), np.zeros((5, 2), np.float32), 0.99, np.zeros((8, 8, 3), np.uint8), {"synthetic": x})
    for x in v])
store = IndexStore(lib)
store.add("synthetic", np.array(fids), v)
store.save("synthetic")
lib.log_event("probe_b", "probe")
print(json.dumps({"a": a, "b": b, "faces": fids}), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def _assert_search_true(t: Trial, lib, k: int = 4, forbid: set[int] = frozenset()) -> None:
    """The served index gives the brute-force neighbours of the database's vectors."""
    import numpy as np

    from storage import IndexStore

    ids, X = lib.embeddings(SYNTH)
    idx = IndexStore(lib).get(SYNTH)
    scores, found = idx.search(X, k)
    brute = X @ X.T
    wrong = 0
    for i in range(len(ids)):
        want = set(ids[np.argsort(-brute[i], kind="stable")[:k]].tolist())
        if set(found[i].tolist()) != want and not np.allclose(np.sort(scores[i]), np.sort(brute[i])[-k:], atol=1e-5):
            wrong += 1
    if wrong:
        t.fail(f"{wrong} faces got wrong neighbours")
    ghosts = set(found.ravel().tolist()) & set(forbid)
    if ghosts:
        t.fail(f"search returned faces the database does not hold: {sorted(ghosts)}")


def _check_suggestion(t: Trial, lib, face: int) -> None:
    """The first suggestion (no round yet: FAISS neighbours) names the person of the nearest labelled face by
    brute force over the database's vectors."""
    from aspl.service import Service

    ids, X = lib.embeddings(SYNTH)
    who = lib.face_persons([int(i) for i in ids if i != face])
    x = X[list(ids).index(face)]
    cand = [(float(X[i] @ x), int(f)) for i, f in enumerate(ids) if int(f) in who]
    want = lib.person_name(who[max(cand)[1]])
    got = Service(lib).suggestions(face)
    if not got or got[0].name != want:
        t.fail(f"suggestions for face {face}: {[g.name for g in got][:3]}, expected {want} first")


def _import_one(t: Trial, lib, photo: Path, folder: Path) -> None:
    from aspl.importer import Importer
    from storage import IndexStore

    detector, _ = models()
    d = folder / photo.parent.name
    d.mkdir(parents=True, exist_ok=True)
    shutil.copy(photo, d / photo.name)
    store = IndexStore(lib)
    s = Importer(lib, store, detector=detector, embedder=SynthEmbedder(), batch_size=4).run(d, progress=False)
    if s.imported != 1:
        t.fail(f"import after the damage: {s.as_dict()}")
    if not IndexStore(lib).in_sync(SYNTH, deep=True):
        path = IndexStore(lib).path(SYNTH)
        idx = IndexStore(lib).get(SYNTH)
        served_ok = (idx.ntotal, idx.fingerprint) == lib.embedding_fingerprint(SYNTH, recompute=True)
        if path.is_file() or not served_ok:
            t.lost("index not in sync after an import")
        else:  # no file can be written there (a folder in its place): served from memory, logged
            t.row.note("a folder in place of the index file: the index cannot be saved (logged as an error), "
                       "searches and imports are served from an index rebuilt in memory")


@probe(9, "Damaged index files and `library.db-wal`")
def probe_damaged(ctx: Ctx, row: Row) -> None:
    import numpy as np

    from apphelpers import build_synthetic
    from aspl.cli import main as cli_main
    from storage import FaceIndex, IndexStore, Library
    from test_index_integrity import DAMAGE, _directory, _other_vectors

    photos = iter(lfw_photos(("Ariel_Sharon", "Hans_Blix", "Laura_Bush", "Tony_Blair", "Colin_Powell",
                              "Donald_Rumsfeld", "George_W_Bush", "Gerhard_Schroeder"), 6, skip=10))

    def pickled(p: Path, lib) -> None:
        with open(p, "wb") as fh:
            np.savez(fh, index=np.array([object()], dtype=object), ids=np.arange(3), dim=np.int64(32))

    def other_library(p: Path, lib) -> None:
        X = np.random.default_rng(3).normal(size=(40, 32)).astype(np.float32)
        FaceIndex.build(np.arange(1000, 1040), X / np.linalg.norm(X, axis=1, keepdims=True)).save(p)

    def same_ids_other_vectors(p: Path, lib) -> None:
        ids, Y = _other_vectors(lib)
        FaceIndex.build(ids, Y).save(p)

    def trailing_garbage(p: Path, lib) -> None:
        with open(p, "ab") as fh:
            fh.write(os.urandom(4096))

    def dev_zero(p: Path, lib) -> None:
        p.unlink()
        p.symlink_to("/dev/zero")

    def db_vectors_replaced(p: Path, lib) -> None:  # another program rewrites vectors under the same ids
        ids, Y = _other_vectors(lib)
        con = sqlite3.connect(lib.root / "library.db")
        with con:
            con.executemany("UPDATE embeddings SET vector = ? WHERE face_id = ? AND backbone = ?",
                            [(y.tobytes(), int(i), SYNTH) for i, y in zip(ids, Y)])
        con.close()

    def flips(seed: int):
        def fn(p: Path, lib) -> None:
            data = bytearray(p.read_bytes())
            r = np.random.default_rng(seed)
            for _ in range(3):
                data[int(r.integers(len(data)))] ^= 1 << int(r.integers(8))
            p.write_bytes(bytes(data))
        fn.__name__ = f"3 random bit flips (seed {seed})"
        return fn

    variants = list(DAMAGE) + [_directory, pickled, other_library, same_ids_other_vectors, trailing_garbage, dev_zero,
                               db_vectors_replaced] + [flips(ctx.seed * 100 + i) for i in range(ctx.scale(6, 2))]
    if ctx.quick:
        variants = variants[:4] + variants[-3:]
    wal_variants = ["untouched (kill only)", "emptied", "cut to its 32-byte header", "cut in half", "last byte cut",
                    "bit flip in the last frame", "bit flip in the first frame", "bad magic in its header",
                    "salt changed in its header", "replaced by random bytes", "-shm deleted", "-shm filled with garbage"]
    if ctx.quick:
        wal_variants = wal_variants[:2] + wal_variants[3:4] + wal_variants[6:7]
    row.bar.total = len(variants) + len(wal_variants)
    base = ctx.tmp / "base"
    lib, truth = build_synthetic(base, human_per_person=3)
    IndexStore(lib).get(SYNTH)
    lib.close()
    counts_before = None
    for k, damage in enumerate(variants):
        name = getattr(damage, "__name__", str(damage)).strip("_").replace("_", " ")
        with row.trial(f"index file: {name}") as t:
            root = ctx.tmp / f"idx{k}"
            shutil.copytree(base, root, symlinks=True)
            lib = Library(root)
            try:
                counts_before = {tb: lib.db.execute(f"SELECT COUNT(*) FROM {tb}").fetchone()[0]
                                 for tb in ("images", "faces", "labels", "embeddings", "events")}
                p = IndexStore(lib).path(SYNTH)
                damage(p, lib)
                _assert_search_true(t, lib)
                f = max(truth)
                _check_suggestion(t, lib, f)
                buf = io.StringIO()
                with contextlib.redirect_stdout(buf):
                    rc = cli_main(["search", str(f), "-k", "3", "--db", str(root)])
                got = [json.loads(line)["face_id"] for line in buf.getvalue().splitlines()]
                ids, X = lib.embeddings(SYNTH)
                sims = X @ X[list(ids).index(f)]
                want = [int(i) for i in ids[np.argsort(-sims, kind="stable")] if i != f][:3]
                if rc != 0 or set(got) != set(want):
                    t.fail(f"`aspl search` after the damage: rc {rc}, {got}, expected {want}")
                _import_one(t, lib, next(photos), root / "photos")
                after = {tb: lib.db.execute(f"SELECT COUNT(*) FROM {tb}").fetchone()[0]
                         for tb in ("images", "faces", "labels", "embeddings")}
                for tb, v in after.items():
                    if v < counts_before[tb]:
                        t.lost(f"{tb}: {counts_before[tb]} rows before, {v} after")
                if lib.embedding_fingerprint(SYNTH) != lib.embedding_fingerprint(SYNTH, recompute=True):
                    t.lost("stored embedding fingerprint differs from the recomputed one")
            finally:
                lib.close()

    outcomes: Counter = Counter()
    lost_wal_rows = 0
    wal_kept: list[str] = []
    for k, variant in enumerate(wal_variants):
        with row.trial(f"WAL: {variant}") as t:
            root = ctx.tmp / f"wal{k}"
            shutil.copytree(base, root, symlinks=True)
            child = subprocess.run([PY, "-c", child_code(WAL_CHILD), str(root)], cwd=REPO, capture_output=True,
                                   text=True, timeout=120)
            if child.returncode != -signal.SIGKILL:
                t.fail(f"writer child rc {child.returncode}: {child.stderr[-400:]}")
                continue
            ids = json.loads(child.stdout.strip().splitlines()[-1])
            wal, shm = root / "library.db-wal", root / "library.db-shm"
            if not wal.exists() or wal.stat().st_size == 0:
                t.fail("the killed writer left no WAL to damage")
            data = bytearray(wal.read_bytes())
            frame = 24 + 4096  # page size 4096
            if variant == "emptied":
                data = bytearray()
            elif variant == "cut to its 32-byte header":
                data = data[:32]
            elif variant == "cut in half":
                data = data[:len(data) // 2]
            elif variant == "last byte cut":
                data = data[:-1]
            elif variant == "bit flip in the last frame":
                data[-100] ^= 0x01
            elif variant == "bit flip in the first frame":
                data[32 + 24 + 100] ^= 0x01
            elif variant == "bad magic in its header":
                data[0] ^= 0xFF
            elif variant == "salt changed in its header":
                data[16] ^= 0xFF
            elif variant == "replaced by random bytes":
                data = bytearray(os.urandom(len(data)))
            if variant.startswith("-shm"):
                if variant == "-shm deleted":
                    shm.unlink(missing_ok=True)
                else:
                    shm.write_bytes(os.urandom(max(32768, shm.stat().st_size if shm.exists() else 0)))
            else:
                wal.write_bytes(bytes(data))
            del frame
            try:
                lib = Library(root)
            except Exception as e:  # noqa: BLE001
                outcomes[f"refused: {type(e).__name__}"] += 1
                row.note(f"WAL {variant}: Library() raises {type(e).__name__}: {e}")
                continue
            try:
                c = lib.db.conn
                ok = integrity(c)
                if ok != "ok":
                    t.lost(f"integrity_check: {ok}")
                live = {r[0] for r in c.execute("SELECT id FROM labels WHERE revoked = 0")}
                if not set(ids["a"]) <= live:
                    t.lost("labels committed and checkpointed before the kill are missing")
                b_kept = set(ids["b"]) <= live
                face_kept = c.execute("SELECT COUNT(*) FROM faces WHERE id IN (?, ?)", ids["faces"]).fetchone()[0]
                wal_kept.append(f"{variant}: {len(set(ids['b']) & live)}/3 labels, {face_kept}/2 faces")
                if not b_kept or face_kept < 2:
                    lost_wal_rows += 1
                    t.lost(f"commits held only in the damaged WAL are gone: {3 - len(set(ids['b']) & live)}/3 labels, "
                           f"{2 - face_kept}/2 faces (SQLite opened without an error)")
                    outcomes["recovered up to the damage"] += 1
                else:
                    outcomes["recovered everything"] += 1
                gaps = event_gaps(c)
                if gaps:
                    t.lost(f"event log ids missing: {gaps[:10]}")
                _assert_search_true(t, lib, forbid=set() if face_kept == 2 else set(ids["faces"]))
                _check_suggestion(t, lib, max(truth))
                lib.add_label(26, lib.person_id("After Damage", create=True), "human", 1.0, annotator="probe")
                _import_one(t, lib, next(photos), root / "photos")
            finally:
                lib.close()
    row.note(f"{len(variants)} index-file variants (truncated, emptied, bit flips, CRC, magic, bare array, other "
             "members, a folder, a pickled object array, another library's index, same ids with other vectors, "
             "trailing bytes, a link to /dev/zero, vectors rewritten in the database by another program): "
             "rebuilt from the database, true neighbours")
    row.note("WAL after a killed writer (checkpointed commit A, then commit B only in the WAL): "
             + ", ".join(f"{v} {k}" for k, v in outcomes.items())
             + f"; the data-lost count is the {lost_wal_rows} WAL variants whose damage took commit B with it "
             "(SQLite drops the WAL from the first bad frame on, silently: no error, integrity_check ok); "
             "checkpointed data always survived and the index never served the lost faces")
    row.note("commit B kept per WAL variant: " + "; ".join(wal_kept))


# ================================================================= main
def render(rows: list[Row], meta: dict) -> str:
    lines = ["| probe | trials | failures | data lost | notes |", "|---|---:|---:|---:|---|"]
    for r in rows:
        notes = "; ".join(r.notes).replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {r.n}. {r.probe} | {r.trials} | {r.failures} | {r.data_lost} | {notes} ({r.seconds:.0f} s) |")
    out = "\n".join(lines) + "\n"
    details = [(r.n, d) for r in rows for d in r.details]
    if details:
        out += "\nFailed checks:\n\n" + "\n".join(f"- probe {n}: {d}".replace("\n", " ") for n, d in details[:200]) + "\n"
        if len(details) > 200:
            out += f"- ... {len(details) - 200} more\n"
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="", help="comma-separated probe numbers (default: all)")
    ap.add_argument("--quick", action="store_true", help="a few trials of each (smoke run)")
    ap.add_argument("--seed", type=int, default=20240607)
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the Markdown table")
    ap.add_argument("--out", type=Path, default=None, help="also write the Markdown report to this file")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folders")
    args = ap.parse_args(argv)
    import logging

    from tqdm import tqdm

    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    warnings.simplefilter("ignore", UserWarning)  # PIL on the bad files: noise on the progress bars

    chosen = sorted(PROBES) if not args.only else [int(x) for x in args.only.split(",") if x.strip()]
    unknown = [n for n in chosen if n not in PROBES]
    if unknown:
        ap.error(f"unknown probe(s) {unknown}; valid: {sorted(PROBES)}")
    if not LFW.is_dir():
        ap.error(f"lfw-dev photos not found at {LFW}; set ASPL_LFW_DEV")
    os.environ.setdefault("STREAMLIT_LOGGER_LEVEL", "error")
    os.environ.pop("ASPL_UPLOAD_QUOTA_BYTES", None)
    os.environ.pop("ASPL_IMPORT_ROOTS", None)
    command = "python bench/fault_probe.py" + ("" if argv is None and len(sys.argv) == 1 else " " + " ".join(
        sys.argv[1:] if argv is None else argv))
    t_all = time.monotonic()
    rows: list[Row] = []
    cwd = os.getcwd()
    for n in chosen:
        title, fn = PROBES[n]
        row = Row(n, title)
        tmp = Path(tempfile.mkdtemp(prefix=f"fault_probe_{n}_"))
        ctx = Ctx(tmp, random.Random(f"{args.seed}-{n}"), args.quick, args.seed)
        row.bar = tqdm(total=0, desc=f"{n}. {title[:40]}", file=sys.stderr, leave=True, dynamic_ncols=True)
        t0 = time.monotonic()
        try:
            fn(ctx, row)
        except Exception as e:  # noqa: BLE001 - a probe that breaks is reported, the others still run
            row.failures += 1
            row.details.append(f"probe error: {exc_text(e)}")
            row.note(f"probe stopped early: {type(e).__name__}: {str(e)[:200]}")
            traceback.print_exc()
        finally:
            os.chdir(cwd)
            row.seconds = time.monotonic() - t0
            row.bar.close()
            row.bar = None
            if args.keep:
                print(f"probe {n}: kept {tmp}", file=sys.stderr)
            else:
                for p in tmp.rglob("*"):  # mode-000 files and folders
                    with contextlib.suppress(OSError):
                        if not p.is_symlink():
                            p.chmod(0o700)
                shutil.rmtree(tmp, ignore_errors=True)
        rows.append(row)
    total = time.monotonic() - t_all
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        rev += " (with uncommitted changes)" if dirty else ""
    except (OSError, subprocess.SubprocessError):
        rev = "unknown"
    meta = {"date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"), "command": command,
            "commit": rev,
            "seconds": round(total, 1), "cpus": os.cpu_count(), "python": sys.version.split()[0], "seed": args.seed,
            "quick": args.quick}
    table = render(rows, meta)
    if args.json:
        print(json.dumps({**meta, "rows": [{"probe": f"{r.n}. {r.probe}", "trials": r.trials, "failures": r.failures,
                                            "data_lost": r.data_lost, "notes": r.notes, "seconds": round(r.seconds, 1),
                                            "details": r.details} for r in rows]}, indent=2))
    else:
        print(table)
        print(f"total {total:.0f} s", file=sys.stderr)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        head = (f"# Fault and security probe\n\n{meta['date'][:10]}, machine: {meta['cpus']}-core CPU (no GPU), "
                f"Python {meta['python']}, commit {rev}; command: `{command}` (seed {args.seed}); total "
                f"{total / 60:.1f} min.\n\n"
                "*failures*: the app did not do what it must (crash, hang, wrong outcome, access granted); "
                "*data lost*: committed data missing or inconsistent afterwards. A trial counts once per column.\n\n")
        args.out.write_text(head + table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
