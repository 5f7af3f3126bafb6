"""Face detection (MTCNN, facenet-pytorch's shipped weights) and alignment.

Each detected face is aligned by a similarity transform that maps its five
MTCNN landmarks (eyes, nose, mouth corners) onto a fixed template, giving an
upright ``crop_size`` x ``crop_size`` RGB crop with some margin around the face.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image

from .torch_base import pick_device

# ArcFace's 112x112 five-point template, scaled by 0.75 and centred in a
# 112-pixel frame so the crop keeps forehead, chin and some background.
_ARCFACE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                         [41.5493, 92.3655], [70.7299, 92.2041]], np.float64)
ALIGN_TEMPLATE = (_ARCFACE_112 - 56.0) * 0.75 / 112.0 + 0.5  # in units of the crop side
ALIGN_TEMPLATE[:, 1] -= 0.03  # eyes slightly above centre, chin inside the frame


@dataclass
class DetectedFace:
    """One face: box (x1, y1, x2, y2) and landmarks (5 x 2) in original image pixels."""

    box: tuple[float, float, float, float]
    landmarks: np.ndarray
    prob: float
    crop: np.ndarray  # uint8, crop_size x crop_size x 3

    @property
    def area(self) -> float:
        x1, y1, x2, y2 = self.box
        return max(0.0, x2 - x1) * max(0.0, y2 - y1)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (Umeyama 1991) mapping ``src`` points onto ``dst``; 2x3 matrix."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s_c, d_c = src - mu_s, dst - mu_d
    cov = d_c.T @ s_c / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[1, 1] = -1
    rot = u @ d @ vt
    var_s = (s_c ** 2).sum() / len(src)
    scale = (sig * np.diag(d)).sum() / var_s if var_s > 0 else 1.0
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m


def align_face(image: Image.Image, landmarks: np.ndarray, crop_size: int = 160) -> np.ndarray:
    """Warp ``image`` so ``landmarks`` land on :data:`ALIGN_TEMPLATE`; uint8 RGB crop."""
    m = similarity_transform(landmarks, ALIGN_TEMPLATE * crop_size)
    full = np.vstack([m, [0, 0, 1]])
    inv = np.linalg.inv(full)[:2]
    # PIL wants the inverse map (output pixel -> input pixel).
    out = image.transform((crop_size, crop_size), Image.Transform.AFFINE, data=tuple(inv.ravel()),
                          resample=Image.Resampling.BILINEAR)
    return np.asarray(out.convert("RGB"), dtype=np.uint8)


class FaceDetector:
    """MTCNN face detector with landmark alignment.

    Parameters: ``min_face_size`` in pixels of the detection image; ``thresholds``
    of MTCNN's three stages; ``min_prob`` drops weaker detections; images whose
    longer side exceeds ``max_side`` are downscaled for detection (crops are
    still cut from the full-resolution image; 2400 rather than 1600 finds 92% instead of 65% of the
    faces under 60 px in composed 12-megapixel crowd photos, for about twice the detection time on
    such photos: ``bench/detection_bench.py``); a box covered more than
    ``max_overlap`` by a more probable one is dropped (:func:`drop_overlapping`).
    """

    def __init__(self, min_face_size: int = 20, thresholds: Sequence[float] = (0.6, 0.7, 0.7),
                 min_prob: float = 0.9, crop_size: int = 160, max_side: int = 2400, max_overlap: float = 0.6,
                 device: str | None = None):
        self.min_face_size = min_face_size
        self.thresholds = tuple(thresholds)
        self.min_prob = min_prob
        self.crop_size = crop_size
        self.max_side = max_side
        self.max_overlap = max_overlap
        self.device = pick_device(device)
        self._mtcnn = None

    @property
    def mtcnn(self):
        if self._mtcnn is None:
            from facenet_pytorch import MTCNN

            self._mtcnn = MTCNN(keep_all=True, min_face_size=self.min_face_size,
                                thresholds=list(self.thresholds), device=self.device, select_largest=False)
        return self._mtcnn

    def can_scan(self, size: tuple[int, int]) -> bool:
        """Whether an image of ``size`` (w, h) can hold a face of ``min_face_size`` pixels (MTCNN's image
        pyramid is empty otherwise, and it fails on an empty list)."""
        return min(size) >= self.min_face_size

    def _scaled(self, img: Image.Image) -> tuple[Image.Image, float]:
        w, h = img.size
        fit = min(1.0, self.max_side / max(w, h))
        s = min(1.0, max(fit, self.min_face_size / max(1, min(w, h))))  # keep the shorter side scannable
        if max(w, h) * s > 16 * self.max_side:  # an extreme strip: not worth the memory, left unscannable
            s = fit
        if s < 1.0:
            img = img.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.BILINEAR)
        return img, s

    def detect(self, images: Sequence[Image.Image]) -> list[list[DetectedFace]]:
        """Faces in each RGB image, in order of decreasing probability.

        Images too small to hold a face of ``min_face_size`` pixels (see :meth:`can_scan`) have none.
        """
        results: list[list[DetectedFace]] = [[] for _ in images]
        scaled = [self._scaled(im) if self.can_scan(im.size) else None for im in images]
        groups: dict[tuple[int, int], list[int]] = {}
        for i, sc in enumerate(scaled):
            if sc is not None and self.can_scan(sc[0].size):
                groups.setdefault(sc[0].size, []).append(i)
        for idxs in groups.values():
            batch = [scaled[i][0] for i in idxs]
            boxes, probs, points = self.mtcnn.detect(batch, landmarks=True)
            for j, i in enumerate(idxs):
                if boxes[j] is None:
                    continue
                s = scaled[i][1]
                faces = []
                for box, prob, pts in zip(boxes[j], probs[j], points[j]):
                    if prob is None or prob < self.min_prob:
                        continue
                    box = np.asarray(box, np.float64) / s
                    pts = np.asarray(pts, np.float64) / s
                    faces.append(DetectedFace(tuple(float(v) for v in box), pts.astype(np.float32), float(prob),
                                              align_face(images[i], pts, self.crop_size)))
                results[i] = drop_overlapping(faces, self.max_overlap)
        return results


def drop_overlapping(faces: Sequence[DetectedFace], max_overlap: float = 0.6) -> list[DetectedFace]:
    """``faces`` by decreasing probability, without any face whose box is covered more than ``max_overlap``
    (intersection over the smaller box's area) by a more probable kept face: MTCNN's own NMS works on
    intersection over union, so a small box inside a large one on the same face survives it (seen on
    lfw-dev: two boxes on one face, the same person asked twice)."""
    kept: list[DetectedFace] = []
    for f in sorted(faces, key=lambda f: -f.prob):
        x1, y1, x2, y2 = f.box
        a = max(0.0, x2 - x1) * max(0.0, y2 - y1)
        covered = False
        for k in kept:
            kx1, ky1, kx2, ky2 = k.box
            inter = max(0.0, min(x2, kx2) - max(x1, kx1)) * max(0.0, min(y2, ky2) - max(y1, ky1))
            if inter > max_overlap * max(min(a, k.area), 1e-9):
                covered = True
                break
        if not covered:
            kept.append(f)
    return kept


def clip_box(box: Sequence[float], width: float, height: float) -> tuple[float, float, float, float]:
    """The part of ``box`` (x1, y1, x2, y2) inside a ``width`` x ``height`` photo: MTCNN's box of a face cut
    by the photo's edge reaches outside it."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return max(x1, 0.0), max(y1, 0.0), min(x2, float(width)), min(y2, float(height))


def most_prominent(faces: Sequence[DetectedFace], image_size: tuple[int, int]) -> int | None:
    """Index of the largest face nearest the centre (area inside the photo x centrality), or None: a face
    cut by the photo's edge counts by its visible part (its box reaches outside the photo)."""
    if not faces:
        return None
    w, h = image_size
    half_diag = 0.5 * float(np.hypot(w, h))

    def score(f: DetectedFace) -> float:
        x1, y1, x2, y2 = clip_box(f.box, w, h)  # the visible part
        d = float(np.hypot((x1 + x2) / 2 - w / 2, (y1 + y2) / 2 - h / 2))
        return max(0.0, x2 - x1) * max(0.0, y2 - y1) * max(0.05, 1.0 - d / half_diag)

    return max(range(len(faces)), key=lambda i: score(faces[i]))
