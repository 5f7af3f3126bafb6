"""Batch import of photo folders into a library: detect, align, embed, store, index.

Each photo is stored in one transaction (image + faces + embeddings + seed
label), so a crash or Ctrl-C leaves nothing half-written; re-running skips
photos already stored (content hash), which makes imports resumable and
idempotent. Files that cannot be used are recorded with a reason, and one bad
file never stops the import: only regular files are read (pipes, sockets and
devices are refused before they are opened), links that lead out of the import
folder are refused, photos too small for the detector are refused before
detection, and a batch whose detection or embedding fails is retried photo by
photo so that only the failing photo is rejected. File names that are not UTF-8
are stored losslessly (see :func:`storage.faces.encode_path`).
"""
from __future__ import annotations

import contextlib
import errno
import logging
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
from tqdm.auto import tqdm

from .imageio import (REASON_DETECTION, REASON_EMBEDDING, REASON_OUTSIDE, REASON_UNREADABLE, BadImageError,
                      check_dimensions, display_path, is_image_path, load_image, open_regular, sha256_file)

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int, str], None]

LISTED_FILES = 20  # how many files without a face / already in the library a summary names (the counts are exact)


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
    without_face_files: list = field(default_factory=list)  # the first LISTED_FILES, relative to the import path
    duplicate_files: list = field(default_factory=list)  # the first LISTED_FILES: {"file", "same_as"}

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d["rejected"] = dict(self.rejected)
        d["without_face_files"] = list(self.without_face_files)
        d["duplicate_files"] = [dict(x) for x in self.duplicate_files]
        return d

    def note_duplicate(self, file: str, same_as: str | None) -> None:
        """Count a photo the library holds already (named while fewer than :data:`LISTED_FILES` are)."""
        self.duplicates += 1
        if len(self.duplicate_files) < LISTED_FILES:
            self.duplicate_files.append({"file": file, "same_as": same_as})

    def progress_message(self, done: int, total: int) -> str:
        """One line for a progress bar: files done, faces found, rejected, duplicates, photos without a face."""
        return (f"{done}/{total} files · {self.faces} faces found · {sum(self.rejected.values())} rejected · "
                f"{self.duplicates} already in the library · {self.without_faces} without a face")


def shown_path(file: Path, root: Path) -> str:
    """``file`` as a summary names it: relative to the import path (its own name when that is the file)."""
    try:
        rel = file.relative_to(root)
    except ValueError:
        return display_path(file)
    return display_path(file.name if rel == Path(".") else rel)


class ImportPathError(ValueError):
    """An import path that cannot be imported (a symbolic link loop, a folder that cannot be read)."""


def resolve_import_path(path: str | os.PathLike) -> Path:
    """``path`` with ``~`` expanded and symbolic links resolved.

    Raises ``FileNotFoundError`` (nothing there, or a dangling link) or
    :class:`ImportPathError` (a link loop, no permission), naming the path.
    """
    p = Path(path).expanduser()
    try:
        p.stat()
    except FileNotFoundError as e:
        raise FileNotFoundError(f"no such file or folder: {display_path(p)}") from e
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise ImportPathError(f"{display_path(p)} is a symbolic link loop: it never leads to a file or "
                                  "folder") from e
        raise ImportPathError(f"cannot read {display_path(p)}: {e.strerror or e}") from e
    return Path(os.path.realpath(p))


def _walk_error(e: OSError) -> None:
    log.warning("skipped folder %s: %s", display_path(e.filename or "?"), e.strerror or e)


def find_images(path: str | os.PathLike) -> tuple[list[Path], int]:
    """Image files under ``path`` (a file or a folder, recursive, sorted), and the count of other files.

    Links to folders are not followed (no endless walks through link loops);
    image-named entries that are not regular files are listed, to be refused by the importer.
    """
    p = resolve_import_path(path)
    if not p.is_dir():
        return ([p], 0) if is_image_path(p) else ([], 1)
    images, other = [], 0
    for root, dirs, files in os.walk(p, onerror=_walk_error):
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


@contextlib.contextmanager
def open_inside(f: Path, root: Path) -> Iterator[tuple[Any, int]]:
    """``(file object, size)`` of a regular file that lies inside ``root`` (a link may not lead out of it);
    :class:`BadImageError` otherwise (see :func:`aspl.imageio.open_regular` for the file types refused)."""
    with open_regular(f) as fh:
        real = Path(os.path.realpath(f))
        if real != root and root not in real.parents:
            raise BadImageError(f, REASON_OUTSIDE, f"it leads to {display_path(real)}")
        yield fh, os.fstat(fh.fileno()).st_size


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


@dataclass
class _Photo:
    """A decoded photo waiting for detection."""

    file: Path
    sha: str
    size: int
    img: Any


def isolated(fn: Callable, items: list, args: list, reason: str,
             on_reject: Callable[[Any, str], None]) -> list[tuple[Any, Any]]:
    """``fn(args)`` on the whole batch, paired with ``items``; if that fails, on each item alone, calling
    ``on_reject(item, detail)`` for those that still fail (``reason`` names the step in the log).

    Model code fails in many ways (``ValueError``, ``RuntimeError``, ...) on odd inputs; one photo's
    failure must not take its batch down.
    """
    try:
        out = fn(args)
        return list(zip(items, out))
    except Exception as e:  # noqa: BLE001 - isolate per photo, see the docstring
        if len(items) == 1:
            on_reject(items[0], f"{type(e).__name__}: {e}")
            return []
        log.warning("%s on a batch of %d photos (%s: %s); retrying photo by photo", reason, len(items),
                    type(e).__name__, e)
    kept = []
    for it, a in zip(items, args):
        kept += isolated(fn, [it], [a], reason, on_reject)
    return kept


