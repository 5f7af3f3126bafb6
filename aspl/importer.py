"""Batch import of photo folders into a library: detect, align, embed, store, index.

Each photo is stored in one transaction (image + faces + embeddings + seed
label), so a crash or Ctrl-C leaves nothing half-written; re-running skips
photos already stored (content hash), which makes imports resumable and
idempotent. Files that cannot be used are recorded with a reason.
"""
from __future__ import annotations

import logging
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from tqdm.auto import tqdm

from .imageio import BadImageError, REASON_UNREADABLE, is_image_path, load_image, sha256_file

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int, str], None]


@dataclass
class ImportSummary:
    """What an import did."""

    files: int = 0
    imported: int = 0
    duplicates: int = 0
    without_faces: int = 0
    faces: int = 0
    seed_labels: int = 0
    rejected: Counter = field(default_factory=Counter)
    skipped_other_types: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d["rejected"] = dict(self.rejected)
        return d


def find_images(path: str | os.PathLike) -> tuple[list[Path], int]:
    """Image files under ``path`` (a file or a folder, recursive, sorted), and the count of other files."""
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"no such file or folder: {p}")
    if p.is_file():
        return ([p], 0) if is_image_path(p) else ([], 1)
    images, other = [], 0
    for root, dirs, files in os.walk(p):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for f in sorted(files):
            if f.startswith("."):
                continue
            fp = Path(root) / f
            if is_image_path(fp):
                images.append(fp)
            else:
                other += 1
    return images, other


def _person_from_folder(file: Path, root: Path) -> str | None:
    """The person a labelled photo belongs to: its top-level folder under ``root``
    (``root/Name/.../photo.jpg`` -> ``Name``), or ``root``'s own name for photos
    directly inside it. Underscores read as spaces."""
    try:
        rel = file.relative_to(root)
    except ValueError:
        return None
    name = rel.parts[0] if len(rel.parts) >= 2 else root.name
    return name.replace("_", " ").strip() or None


class BackboneMismatchError(ValueError):
    """An import asked for another backbone than the library's (switching is an explicit action)."""


