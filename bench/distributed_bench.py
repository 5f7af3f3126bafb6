"""Distributed pieces measured on one machine: import on Ray, and the key-press path on PostgreSQL.

**Import** (``--part import``): the local import against the import on a local Ray cluster with 1 and 2
workers.

The same ``--photos`` lfw-dev photos (copied to a temp folder, folder per person) are imported into fresh
libraries by :class:`aspl.importer.Importer` and by :class:`aspl.distributed.RayImporter` with
``--ray-workers`` 1 and 2 on a local cluster started here (``ray.init(num_cpus=...)``), in one run, in that
order; real MTCNN and the default backbone (dlib-resnet) throughout. Prints photos per second and the
ratio of each Ray run to the local one; the Ray runs include starting the actors (models loaded once per
actor), not starting the cluster. ``--json`` prints one JSON object.

**Key presses** (``--part keys``): ``bench/scale_bench.py --bulk --no-round`` on a ``--faces`` library
(``--people`` people) in a SQLite file and in a PostgreSQL database of a throwaway local server
(``tests/pgserver.py``), the same ``--keys`` answers through the service on each; prints both JSON results
and the PostgreSQL/SQLite ratios of key-press CPU and wall time.

    .venv/bin/python bench/distributed_bench.py --photos 200
    .venv/bin/python bench/distributed_bench.py --part keys --faces 100000 --people 2000
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

LFW = REPO.parent / "shared" / "data" / "lfw-dev"


def photos(dest: Path, n: int) -> Path:
    """The first ``n`` lfw-dev photos (sorted), folder per person, copied under ``dest``."""
    files = sorted(LFW.glob("*/*.jpg"))[:n]
    for f in files:
        (dest / f.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(f, dest / f.parent.name / f.name)
    return dest


def timed_import(make, root: Path, lib_dir: Path) -> dict:
    from storage import IndexStore, Library

    lib = Library(lib_dir)
    imp = make(lib, IndexStore(lib))
    t0 = time.perf_counter()
    s = imp.run(root, labels_from_folders=True, progress=False)
    dt = time.perf_counter() - t0
    lib.close()
    return {"seconds": round(dt, 1), "photos_per_s": round(s.files / dt, 2), "faces": s.faces,
            "imported": s.imported}


def keypresses(faces: int, people: int, keys: int) -> dict:
    """Key-press figures of scale_bench.py on SQLite and on PostgreSQL (same library, same answers)."""
    import subprocess

    sys.path.insert(0, str(REPO / "tests"))
    from pgserver import PgServer

    server = PgServer()
    out: dict = {}
    try:
        for engine in ("sqlite", "postgresql"):
            with tempfile.TemporaryDirectory(prefix=f"aspl-keys-{engine}-") as tmp:
                cmd = [sys.executable, str(REPO / "bench" / "scale_bench.py"), "--bulk", "--no-round", "--json",
                       "--faces", str(faces), "--people", str(people), "--keys", str(keys), "--dir", tmp]
                if engine == "postgresql":
                    cmd += ["--pg", server.new_database()]
                res = subprocess.run(cmd, capture_output=True, text=True, check=True)
                out[engine] = json.loads(res.stdout.strip().splitlines()[-1])
    finally:
        server.stop()
    for k in ("keypress_cpu_ms_p50", "keypress_cpu_ms_p95", "keypress_wall_ms_p50", "keypress_wall_ms_p95"):
        out[f"{k}_pg_vs_sqlite"] = round(out["postgresql"][k] / max(out["sqlite"][k], 1e-9), 2)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("import", "keys", "all"), default="import")
    ap.add_argument("--faces", type=int, default=100_000, help="keys: library size")
    ap.add_argument("--people", type=int, default=2_000, help="keys: people")
    ap.add_argument("--keys", type=int, default=50, help="keys: answers timed")
    ap.add_argument("--photos", type=int, default=200)
    ap.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray cluster")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)

    import os

    if a.part == "keys":
        res = keypresses(a.faces, a.people, a.keys)
        print(json.dumps(res) if a.json else json.dumps(res, indent=1))
        return 0
    from aspl.distributed import RayImporter, connect
    from aspl.importer import Importer
    from models import create_backbone, default_backbone
    from models.detection import FaceDetector

    out: dict = {"photos": a.photos, "cpus": os.cpu_count(), "ray_cpus": a.cpus, "backbone": default_backbone()}
    with tempfile.TemporaryDirectory(prefix="aspl-dist-") as tmp:
        root = photos(Path(tmp) / "photos", a.photos)
        det, emb = FaceDetector(), create_backbone(default_backbone())
        out["local"] = timed_import(lambda lib, ix: Importer(lib, ix, detector=det, embedder=emb,
                                                             batch_size=a.batch_size), root, Path(tmp) / "local")
        t0 = time.perf_counter()
        connect(None, num_cpus=a.cpus)
        out["ray_start_s"] = round(time.perf_counter() - t0, 1)
        for w in (1, 2):
            out[f"ray_{w}"] = timed_import(lambda lib, ix: RayImporter(lib, ix, workers=w, detector=det, embedder=emb,
                                                                       batch_size=a.batch_size),
                                           root, Path(tmp) / f"ray{w}")
            out[f"ray_{w}_vs_local"] = round(out[f"ray_{w}"]["photos_per_s"] / out["local"]["photos_per_s"], 2)
    if a.part == "all":
        out["keys"] = keypresses(a.faces, a.people, a.keys)
    print(json.dumps(out) if a.json else json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
