"""Import (server folders and uploads) and backbone swaps, as background jobs.

Server folders are imported only from allowed roots: the library's own
``uploads`` folder, plus the folders listed in ``ASPL_IMPORT_ROOTS``
(separated by ``os.pathsep``); a path is checked after resolving its symbolic
links. The command line (``python -m aspl import``) is not restricted.

Uploads are capped by a per-library quota on the bytes under ``<library>/uploads``
(``ASPL_UPLOAD_QUOTA_BYTES``, default 2 GiB). :meth:`ImportsMixin.cleanup_uploads`
frees space after an import, but only what the app never shows again: files
whose content the library holds at another path (duplicates), files the import
rejected, non-image files and empty folders. Imported photos stay, because the
pages draw the full photo (with the face's box) from its path.
"""
from __future__ import annotations

import datetime as _dt
import logging
import os
import secrets
import threading
from pathlib import Path
from typing import Any, Sequence

from storage import IndexStore, Library
from storage.faces import fs_path

from ..imageio import BadImageError, display_path, is_image_path, sha256_file
from ..jobs import Job, JobBusyError, ProgressFn
from ..uploads import SaveResult, disk_usage, remove_empty_dirs, save_uploads
from .core import library_backbone
from .errors import ServiceError

log = logging.getLogger("aspl.service")

IMPORT_ROOTS_ENV = "ASPL_IMPORT_ROOTS"
UPLOAD_QUOTA_ENV = "ASPL_UPLOAD_QUOTA_BYTES"
DEFAULT_UPLOAD_QUOTA_BYTES = 2 * 1024 ** 3

_UPLOAD_LOCK = threading.RLock()  # one upload (or clean-up) at a time: two cannot both take the quota's last bytes


def upload_quota_bytes() -> int:
    """The per-library upload quota: ``ASPL_UPLOAD_QUOTA_BYTES`` (a whole number of bytes), default 2 GiB."""
    raw = os.environ.get(UPLOAD_QUOTA_ENV, "").strip().replace("_", "")
    if not raw:
        return DEFAULT_UPLOAD_QUOTA_BYTES
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise ServiceError(f"{UPLOAD_QUOTA_ENV}={os.environ[UPLOAD_QUOTA_ENV]!r} is not a number of bytes; "
                           f"use a whole number >= 0, e.g. {DEFAULT_UPLOAD_QUOTA_BYTES} for 2 GiB")
    return value


def _is_within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


