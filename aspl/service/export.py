"""Export: one row per labelled face as CSV and Parquet, plus crops per person (folder and zip)."""
from __future__ import annotations

import datetime as _dt
import os
import shutil
import zipfile
from pathlib import Path

from storage import Library

from ..uploads import safe_name
from .errors import ServiceError
from .views import ExportResult

EXPORT_COLUMNS = ["face_id", "image_id", "image_path", "x1", "y1", "x2", "y2", "person_id", "person", "source",
                  "confidence", "annotator", "round", "labelled_at"]
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: object) -> object:
    """A text cell a spreadsheet will not run as a formula (OWASP CSV injection: prefix ``'``)."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def export_rows(lib: Library) -> list[dict]:
    """One row per labelled face: face -> person with box, source, confidence (human labels win)."""
    faces = {r["face_id"]: r for r in lib.faces_table()}
    names = lib.names_of_people()
    best: dict[int, dict] = {}
    for r in lib.label_rows():
        f = r["face_id"]
        if f not in faces:
            continue
        cur = best.get(f)
        if cur is None or (cur["source"] == "auto" and r["source"] != "auto"):
            best[f] = r
    rows = []
    for f in sorted(best):
        lab, fr = best[f], faces[f]
        rows.append({"face_id": f, "image_id": fr["image_id"], "image_path": fr["image_path"],
                     "x1": fr["x1"], "y1": fr["y1"], "x2": fr["x2"], "y2": fr["y2"],
                     "person_id": lab["person_id"], "person": names.get(lab["person_id"], ""),
                     "source": lab["source"], "confidence": lab["confidence"], "annotator": lab["annotator"],
                     "round": lab["round"], "labelled_at": lab["created_at"]})
    return rows


def write_crops(lib: Library, rows: list[dict], out: Path) -> tuple[Path, Path]:
    """``out/crops/<person>/<face>_<source>.jpg`` and ``out/crops.zip``; returns both paths."""
    crops_dir = out / "crops"
    if crops_dir.exists():
        shutil.rmtree(crops_dir)
    folders: dict[int, str] = {}
    used: set[str] = set()
    for r in rows:
        pid = r["person_id"]
        if pid not in folders:
            name = safe_name(r["person"], f"person_{pid}")
            if name.lower() in used:
                name = f"{name}_{pid}"
            used.add(name.lower())
            folders[pid] = name
        d = crops_dir / folders[pid]
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{r['face_id']}_{r['source']}.jpg").write_bytes(lib.face_crop_jpeg(r["face_id"]))
    zip_path = out / "crops.zip"
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_STORED) as zf:
        for p in sorted(crops_dir.rglob("*.jpg")):
            zf.write(p, p.relative_to(out).as_posix())
    return crops_dir, zip_path


class ExportMixin:
    """``export_rows`` and ``export``."""

    def export_rows(self) -> list[dict]:
        """One row per labelled face (see :func:`export_rows`)."""
        return export_rows(self.library)

    def export(self, dest: str | os.PathLike | None = None, crops: bool = True, actor: str = "admin") -> ExportResult:
        """Write ``faces.csv`` (text cells safe for spreadsheets) and ``faces.parquet`` (and a folder per
        person of crops, zipped too)."""
        import pandas as pd

        with self._lock:
            lib = self.library
            if dest is None:
                if lib.root is None:
                    raise ServiceError("export needs a destination folder (this library is in memory)")
                dest = lib.root / "exports" / _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
            out = Path(dest)
            out.mkdir(parents=True, exist_ok=True)
            rows = export_rows(lib)
            df = pd.DataFrame(rows, columns=EXPORT_COLUMNS)
            df.map(csv_safe).to_csv(out / "faces.csv", index=False)
            df.to_parquet(out / "faces.parquet", index=False)
            crops_dir = zip_path = None
            if crops:
                crops_dir, zip_path = write_crops(lib, rows, out)
            lib.log_event("export", actor, folder=str(out), rows=len(rows))
            return ExportResult(out, out / "faces.csv", out / "faces.parquet", crops_dir, zip_path, len(rows),
                                len({r["person_id"] for r in rows}))
