"""Video face tracks: read frames, detect faces per frame, link them into tracks, store each track.

Frames come from a folder of images, an animated image (GIF, APNG, animated
WebP, multi-page TIFF; Pillow) or a video file (MP4, AVI, ...) through PyAV
when it is installed (``pip install av``). Faces are linked frame to frame by
box overlap (IoU) and embedding similarity (greedy, best pairs first); a track
ends after ``max_gap`` frames without a match. Every frame with faces is stored
as an image ``VIDEO#frame=N``; every track as a row of ``tracks`` so that the
annotator labels it once (:meth:`storage.Library.label_track`). A track's
embedding is the LRCN member's (``embed_track``) or the mean of its faces'.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
from PIL import Image, ImageSequence

from ..imageio import is_image_path

__all__ = ["read_frames", "iou", "Track", "link_tracks", "VideoImportSummary", "import_video", "track_embedding"]

log = logging.getLogger(__name__)

_ANIMATED = {".gif", ".png", ".apng", ".webp", ".tif", ".tiff"}


def read_frames(path: str | Path, every: int = 1, max_frames: int | None = None) -> Iterator[tuple[int, Image.Image]]:
    """``(frame number, RGB image)`` for every ``every``-th frame of a video, animated image or frame folder."""
    p = Path(path)
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    if not p.exists():
        raise FileNotFoundError(f"video not found: {p}")
    n = 0

    def take(i: int) -> bool:
        return i % every == 0 and (max_frames is None or n < max_frames)

    if p.is_dir():
        for i, f in enumerate(sorted(q for q in p.iterdir() if q.is_file() and is_image_path(q))):
            if take(i):
                with Image.open(f) as im:
                    yield i, im.convert("RGB")
                n += 1
        return
    if p.suffix.lower() in _ANIMATED:
        with Image.open(p) as im:
            for i, fr in enumerate(ImageSequence.Iterator(im)):
                if take(i):
                    yield i, fr.convert("RGB")
                    n += 1
        return
    try:
        import av  # type: ignore[import-not-found]
    except ImportError:
        raise ValueError(f"cannot read {p.name}: video files need PyAV (pip install av); animated images "
                         f"({', '.join(sorted(_ANIMATED))}) and frame folders work without it") from None
    with av.open(str(p)) as container:
        for i, fr in enumerate(container.decode(video=0)):
            if take(i):
                yield i, fr.to_image().convert("RGB")
                n += 1


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two ``(x1, y1, x2, y2)`` boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass
class Track:
    """Detections linked over time: ``items`` are (frame, detection index within the frame's list)."""

    items: list[tuple[int, int]] = field(default_factory=list)
    last_box: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    last_emb: np.ndarray | None = None
    last_frame: int = -1


def link_tracks(frames: Sequence[tuple[int, Sequence[tuple[float, float, float, float]], np.ndarray]],
                min_iou: float = 0.3, min_sim: float = 0.95, min_sim_overlap: float = 0.9,
                max_gap: int = 5) -> list[Track]:
    """Greedy tracking. ``frames``: ``(frame number, boxes, unit embeddings)`` in time order.

    A detection joins a live track when its box overlaps the track's last box (IoU >= ``min_iou``)
    and their cosine is >= ``min_sim_overlap``, or, anywhere in the frame, when the cosine is >=
    ``min_sim`` (re-acquisition). Defaults suit dlib-resnet (same person at dlib's 0.6 distance: cosine > 0.82); a
    different face at the same place (a cut) starts a new track. dlib cosines between different
    people are often 0.75-0.88, hence the high thresholds.
    """
    done: list[Track] = []
    live: list[Track] = []
    for fno, boxes, embs in frames:
        still = []
        for t in live:
            (still if fno - t.last_frame <= max_gap else done).append(t)
        live = still
        cand = []
        for ti, t in enumerate(live):
            for di, box in enumerate(boxes):
                ov = iou(t.last_box, box)
                sim = float(np.dot(t.last_emb, embs[di])) if t.last_emb is not None else 0.0
                if (ov >= min_iou and sim >= min_sim_overlap) or sim >= min_sim:
                    cand.append((ov + sim, ti, di))
        used_t, used_d = set(), set()
        for _, ti, di in sorted(cand, reverse=True):
            if ti in used_t or di in used_d:
                continue
            used_t.add(ti)
            used_d.add(di)
            t = live[ti]
            t.items.append((fno, di))
            t.last_box, t.last_emb, t.last_frame = tuple(boxes[di]), embs[di], fno
        for di, box in enumerate(boxes):
            if di not in used_d:
                live.append(Track([(fno, di)], tuple(box), embs[di], fno))
    return done + live


@dataclass
class VideoImportSummary:
    frames: int = 0
    frames_with_faces: int = 0
    faces: int = 0
    tracks: list[int] = field(default_factory=list)
    track_sizes: list[int] = field(default_factory=list)


def import_video(lib: Any, indexes: Any, path: str | Path, embedder: Any = None, detector: Any = None,
                 every: int = 1, max_frames: int | None = None, min_track: int = 1,
                 min_iou: float = 0.3, min_sim: float = 0.95, min_sim_overlap: float = 0.9, max_gap: int = 5,
                 batch_size: int = 8
                 ) -> VideoImportSummary:
    """Import a video's faces into ``lib`` as tracks; returns a summary with the new track ids.

    Tracks shorter than ``min_track`` faces are stored as plain faces without a track.
    """
    from models import create_backbone, default_backbone
    from models.detection import FaceDetector
    from storage.db import NewFace

    detector = detector or FaceDetector()
    embedder = embedder or create_backbone(lib.get_setting("backbone") or default_backbone())
    name = embedder.info.name
    p = Path(path)
    s = VideoImportSummary()
    per_frame: list[tuple[int, Image.Image, list[Any], np.ndarray]] = []
    batch: list[tuple[int, Image.Image]] = []

    def flush() -> None:
        dets = detector.detect([im for _, im in batch])
        crops = [f.crop for faces in dets for f in faces]
        vecs = embedder.embed(crops) if crops else np.zeros((0, embedder.info.embedding_dim), np.float32)
        k = 0
        for (fno, im), faces in zip(batch, dets):
            per_frame.append((fno, im, faces, vecs[k:k + len(faces)]))
            k += len(faces)
        batch.clear()

    for fno, im in read_frames(p, every, max_frames):
        s.frames += 1
        batch.append((fno, im))
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    tracks = link_tracks([(fno, [f.box for f in faces], v) for fno, _, faces, v in per_frame],
                         min_iou, min_sim, min_sim_overlap, max_gap)
    index = indexes.get(name, dim=embedder.info.embedding_dim)
    face_id_of: dict[tuple[int, int], int] = {}
    for fno, im, faces, vecs in per_frame:
        if not faces:
            continue
        raw = im.tobytes()
        sha = hashlib.sha256(str(p.resolve()).encode() + b"#" + str(fno).encode() + b":" + raw).hexdigest()
        new = [NewFace(f.box, f.landmarks, f.prob, f.crop, embeddings={name: vecs[j]}) for j, f in enumerate(faces)]
        _, ids = lib.add_image(f"{p}#frame={fno}", sha, len(raw), im.width, im.height, new)
        if not ids:
            log.info("frame %d of %s already imported", fno, p)
            continue
        index.add(np.array(ids, np.int64), np.stack(vecs))
        s.frames_with_faces += 1
        s.faces += len(ids)
        for j, fid in enumerate(ids):
            face_id_of[(fno, j)] = fid
    indexes.save(name)
    for t in sorted(tracks, key=lambda t: t.items[0]):
        members = [(fno, face_id_of[(fno, j)]) for fno, j in t.items if (fno, j) in face_id_of]
        if len(members) >= min_track:
            s.tracks.append(lib.add_track(str(p), members))
            s.track_sizes.append(len(members))
    lib.log_event("video_imported", None, path=str(p), frames=s.frames, faces=s.faces, tracks=len(s.tracks))
    return s


def track_embedding(lib: Any, track_id: int, embedder: Any = None, backbone: str | None = None) -> np.ndarray:
    """One unit vector for a track: the LRCN member's ``embed_track`` over its crops when ``embedder`` has it,
    else the normalised mean of the faces' stored ``backbone`` embeddings."""
    ids = lib.track_face_ids(track_id)
    if embedder is not None and hasattr(embedder, "embed_track"):
        return embedder.embed_track(lib.face_crops(ids))
    if embedder is not None:
        X = embedder.embed(lib.face_crops(ids))
    else:
        if backbone is None:
            raise ValueError("pass an embedder or the backbone whose stored embeddings to pool")
        _, X = lib.embeddings(backbone, ids)
        if len(X) == 0:
            raise ValueError(f"track {track_id} has no {backbone} embeddings")
    v = np.asarray(X, np.float32).mean(0)
    return v / (np.linalg.norm(v) or 1.0)