class ImportsMixin:
    """``upload_folder``, ``save_uploads``, ``upload_usage``, ``cleanup_uploads``, ``import_roots``,
    ``start_import``, ``backbones``, ``start_backbone_swap``."""

    def uploads_root(self) -> Path:
        """``<library>/uploads``, where uploads are saved (ServiceError for an in-memory library)."""
        if self.library.root is None:
            raise ServiceError("uploads need a library folder (this library is in memory)")
        return self.library.root / "uploads"

    def upload_folder(self) -> Path:
        """A new folder under ``<library>/uploads`` for one batch of uploads."""
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        d = self.uploads_root() / f"{stamp}-{secrets.token_hex(3)}"
        d.mkdir(parents=True)
        return d

    def upload_usage(self) -> dict[str, Any]:
        """``{"used": bytes under <library>/uploads, "quota": bytes allowed, "folder": path}``."""
        root = self.uploads_root()
        return {"used": disk_usage(root), "quota": upload_quota_bytes(), "folder": str(root)}

    def save_uploads(self, files: Sequence[tuple[str, Any]]) -> SaveResult:
        """Save uploaded images / zips inside the library folder (zip members cannot escape it).

        Refused with a ServiceError when the upload quota is used up; files past what is
        left of it are rejected (``upload quota exceeded``). A folder left empty is removed.
        """
        with _UPLOAD_LOCK:
            usage = self.upload_usage()
            if usage["used"] >= usage["quota"]:
                self.cleanup_uploads()  # what earlier imports left that the app does not need
                usage = self.upload_usage()
            left = usage["quota"] - usage["used"]
            if left <= 0:
                raise ServiceError(
                    f"the upload quota is used up: {usage['used']:,} of {usage['quota']:,} bytes under "
                    f"{usage['folder']} (imported photos stay there: the pages show them); raise "
                    f"{UPLOAD_QUOTA_ENV} (a number of bytes, now {usage['quota']}) to upload more")
            folder = self.upload_folder()
            res = save_uploads(files, folder, quota_bytes=left)
            if not res.saved:
                remove_empty_dirs(folder)
            return res

    def cleanup_uploads(self, folder: str | os.PathLike | None = None, actor: str = "import",
                        library: Library | None = None) -> dict[str, int]:
        """Free upload space (all upload folders, or only ``folder``) without losing what the app shows.

        Removes files whose content the library holds at another (existing) path,
        files the import rejected, non-image files and, then, empty folders.
        Imported photos and files not imported yet stay. Returns counts of
        ``files_removed``, ``bytes_freed`` and ``folders_removed``.
        """
        lib = library or self.library
        base = Path(os.path.realpath(self.uploads_root()))
        target = Path(os.path.realpath(folder)) if folder is not None else base
        if not _is_within(target, base):
            raise ServiceError(f"{display_path(target)} is not an upload folder (those are under {base})")
        if not target.is_dir():
            return {"files_removed": 0, "bytes_freed": 0, "folders_removed": 0}
        removed = freed = 0
        with _UPLOAD_LOCK:  # not while an upload writes (its new folder is empty at first)
            shown = {fs_path(r) for r in lib.images(path_prefix=target, limit=-1) if r["status"] != "rejected"}
            for root, _, files in os.walk(target):
                for name in files:
                    p = os.path.join(root, name)
                    if p in shown or not self._upload_file_is_spare(lib, p):
                        continue
                    try:
                        size = os.lstat(p).st_size
                        os.unlink(p)
                    except OSError as e:
                        log.warning("could not remove %s: %s", display_path(p), e)
                        continue
                    removed += 1
                    freed += size
            folders = remove_empty_dirs(target, keep_top=target == base)
        if removed or folders:
            lib.log_event("uploads_cleaned", actor, folder=display_path(target), files_removed=removed,
                          bytes_freed=freed, folders_removed=folders)
        return {"files_removed": removed, "bytes_freed": freed, "folders_removed": folders}

    @staticmethod
    def _upload_file_is_spare(lib: Library, p: str) -> bool:
        """Whether an upload file can go: not an image type, a link, rejected by the import, or a copy of a
        photo the library holds at another existing path. Files not imported yet are never spare."""
        if os.path.islink(p) or not is_image_path(p):
            return True
        try:
            row = lib.image_by_sha(sha256_file(p))
        except (BadImageError, OSError):
            return False
        if row is None:
            return False
        if fs_path(row) == p:
            return row["status"] == "rejected"
        return os.path.exists(fs_path(row))

    def import_roots(self) -> list[Path]:
        """Folders a server import may read (symbolic links resolved): the library's uploads folder and the
        folders in ``ASPL_IMPORT_ROOTS`` (separated by ``os.pathsep``)."""
        roots = [] if self.library.root is None else [self.library.root / "uploads"]
        roots += [Path(r.strip()).expanduser() for r in os.environ.get(IMPORT_ROOTS_ENV, "").split(os.pathsep)
                  if r.strip()]
        out: list[Path] = []
        for r in roots:
            real = Path(os.path.realpath(r))
            if real not in out:
                out.append(real)
        return out

    def _check_import_root(self, p: Path) -> Path:
        """``p`` resolved, if it lies in an allowed root; else a ServiceError naming the roots."""
        real = Path(os.path.realpath(p))
        roots = self.import_roots()
        if not any(_is_within(real, r) for r in roots):
            allowed = ", ".join(str(r) for r in roots) or "none"
            raise ServiceError(
                f"{display_path(p)} is outside the folders this server imports from (allowed: {allowed}); "
                f"upload the photos instead, or start the app with {IMPORT_ROOTS_ENV} listing the folders "
                f"to allow, separated by {os.pathsep!r} (e.g. {IMPORT_ROOTS_ENV}=/data/photos)")
        return real

    def start_import(self, path: str | os.PathLike, annotator: str = "import",
                     labels_from_folders: bool = False) -> Job:
        """Import photos under ``path`` (a server folder or an upload folder) as a background job, embedded
        with the library's backbone (and its fine-tuned weights, if any).

        ``path`` must lie in one of :meth:`import_roots` (ServiceError otherwise). After
        an upload folder is imported, :meth:`cleanup_uploads` frees what it no longer needs.
        """
        from ..importer import ImportPathError, resolve_import_path

        p = Path(path).expanduser()
        self._check_import_root(p)  # before looking at the path: no probing what exists elsewhere
        try:
            root = resolve_import_path(p)
        except FileNotFoundError as e:
            raise FileNotFoundError(f"no such file or folder on the server: {display_path(p)}") from e
        except ImportPathError as e:
            raise ServiceError(str(e)) from e
        root = self._check_import_root(root)  # again on the final target of every link
        if self.jobs.running("backbone"):
            raise JobBusyError("a backbone swap is running; import after it finishes")
        uploads = Path(os.path.realpath(self.library.root / "uploads")) if self.library.root else None

        def work(progress: ProgressFn) -> dict[str, Any]:
            from ..importer import Importer

            with self._worker_library() as lib:
                backbone = library_backbone(lib)
                if not lib.get_setting("backbone"):
                    lib.set_setting("backbone", backbone, annotator)
                progress(0, 0, f"loading the face detector and the {backbone} backbone")
                imp = Importer(lib, IndexStore(lib), detector=self._detector(),
                               embedder=self._library_embedder(lib, backbone), annotator=annotator)
                progress(0, 0, f"listing the photos under {display_path(root)}")
                s = imp.run(root, labels_from_folders=labels_from_folders, progress=False, on_progress=progress)
                rejected = [{"path": r["path"], "reason": r["error_reason"], "detail": r["error_detail"]}
                            for r in lib.images(status="rejected", path_prefix=root)]
                out = {"summary": s.as_dict(), "rejected_files": rejected, "path": display_path(root)}
                if uploads is not None and _is_within(root, uploads):
                    out["cleanup"] = self.cleanup_uploads(root, annotator, library=lib)
            return out

        return self.jobs.submit("import", f"import {display_path(root)}", work, on_done=self._after_write_job)

    def backbone_is_untrained(self, name: str) -> bool:
        """True when ``name`` would embed with random weights: registered as random initialisation and not
        fine-tuned in this library."""
        from models import backbone_info

        from .tuning import finetuned_weights_path

        info = backbone_info(name)
        return info.weights_source.startswith("random") and finetuned_weights_path(self.library, name) is None

    def backbones(self) -> list[dict]:
        """The backbone pool (metadata only), with how many faces each has embedded."""
        from models.catalog import backbone_rows

        counts = self.library.backbones_embedded()
        rows = backbone_rows()
        for r in rows:
            r["faces_embedded"] = counts.get(r["name"], 0)
        return rows

    def start_backbone_swap(self, name: str, actor: str = "admin", force: bool = False) -> Job:
        """Re-embed the library with ``name`` in the background; the current backbone (and its index)
        serves until every face is embedded, then the ``backbone`` setting switches.

        A backbone with no pretrained weights (random initialisation, not fine-tuned in this library) is
        refused unless ``force``: its vectors do not tell people apart, and the next round would replace
        the library's auto-labels with ones learnt from them.
        """
        from models import backbone_info, list_backbones

        valid = list_backbones()
        if name not in valid:
            raise ValueError(f"unknown backbone {name!r}; valid choices: {', '.join(valid)}")
        if name == self.backbone:
            raise ServiceError(f"{name} is already the library's backbone")
        if not force and self.backbone_is_untrained(name):
            raise ServiceError(
                f"{name} has no pretrained weights here ({backbone_info(name).weights_source}): its embeddings "
                "would not tell people apart, and the next round would replace the current auto-labels with "
                "ones learnt from them. Put its weights in place, or swap anyway (force) to fine-tune it.")
        if self.jobs.running("import"):
            raise JobBusyError("an import is running; swap the backbone after it finishes")

        def work(progress: ProgressFn) -> dict[str, Any]:
            from ..importer import embed_library

            with self._worker_library() as lib:
                emb = self._library_embedder(lib, name)
                n = 0
                for _ in range(3):  # faces imported meanwhile: embed those too
                    n += embed_library(lib, IndexStore(lib), emb, progress=False, on_progress=progress)
                    if not lib.faces_missing_embedding(name):
                        break
                old = library_backbone(lib)
                lib.set_setting("backbone", name, actor)
                lib.log_event("backbone_swapped", actor, old=old, new=name, embedded=n)
            return {"backbone": name, "previous": old, "embedded": n}

        return self.jobs.submit("backbone", f"re-embed with {name}", work, on_done=self._after_write_job)
