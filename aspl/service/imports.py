"""Import (server folders and uploads) and backbone swaps, as background jobs."""
from __future__ import annotations

import datetime as _dt
import os
import secrets
from pathlib import Path
from typing import Any, Sequence

from storage import IndexStore

from ..jobs import Job, JobBusyError, ProgressFn
from ..uploads import SaveResult, save_uploads
from .core import library_backbone
from .errors import ServiceError


class ImportsMixin:
    """``upload_folder``, ``save_uploads``, ``start_import``, ``backbones``, ``start_backbone_swap``."""

    def upload_folder(self) -> Path:
        """A new folder under ``<library>/uploads`` for one batch of uploads."""
        if self.library.root is None:
            raise ServiceError("uploads need a library folder (this library is in memory)")
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        d = self.library.root / "uploads" / f"{stamp}-{secrets.token_hex(3)}"
        d.mkdir(parents=True)
        return d

    def save_uploads(self, files: Sequence[tuple[str, Any]]) -> SaveResult:
        """Save uploaded images / zips inside the library folder (zip members cannot escape it)."""
        return save_uploads(files, self.upload_folder())

    def start_import(self, path: str | os.PathLike, annotator: str = "import",
                     labels_from_folders: bool = False) -> Job:
        """Import photos under ``path`` (a server folder or an upload folder) as a background job, embedded
        with the library's backbone (and its fine-tuned weights, if any)."""
        p = Path(path).expanduser()
        if not p.exists():
            raise FileNotFoundError(f"no such file or folder on the server: {p}")
        if self.jobs.running("backbone"):
            raise JobBusyError("a backbone swap is running; import after it finishes")
        root = p.resolve()

        def work(progress: ProgressFn) -> dict[str, Any]:
            from ..importer import Importer

            with self._worker_library() as lib:
                backbone = library_backbone(lib)
                if not lib.get_setting("backbone"):
                    lib.set_setting("backbone", backbone, annotator)
                imp = Importer(lib, IndexStore(lib), detector=self._detector(),
                               embedder=self._library_embedder(lib, backbone), annotator=annotator)
                s = imp.run(root, labels_from_folders=labels_from_folders, progress=False, on_progress=progress)
                rejected = [{"path": r["path"], "reason": r["error_reason"], "detail": r["error_detail"]}
                            for r in lib.images(status="rejected", path_prefix=str(root))]
            return {"summary": s.as_dict(), "rejected_files": rejected, "path": str(root)}

        return self.jobs.submit("import", f"import {root}", work, on_done=self._after_write_job)

    def backbones(self) -> list[dict]:
        """The backbone pool (metadata only), with how many faces each has embedded."""
        from models.catalog import backbone_rows

        counts = self.library.backbones_embedded()
        rows = backbone_rows()
        for r in rows:
            r["faces_embedded"] = counts.get(r["name"], 0)
        return rows

    def start_backbone_swap(self, name: str, actor: str = "admin") -> Job:
        """Re-embed the library with ``name`` in the background; the current backbone (and its index)
        serves until every face is embedded, then the ``backbone`` setting switches."""
        from models import list_backbones

        valid = list_backbones()
        if name not in valid:
            raise ValueError(f"unknown backbone {name!r}; valid choices: {', '.join(valid)}")
        if name == self.backbone:
            raise ServiceError(f"{name} is already the library's backbone")
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
