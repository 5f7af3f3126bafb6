"""Detection recall: faces found against the true count, on lfw-dev and on group photos composed from it.

* **lfw-dev**: every photo shows its folder's person near the centre; a photo counts as found when a
  detected box holds the image centre. Extra boxes (bystanders) are counted, not judged.
* **composed group photos**: faces cut from lfw-dev photos (one person each, a margin around MTCNN's box
  on the original) pasted at known places and sizes on smooth backgrounds: small crowds in large
  camera-sized photos, a selfie (one face filling a third of the frame, cut by the edge, plus small ones
  behind), faces tilted up to 45 degrees; each photo then gets a camera's faults (exposure, blur, noise,
  JPEG at quality 35-90). A true face is found when a detected box overlaps its box with
  IoU >= 0.3; a detected box matching no pasted face is counted as unmatched (a pasted patch sometimes
  shows part of a neighbour's face too, so not every unmatched box is false).

Each detector setting runs on the same photos (seeded), so rows compare directly:

    python bench/detection_bench.py [--photos 400] [--groups 24] [--seed 0] [--out bench/results/detection.md]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
LFW = Path(os.environ.get("ASPL_LFW_DEV", ROOT.parent / "shared" / "data" / "lfw-dev"))

from models.detection import FaceDetector  # noqa: E402

SETTINGS = {
    "max side 1600 (the earlier default)": {"max_side": 1600},
    "default (max side 2400)": {},
    "max side 3200": {"max_side": 3200},
    "min face 12 px": {"min_face_size": 12},
    "thresholds 0.5/0.6/0.6": {"thresholds": (0.5, 0.6, 0.6)},
}


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    ua = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / ua if ua > 0 else 0.0


def lfw_photos(n: int, seed: int) -> list[Path]:
    files = sorted(LFW.glob("*/*.jpg"))
    return sorted(random.Random(seed).sample(files, min(n, len(files))))


def face_patches(det: FaceDetector, files: list[Path]) -> list[tuple[Image.Image, tuple[float, float, float, float]]]:
    """(patch, face box inside the patch): each photo's central face with a margin of 40% of its size."""
    out = []
    for f in files:
        img = Image.open(f).convert("RGB")
        faces = det.detect([img])[0]
        c = (img.width / 2, img.height / 2)
        main = next((x for x in faces if x.box[0] <= c[0] <= x.box[2] and x.box[1] <= c[1] <= x.box[3]), None)
        if main is None:
            continue
        x1, y1, x2, y2 = main.box
        m = 0.4 * max(x2 - x1, y2 - y1)
        px1, py1 = max(0, int(x1 - m)), max(0, int(y1 - m))
        px2, py2 = min(img.width, int(x2 + m)), min(img.height, int(y2 + m))
        out.append((img.crop((px1, py1, px2, py2)), (x1 - px1, y1 - py1, x2 - px1, y2 - py1)))
    return out


def background(w: int, h: int, rng: np.random.Generator) -> Image.Image:
    small = rng.integers(40, 220, size=(8, 12, 3), dtype=np.uint8)
    return Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC).filter(ImageFilter.GaussianBlur(8))


def compose(patches, kind: str, rng: np.random.Generator) -> tuple[Image.Image, list[tuple[float, ...]]]:
    """A group photo of ``kind`` ('crowd', 'selfie', 'tilted') and its true face boxes."""
    if kind == "crowd":
        w, h = (4000, 3000) if rng.random() < 0.5 else (2400, 1600)
        sizes = np.exp(rng.uniform(np.log(16), np.log(200), size=int(rng.integers(6, 13))))
    elif kind == "selfie":
        w, h = 3000, 4000
        sizes = np.concatenate([[w * rng.uniform(0.3, 0.45)],
                                np.exp(rng.uniform(np.log(60), np.log(300), size=int(rng.integers(3, 7))))])
    else:
        w, h = 1600, 1200
        sizes = np.exp(rng.uniform(np.log(60), np.log(200), size=int(rng.integers(3, 7))))
    canvas = background(w, h, rng)
    boxes: list[tuple[float, ...]] = []
    placed: list[tuple[float, ...]] = []
    for k, size in enumerate(sizes):
        patch, (fx1, fy1, fx2, fy2) = patches[int(rng.integers(len(patches)))]
        s = float(size) / max(fx2 - fx1, 1.0)
        pw, ph = max(1, round(patch.width * s)), max(1, round(patch.height * s))
        p = patch.resize((pw, ph), Image.Resampling.BICUBIC)
        angle = float(rng.uniform(-45, 45)) if kind == "tilted" else 0.0
        for _ in range(60):
            if kind == "selfie" and k == 0:  # the photographer's face, cut by the lower-left edge
                x, y = int(-rng.uniform(0.1, 0.3) * pw), int(h - rng.uniform(0.7, 0.9) * ph)
            else:
                x, y = int(rng.integers(0, max(1, w - pw))), int(rng.integers(0, max(1, h - ph)))
            box = (x, y, x + pw, y + ph)
            if all(iou(box, q) == 0 and not _inside(box, q) for q in placed):
                break
        else:
            continue
        placed.append(box)
        if angle:
            mask = Image.new("L", p.size, 255).rotate(angle, resample=Image.Resampling.BICUBIC, expand=False)
            p = p.rotate(angle, resample=Image.Resampling.BICUBIC, expand=False)
            canvas.paste(p, (x, y), mask)
        else:
            canvas.paste(p, (x, y))
        fb = (x + fx1 * s, y + fy1 * s, x + fx2 * s, y + fy2 * s)
        # the visible part of the face (a selfie's is cut by the frame)
        vis = (max(0, fb[0]), max(0, fb[1]), min(w, fb[2]), min(h, fb[3]))
        if (vis[2] - vis[0]) * (vis[3] - vis[1]) >= 0.5 * (fb[2] - fb[0]) * (fb[3] - fb[1]):
            boxes.append(vis)
    return degrade(canvas, rng), boxes


