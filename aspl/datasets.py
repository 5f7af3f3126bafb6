"""Labelled face folders (one sub-folder per person) as embedding matrices.

Used by the simulation and the benchmarks: each photo's most prominent face is
detected, aligned and embedded; results are cached per (folder, backbone).
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
from tqdm.auto import tqdm

from .imageio import BadImageError, is_image_path, load_image

log = logging.getLogger(__name__)


@dataclass
class FolderEmbeddings:
    """Embeddings ``X`` (N x D, float32, unit rows) with person ``labels`` and source ``paths``."""

    X: np.ndarray
    labels: list[str]
    paths: list[str]
    backbone: str

    @property
    def y(self) -> np.ndarray:
        """Integer class ids in order of sorted person names."""
        names = sorted(set(self.labels))
        idx = {n: i for i, n in enumerate(names)}
        return np.array([idx[n] for n in self.labels], dtype=np.int64)


def labelled_photos(folder: str | Path, max_per_person: int | None = None,
                    people: int | None = None) -> list[tuple[str, Path]]:
    """(person, path) for image files in each sub-folder, sorted; subsets for quick runs."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder not found: {root}")
    out = []
    dirs = sorted(d for d in root.iterdir() if d.is_dir())
    if people is not None:
        dirs = dirs[:people]
    for d in dirs:
        files = sorted(p for p in d.rglob("*") if p.is_file() and is_image_path(p))
        if max_per_person is not None:
            files = files[:max_per_person]
        out += [(d.name, p) for p in files]
    if not out:
        raise ValueError(f"no person sub-folders with images in {root}")
    return out


def iter_prominent_faces(items: Sequence[tuple[str, Path]], detector, batch_size: int = 16,
                         progress: bool = False, desc: str = "detecting") -> Iterator[tuple[str, Path, Any]]:
    """``(person, path, face)`` for the most prominent face of each photo, in order.

    Unreadable photos and photos without a face are logged and skipped.
    """
    from models.detection import most_prominent

    for i in tqdm(range(0, len(items), batch_size), desc=desc, unit="batch", disable=not progress):
        keep, imgs = [], []
        for name, p in items[i:i + batch_size]:
            try:
                imgs.append(load_image(p))
                keep.append((name, p))
            except BadImageError as e:
                log.warning("skipping %s", e)
        for (name, p), img, faces in zip(keep, imgs, detector.detect(imgs)):
            j = most_prominent(faces, img.size)
            if j is None:
                log.info("no face in %s", p)
                continue
            yield name, p, faces[j]


def folder_embeddings(folder: str | Path, backbone: str = "dlib-resnet", cache_dir: str | Path | None = None,
                      max_per_person: int | None = None, people: int | None = None,
                      batch_size: int = 32, progress: bool = True, embedder=None, detector=None) -> FolderEmbeddings:
    """Embed the most prominent face of every photo in a labelled folder (cached)."""
    from models import create_backbone
    from models.detection import FaceDetector

    items = labelled_photos(folder, max_per_person, people)
    key = hashlib.sha256("\n".join(f"{n}/{p.name}:{p.stat().st_size}" for n, p in items).encode()).hexdigest()[:16]
    cache = Path(cache_dir) / f"{Path(folder).name}-{backbone}-{key}.npz" if cache_dir else None
    if cache is not None and cache.is_file():
        z = np.load(cache, allow_pickle=False)
        return FolderEmbeddings(z["X"], list(z["labels"]), list(z["paths"]), backbone)
    detector = detector or FaceDetector()
    embedder = embedder or create_backbone(backbone)
    found = list(iter_prominent_faces(items, detector, batch_size, progress, desc=f"detecting ({backbone})"))
    labels = [name for name, _, _ in found]
    paths = [str(p) for _, p, _ in found]
    Xa = (embedder.embed([f.crop for _, _, f in found], batch_size=batch_size).astype(np.float32) if found
          else np.zeros((0, embedder.info.embedding_dim), np.float32))
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, X=Xa, labels=np.array(labels), paths=np.array(paths))
        tmp.replace(cache)
    return FolderEmbeddings(Xa, labels, paths, backbone)