class Importer:
    """Imports photos into ``library`` with a detector and the library's embedding backbone.

    The library's backbone is its ``backbone`` setting; a library without one
    (a new library) takes ``backbone`` (default: :func:`models.default_backbone`)
    at its first import. Asking for another backbone than the library's is a
    :class:`BackboneMismatchError`: switching is ``python -m aspl use-backbone``.
    """

    def __init__(self, library, indexes, detector=None, embedder=None, backbone: str | None = None,
                 batch_size: int = 16, annotator: str = "import"):
        from models import create_backbone, default_backbone
        from models.detection import FaceDetector

        current = library.get_setting("backbone")
        wanted = embedder.info.name if embedder is not None else (backbone or current or default_backbone())
        if current and wanted != current:
            raise BackboneMismatchError(
                f"this library embeds with {current!r}, not {wanted!r}: import without --backbone, or switch "
                f"the library first with: python -m aspl use-backbone {wanted}")
        self.library = library
        self.indexes = indexes
        self.detector = detector or FaceDetector()
        self.embedder = embedder if embedder is not None else create_backbone(wanted)
        self.backbone = self.embedder.info.name
        self.batch_size = batch_size
        self.annotator = annotator

    def run(self, path: str | os.PathLike, labels_from_folders: bool = False, progress: bool = True,
            on_progress: ProgressFn | None = None) -> ImportSummary:
        """Import every image under ``path``; see the module docstring."""
        t0 = time.perf_counter()
        root = Path(path).expanduser().resolve()
        if not self.library.get_setting("backbone"):
            self.library.set_setting("backbone", self.backbone, self.annotator)
        files, other = find_images(root)
        s = ImportSummary(files=len(files), skipped_other_types=other)
        index = self.indexes.get(self.backbone, dim=self.embedder.info.embedding_dim)
        bar = tqdm(total=len(files), desc="importing", unit="photo", disable=not progress)
        try:
            for i in range(0, len(files), self.batch_size):
                self._batch(files[i:i + self.batch_size], root if labels_from_folders else None, s, index)
                bar.update(len(files[i:i + self.batch_size]))
                bar.set_postfix(faces=s.faces, rejected=sum(s.rejected.values()))
                if on_progress:
                    on_progress(min(i + self.batch_size, len(files)), len(files),
                                f"{s.imported} photos, {s.faces} faces, {sum(s.rejected.values())} rejected")
        finally:
            bar.close()
            self.indexes.save(self.backbone)  # also on Ctrl-C: what is committed gets indexed
            s.seconds = time.perf_counter() - t0
            self.library.log_event("import", self.annotator, path=str(root), backbone=self.backbone,
                                   **{k: v for k, v in s.as_dict().items() if k != "seconds"})
        return s

    def _batch(self, files: Sequence[Path], label_root: Path | None, s: ImportSummary, index) -> None:
        from models.detection import most_prominent
        from storage.db import NewFace

        todo = []
        for f in files:
            try:
                size = f.stat().st_size
                sha = sha256_file(f)
            except OSError as e:
                s.rejected[REASON_UNREADABLE] += 1
                self.library.reject_image(str(f), None, 0, REASON_UNREADABLE, e.strerror or str(e))
                continue
            if self.library.image_by_sha(sha) is not None:
                s.duplicates += 1
                continue
            try:
                img = load_image(f)
            except BadImageError as e:
                log.info("rejected %s", e)
                s.rejected[e.reason] += 1
                self.library.reject_image(str(f), sha, size, e.reason, e.detail)
                continue
            todo.append((f, sha, size, img))
        if not todo:
            return
        detections = self.detector.detect([t[3] for t in todo])
        crops = [face.crop for faces in detections for face in faces]
        vectors = self.embedder.embed(crops) if crops else np.zeros((0, self.embedder.info.embedding_dim), np.float32)
        k = 0
        for (f, sha, size, img), faces in zip(todo, detections):
            seed = _person_from_folder(f, label_root) if label_root is not None else None
            star = most_prominent(faces, img.size) if seed else None
            new = []
            for j, face in enumerate(faces):
                new.append(NewFace(face.box, face.landmarks, face.prob, face.crop,
                                   embeddings={self.backbone: vectors[k]},
                                   seed_person=seed if j == star else None))
                k += 1
            _, face_ids = self.library.add_image(str(f), sha, size, img.width, img.height, new,
                                                 annotator=self.annotator)
            if not face_ids and new:  # stored meanwhile by another importer
                s.duplicates += 1
                continue
            s.imported += 1
            s.faces += len(face_ids)
            s.without_faces += int(not faces)
            s.seed_labels += int(star is not None)
            if face_ids:
                index.add(np.array(face_ids, np.int64), np.stack([v.embeddings[self.backbone] for v in new]))


def import_path(library, indexes, path: str | os.PathLike, **kw) -> ImportSummary:
    """Convenience: ``Importer(library, indexes, ...).run(path, ...)``."""
    run_kw = {k: kw.pop(k) for k in ("labels_from_folders", "progress", "on_progress") if k in kw}
    return Importer(library, indexes, **kw).run(path, **run_kw)


def embed_library(library, indexes, embedder, batch_size: int = 64, progress: bool = True,
                  on_progress: ProgressFn | None = None) -> int:
    """Embed every face that has no embedding for ``embedder`` yet; rebuild its index. Returns the count."""
    name = embedder.info.name
    todo = library.faces_missing_embedding(name)
    bar = tqdm(total=len(todo), desc=f"embedding ({name})", unit="face", disable=not progress)
    for i in range(0, len(todo), batch_size):
        ids = todo[i:i + batch_size]
        library.put_embeddings(name, ids, embedder.embed(library.face_crops(ids)))
        bar.update(len(ids))
        if on_progress:
            on_progress(min(i + batch_size, len(todo)), len(todo), f"embedding with {name}")
    bar.close()
    indexes.rebuild(name, dim=embedder.info.embedding_dim)
    library.log_event("embedded", "admin", backbone=name, faces=len(todo))
    return len(todo)