def embed_faces(embedder, faces_lists: list) -> list[np.ndarray]:
    """Embeddings of each photo's faces (one ``faces x dim`` float32 array per photo), in one call."""
    crops = [face.crop for faces in faces_lists for face in faces]
    dim = embedder.info.embedding_dim
    vectors = embedder.embed(crops) if crops else np.zeros((0, dim), np.float32)
    out, k = [], 0
    for faces in faces_lists:
        out.append(np.asarray(vectors[k:k + len(faces)], np.float32).reshape(len(faces), dim))
        k += len(faces)
    return out


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
        root, files, s, index = self._begin(path)
        bar = tqdm(total=len(files), desc="importing", unit="photo", disable=not progress)
        if on_progress:
            on_progress(0, len(files), s.progress_message(0, len(files)))
        try:
            for i in range(0, len(files), self.batch_size):
                self._batch(files[i:i + self.batch_size], root, labels_from_folders, s, index)
                bar.update(len(files[i:i + self.batch_size]))
                bar.set_postfix(faces=s.faces, rejected=sum(s.rejected.values()))
                if on_progress:
                    done = min(i + self.batch_size, len(files))
                    on_progress(done, len(files), s.progress_message(done, len(files)))
        finally:
            bar.close()
            self.indexes.save(self.backbone)  # also on Ctrl-C: what is committed gets indexed
            s.seconds = time.perf_counter() - t0
            self.library.log_event("import", self.annotator, path=display_path(root), backbone=self.backbone,
                                   **{k: v for k, v in s.as_dict().items()
                                      if k not in ("seconds", "without_face_files", "duplicate_files")})
        return s

    def _begin(self, path: str | os.PathLike) -> tuple[Path, list[Path], ImportSummary, Any]:
        """``(root, image files, summary, index)`` of an import of ``path``; a new library takes this backbone."""
        root = resolve_import_path(path)
        files, other = find_images(root)
        if not self.library.get_setting("backbone"):
            self.library.set_setting("backbone", self.backbone, self.annotator)
        s = ImportSummary(files=len(files), skipped_other_types=other)
        return root, files, s, self.indexes.get(self.backbone, dim=self.embedder.info.embedding_dim)

    def _reject(self, s: ImportSummary, f: Path, sha: str | None, size: int, reason: str, detail: str) -> None:
        log.info("rejected %s: %s (%s)", display_path(f), reason, detail)
        s.rejected[reason] += 1
        self.library.reject_image(f, sha, size, reason, detail)

    def _read(self, f: Path, root: Path, s: ImportSummary) -> _Photo | None:
        """Open (regular files only), hash and decode one file; a bad one is recorded and None returned."""
        sha, size = None, 0
        try:
            with open_inside(f, root) as (fh, size):
                sha = sha256_file(fh)
                existing = self.library.image_by_sha(sha)
                if existing is not None:
                    s.note_duplicate(shown_path(f, root), existing["path"])
                    return None
                img = load_image(f, fileobj=fh)
            check_dimensions(f, img.width, img.height, min_side=getattr(self.detector, "min_face_size", 1))
        except BadImageError as e:
            self._reject(s, f, sha, size, e.reason, e.detail)
            return None
        except OSError as e:  # a read error while hashing
            self._reject(s, f, sha, size, REASON_UNREADABLE, e.strerror or str(e))
            return None
        return _Photo(f, sha, size, img)

    def _isolated(self, fn: Callable, photos: list[_Photo], args: list, reason: str,
                  s: ImportSummary) -> list[tuple[_Photo, Any]]:
        """:func:`isolated`, rejected photos recorded in the library."""
        return isolated(fn, photos, args, reason,
                        lambda p, detail: self._reject(s, p.file, p.sha, p.size, reason, detail))

    def _embed(self, faces_lists: list) -> list[np.ndarray]:
        return embed_faces(self.embedder, faces_lists)

    def _batch(self, files: Sequence[Path], root: Path, labels_from_folders: bool, s: ImportSummary,
               index) -> None:
        todo = [p for p in (self._read(f, root, s) for f in files) if p is not None]
        if not todo:
            return
        detected = self._isolated(self.detector.detect, todo, [p.img for p in todo], REASON_DETECTION, s)
        embedded = self._isolated(self._embed, [p for p, _ in detected], [faces for _, faces in detected],
                                  REASON_EMBEDDING, s)
        faces_of = {id(p): faces for p, faces in detected}
        for p, vectors in embedded:
            self._store(p.file, p.sha, p.size, (p.img.width, p.img.height), faces_of[id(p)], vectors, root,
                        labels_from_folders, s, index)

    def _store(self, file: Path, sha: str, size: int, image_size: tuple[int, int], faces: list, vectors: np.ndarray,
               root: Path, labels_from_folders: bool, s: ImportSummary, index) -> None:
        """Write one analysed photo (its faces and their embeddings) in one transaction, and index its faces."""
        from models.detection import most_prominent
        from storage.db import NewFace

        seed = _person_from_folder(file, root) if labels_from_folders else None
        star = most_prominent(faces, image_size) if seed else None
        new = [NewFace(face.box, face.landmarks, face.prob, face.crop, embeddings={self.backbone: vectors[j]},
                       seed_person=seed if j == star else None)
               for j, face in enumerate(faces)]
        _, face_ids = self.library.add_image(file, sha, size, image_size[0], image_size[1], new,
                                             annotator=self.annotator)
        if not face_ids and new:  # stored meanwhile by another importer
            s.note_duplicate(shown_path(file, root), None)
            return
        s.imported += 1
        s.faces += len(face_ids)
        s.without_faces += int(not faces)
        if not faces and len(s.without_face_files) < LISTED_FILES:
            s.without_face_files.append(shown_path(file, root))
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