def degrade(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A camera's faults: exposure and contrast off, a little blur or noise, JPEG at quality 35-90."""
    a = np.asarray(img, np.float32)
    a = (a - 128) * rng.uniform(0.6, 1.2) + 128 * rng.uniform(0.6, 1.3)
    a = a + rng.normal(0, rng.uniform(0, 8), size=a.shape)
    img = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    if rng.random() < 0.5:
        img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 2.0))))
    import io
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=int(rng.integers(35, 91)))
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def _inside(a, b) -> bool:
    return a[0] >= b[0] and a[1] >= b[1] and a[2] <= b[2] and a[3] <= b[3]


def score_groups(det: FaceDetector, photos) -> dict:
    found = total = fp = 0
    small_found = small_total = 0
    t = time.perf_counter()
    for img, truth in photos:
        got = [f.box for f in det.detect([img])[0]]
        matched = set()
        for tb in truth:
            j = max(range(len(got)), key=lambda j: iou(tb, got[j]), default=None)
            hit = j is not None and j not in matched and iou(tb, got[j]) >= 0.3
            if hit:
                matched.add(j)
            total += 1
            found += hit
            if tb[2] - tb[0] < 60:
                small_total += 1
                small_found += hit
        fp += len(got) - len(matched)
    return {"faces": total, "found": found, "recall": found / max(total, 1),
            "small_faces": small_total, "small_recall": small_found / max(small_total, 1),
            "false_boxes": fp, "seconds_per_photo": (time.perf_counter() - t) / max(len(photos), 1)}


def score_lfw(det: FaceDetector, files: list[Path]) -> dict:
    found = boxes = 0
    t = time.perf_counter()
    for i in range(0, len(files), 16):
        imgs = [Image.open(f).convert("RGB") for f in files[i:i + 16]]
        for img, faces in zip(imgs, det.detect(imgs)):
            c = (img.width / 2, img.height / 2)
            found += any(f.box[0] <= c[0] <= f.box[2] and f.box[1] <= c[1] <= f.box[3] for f in faces)
            boxes += len(faces)
    return {"photos": len(files), "subject_found": found, "recall": found / max(len(files), 1),
            "boxes_per_photo": boxes / max(len(files), 1), "seconds_per_photo": (time.perf_counter() - t) / len(files)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--photos", type=int, default=400, help="lfw-dev photos scored")
    ap.add_argument("--groups", type=int, default=24, help="composed group photos (a third of each kind)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--settings", default=",".join(SETTINGS), help="comma-separated rows of SETTINGS")
    ap.add_argument("--save", type=Path, help="write the composed photos here (to look at)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "detection.md")
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    base = FaceDetector()
    patches = face_patches(base, lfw_photos(200, args.seed + 1))
    kinds = ["crowd", "selfie", "tilted"]
    groups = {k: [compose(patches, k, rng) for _ in range(max(1, args.groups // 3))] for k in kinds}
    files = lfw_photos(args.photos, args.seed)
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
        for k in kinds:
            for i, (img, _) in enumerate(groups[k]):
                img.save(args.save / f"{k}{i}.jpg", quality=90)

    rows = []
    for name in args.settings.split(","):
        det = FaceDetector(**SETTINGS[name])
        row = {"setting": name, "lfw": score_lfw(det, files)}
        row.update({k: score_groups(det, groups[k]) for k in kinds})
        rows.append(row)
        print(json.dumps(row), flush=True)

    lines = [f"Seed {args.seed}; {args.photos} lfw-dev photos (150 px); composed photos: "
             + ", ".join(f"{len(groups[k])} {k} ({sum(len(b) for _, b in groups[k])} faces)" for k in kinds) + ".",
             "",
             "| setting | lfw-dev subject found | boxes / photo | crowd recall (faces < 60 px) | selfie recall | "
             "tilted recall | unmatched boxes (crowd / selfie / tilted) | s / crowd or selfie photo |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        c, s, t = r["crowd"], r["selfie"], r["tilted"]
        lines.append(f"| {r['setting']} | {r['lfw']['recall']:.1%} | {r['lfw']['boxes_per_photo']:.2f} | "
                     f"{c['recall']:.1%} ({c['small_recall']:.1%} of {c['small_faces']}) | {s['recall']:.1%} | "
                     f"{t['recall']:.1%} | {c['false_boxes']} / {s['false_boxes']} / {t['false_boxes']} | "
                     f"{(c['seconds_per_photo'] + s['seconds_per_photo']) / 2:.2f} |")
    text = "\n".join(lines)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    print(text)


if __name__ == "__main__":
    main()
