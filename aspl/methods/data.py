"""Aligned face crops for the methods: from a labelled folder (cached as npz) or from a library."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..datasets import iter_prominent_faces, labelled_photos

__all__ = ["FaceCrops", "folder_crops", "library_crops", "DEFAULT_CACHE"]

#: Crop cache next to the repository (gitignored).
DEFAULT_CACHE = Path(__file__).resolve().parents[2] / ".cache" / "crops"


@dataclass
class FaceCrops:
    """``crops`` (N x 160 x 160 x 3 uint8), person ``labels`` and ``y`` (ints), source ``paths``."""

    crops: np.ndarray
    labels: list[str]
    paths: list[str]

    @property
    def y(self) -> np.ndarray:
        names = sorted(set(self.labels))
        idx = {n: i for i, n in enumerate(names)}
        return np.array([idx[n] for n in self.labels], dtype=np.int64)

    def subset(self, rows: np.ndarray) -> "FaceCrops":
        rows = np.asarray(rows)
        return FaceCrops(self.crops[rows], [self.labels[i] for i in rows], [self.paths[i] for i in rows])


def folder_crops(folder: str | Path, people: int | None = None, max_per_person: int | None = None,
                 min_per_person: int = 1, cache_dir: str | Path | None = DEFAULT_CACHE,
                 detector: Any = None, batch_size: int = 16) -> FaceCrops:
    """Most prominent aligned face of each photo in a person-per-folder tree; cached as npz.

    ``people`` keeps the first people (sorted) that have at least ``min_per_person`` photos.
    """
    from models.detection import FaceDetector

    root = Path(folder)
    items = labelled_photos(root, None, None)
    by: dict[str, list[Path]] = {}
    for name, p in items:
        by.setdefault(name, []).append(p)
    names = [n for n in sorted(by) if len(by[n]) >= min_per_person]
    if people is not None:
        names = names[:people]
    items = [(n, p) for n in names for p in by[n][:max_per_person]]
    key = hashlib.sha256("\n".join(f"{n}/{p.name}:{p.stat().st_size}" for n, p in items).encode()).hexdigest()[:16]
    cache = Path(cache_dir) / f"{root.name}-crops-{key}.npz" if cache_dir else None
    if cache is not None and cache.is_file():
        z = np.load(cache, allow_pickle=False)
        return FaceCrops(z["crops"], list(z["labels"]), list(z["paths"]))
    detector = detector or FaceDetector()
    found = list(iter_prominent_faces(items, detector, batch_size))
    crops = [f.crop for _, _, f in found]
    labels = [n for n, _, _ in found]
    paths = [str(p) for _, p, _ in found]
    arr = np.stack(crops) if crops else np.zeros((0, 160, 160, 3), np.uint8)
    out = FaceCrops(arr, labels, paths)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, crops=arr, labels=np.array(labels), paths=np.array(paths))
        tmp.replace(cache)
    return out


def library_crops(lib: Any, labelled_only: bool = False) -> tuple[list[int], list[np.ndarray], np.ndarray]:
    """``(face_ids, crops, person_ids)`` of a library's usable faces (person -1 when unlabelled)."""
    ids = list(lib.face_ids())
    person = {int(r["face_id"]): int(r["person_id"]) for r in lib.labels()}
    if labelled_only:
        ids = [i for i in ids if i in person]
    crops = lib.face_crops(ids) if ids else []
    return ids, crops, np.array([person.get(i, -1) for i in ids], dtype=np.int64)
