"""Import and embedding throughput on lfw-dev, and peak memory.

    python bench/import_bench.py [--data ../shared/data/lfw-dev] [--photos 400] [--backbones dlib-resnet,...]

Measures (1) the full import (hash, decode, MTCNN detection + alignment, embed,
store, index) in photos/s and faces/s, and (2) embedding alone for each backbone
in faces/s over the library's stored crops. Peak RSS is read from the kernel.
Writes a markdown table to bench/results/import.md.
"""
from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from aspl.datasets import labelled_photos  # noqa: E402
from aspl.importer import Importer  # noqa: E402
from models import create_backbone  # noqa: E402
from models.detection import FaceDetector  # noqa: E402
from storage import IndexStore, Library  # noqa: E402


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "lfw-dev")
    ap.add_argument("--photos", type=int, default=400, help="photos to import (spread over people)")
    ap.add_argument("--backbones", default="dlib-resnet,inception-resnet-v1,fbnet-c,simplenet-v1-050")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "import.md")
    args = ap.parse_args()

    items = labelled_photos(args.data, max_per_person=max(1, args.photos // 62 + 1))[: args.photos]
    work = Path(tempfile.mkdtemp(prefix="aspl-bench-"))
    try:
        photos = work / "photos"
        for name, p in items:
            (photos / name).mkdir(parents=True, exist_ok=True)
            shutil.copy(p, photos / name / p.name)
        lib = Library(work / "lib")
        imp = Importer(lib, IndexStore(lib), detector=FaceDetector(), backbone="dlib-resnet", batch_size=16)
        # Warm-up (model loading is not throughput).
        imp.detector.detect([]), imp.embedder.embed([])
        t = time.perf_counter()
        s = imp.run(photos, labels_from_folders=True, progress=True)
        dt = time.perf_counter() - t
        rows = [("import (MTCNN + dlib-resnet + store + index)", s.imported, s.faces, dt, s.imported / dt, s.faces / dt)]

        det = FaceDetector()
        from aspl.imageio import load_image

        imgs = [load_image(p) for _, p in items]
        det.detect(imgs[:16])
        t = time.perf_counter()
        n_faces = 0
        for i in range(0, len(imgs), 16):
            n_faces += sum(len(f) for f in det.detect(imgs[i:i + 16]))
        dt = time.perf_counter() - t
        rows.append(("MTCNN detection + alignment only", len(imgs), n_faces, dt, len(imgs) / dt, n_faces / dt))

        ids = lib.face_ids()
        crops = lib.face_crops(ids)
        for name in args.backbones.split(","):
            emb = create_backbone(name)
            emb.embed(crops[:8])
            t = time.perf_counter()
            emb.embed(crops, batch_size=32)
            dt = time.perf_counter() - t
            rows.append((f"embed with {name}", None, len(crops), dt, None, len(crops) / dt))
        lib.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    lines = ["| step | photos | faces | seconds | photos/s | faces/s |", "|---|---|---|---|---|---|"]
    for step, ph, fa, dt, ps, fs in rows:
        lines.append(f"| {step} | {ph if ph is not None else '–'} | {fa} | {dt:.1f} | "
                     f"{f'{ps:.1f}' if ps else '–'} | {fs:.1f} |")
    lines.append(f"\nPeak resident memory of the whole run: {peak_rss_mb():.0f} MB.")
    text = "\n".join(lines)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
