"""Images and the faces found in them (boxes, landmarks, JPEG crops)."""
from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from PIL import Image

from ._common import FACE_STATUSES, _Host, _now, equal_filters, where_sql
from .errors import NotFoundError

QUALITY_SETTING = "face_quality"
QUALITY_KEYS = ("min_px", "min_prob", "min_rel")
# the shorter side of the part of a face's box inside its photo ({t}: the row's table): MTCNN's box of a face
# cut by the photo's edge reaches outside it, so its unclipped size overstates what is visible (seen on lfw-dev:
# a cut-off face at the edge "larger" than the subject, which min_rel then hid)
_DIM = "COALESCE((SELECT NULLIF(i.{d}, 0) FROM images i WHERE i.id = {w}.image_id), {t}.{c})"
_SIDE = ("MIN(MIN({t}.x2, " + _DIM.format(d="width", w="{w}", t="{t}", c="x2") + ") - MAX({t}.x1, 0), "
         "MIN({t}.y2, " + _DIM.format(d="height", w="{w}", t="{t}", c="y2") + ") - MAX({t}.y1, 0))")
# a face row below the thresholds (named parameters :min_px, :min_prob, :min_rel); {t} is the row's table
_BELOW = ("(" + _SIDE.format(t="{t}", w="{t}") + " < :min_px OR {t}.prob < :min_prob OR "
          + _SIDE.format(t="{t}", w="{t}") + " < :min_rel * (SELECT MAX(" + _SIDE.format(t="g", w="{t}")
          + ") FROM faces g WHERE g.image_id = {t}.image_id))")


def visible_side(box: Sequence[float], width: float | None, height: float | None) -> float:
    """The shorter side of the part of ``box`` (x1, y1, x2, y2) inside a ``width`` x ``height`` photo (the
    box as it is where the size is unknown); 0 for a box wholly outside."""
    x1, y1, x2, y2 = (float(v) for v in box)
    if width:
        x1, x2 = max(x1, 0.0), min(x2, float(width))
    if height:
        y1, y2 = max(y1, 0.0), min(y2, float(height))
    return max(0.0, min(x2 - x1, y2 - y1))


def _check_quality(min_px: float, min_prob: float, min_rel: float) -> dict[str, float]:
    """The thresholds as floats; ValueError names a bad one."""
    if not (min_px >= 0 and np.isfinite(min_px)):
        raise ValueError(f"min_px must be a number >= 0, got {min_px!r}")
    if not 0.0 <= min_prob <= 1.0:
        raise ValueError(f"min_prob must be in [0, 1], got {min_prob!r}")
    if not 0.0 <= min_rel <= 1.0:
        raise ValueError(f"min_rel must be in [0, 1] (a share of the photo's largest face), got {min_rel!r}")
    return {"min_px": float(min_px), "min_prob": float(min_prob), "min_rel": float(min_rel)}


def encode_path(path: str | os.PathLike | bytes) -> tuple[str, bytes | None]:
    """How a file path is stored: ``(text, raw)``. ``text`` is the path itself when it is valid UTF-8
    (``raw`` is then None); otherwise a readable form with ``\\xNN`` escapes, and ``raw`` its exact bytes
    (``os.fsencode``), so the file can be found again. Never raises."""
    try:
        raw = os.fsencode(path)
    except UnicodeEncodeError:  # lone surrogates that no file system name can hold
        return os.fspath(path).encode("utf-8", "backslashreplace").decode("utf-8"), None
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError:
        return raw.decode("utf-8", "backslashreplace"), raw


def fs_path(row: dict) -> str:
    """The file-system path of an image row (or a face row from :meth:`FacesMixin.face`): the stored exact
    bytes when the name is not UTF-8 (decoded with ``os.fsdecode``), else the ``path`` text."""
    raw = row.get("path_bytes")
    return os.fsdecode(bytes(raw)) if raw is not None else row["path"]


def encode_crop(crop: np.ndarray, quality: int = 95) -> bytes:
    """JPEG bytes of a uint8 RGB crop."""
    buf = io.BytesIO()
    Image.fromarray(np.asarray(crop, np.uint8)).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def decode_crop(data: bytes) -> np.ndarray:
    """uint8 RGB array from stored crop bytes."""
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"), np.uint8)


@dataclass
class NewFace:
    """A detected face to store with its image (embeddings keyed by backbone)."""

    box: tuple[float, float, float, float]
    landmarks: np.ndarray
    prob: float
    crop: np.ndarray
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)
    seed_person: str | None = None


class FacesMixin(_Host):
    """Owns the ``images`` and ``faces`` tables."""

    # ---------------------------------------------------------------- images
    def image_by_sha(self, sha256: str) -> dict | None:
        rows = self._rows("SELECT * FROM images WHERE sha256 = ?", [sha256])
        return rows[0] if rows else None

    def image(self, image_id: int) -> dict:
        rows = self._rows("SELECT * FROM images WHERE id = ?", [image_id])
        if not rows:
            raise NotFoundError(f"image {image_id} not found")
        return rows[0]

    def reject_image(self, path: str | os.PathLike, sha256: str | None, size: int, reason: str,
                     detail: str = "") -> int:
        """Record a file that could not be used, with its reason; returns the image id.

        Files that could not be hashed (unreadable, not regular) are keyed by their path.
        Paths are stored losslessly (see :func:`encode_path`).
        """
        text, raw = encode_path(path)
        key = sha256 or (f"unreadable:{text}" if raw is None else f"unreadable-bytes:{raw.hex()}")
        detail = encode_path(detail)[0][:500]
        with self.transaction():
            existing = self.image_by_sha(key)
            if existing:
                return int(existing["id"])
            return self._insert("images", {"path": text, "path_bytes": raw, "sha256": key, "size": size,
                                           "status": "rejected", "error_reason": reason, "error_detail": detail,
                                           "imported_at": _now()})

    def add_image(self, path: str | os.PathLike, sha256: str, size: int, width: int, height: int,
                  faces: Sequence[NewFace], annotator: str | None = None) -> tuple[int, list[int]]:
        """Store a photo with all its faces, embeddings and seed labels atomically.

        Returns ``(image_id, face_ids)``. A photo whose hash is already stored is
        not added again (``face_ids`` is then empty). The path is stored losslessly
        (:func:`encode_path`; read it back with :func:`fs_path`).
        """
        text, raw = encode_path(path)
        with self.transaction():
            existing = self.image_by_sha(sha256)
            if existing:
                return int(existing["id"]), []
            status = "ok" if faces else "no_face"
            reason = None if faces else "no face found"
            image_id = self._insert("images", {"path": text, "path_bytes": raw, "sha256": sha256, "size": size,
                                               "width": width, "height": height, "status": status,
                                               "error_reason": reason,
                                               "imported_at": _now()})
            face_ids = []
            q = self.face_quality()
            sides = [visible_side(f.box, width, height) for f in faces]
            for f, side in zip(faces, sides):
                x1, y1, x2, y2 = (float(v) for v in f.box)
                small = side < q["min_px"] or float(f.prob) < q["min_prob"] or side < q["min_rel"] * max(sides)
                fid = self._insert("faces", {
                    "image_id": image_id, "x1": x1, "y1": y1, "x2": x2, "y2": y2,
                    "landmarks": json.dumps(np.asarray(f.landmarks, float).round(2).tolist()),
                    "prob": float(f.prob), "crop": encode_crop(f.crop), "hidden": int(small)})
                face_ids.append(fid)
                for backbone, vec in f.embeddings.items():
                    self._put_embedding(fid, backbone, vec)
                if f.seed_person:
                    pid = self.person_id(f.seed_person, create=True)
                    self.add_label(fid, pid, "seed", confidence=1.0, annotator=annotator)
            return image_id, face_ids

    # --------------------------------------------------------------- quality
    def face_quality(self) -> dict[str, float]:
        """The thresholds below which a face is *hidden* (kept, never queued, trained on or counted as
        remaining): ``min_px``, the shorter side of its box in photo pixels (the part inside the photo);
        ``min_prob``, its detection probability; ``min_rel``, its size relative to the largest face of its
        photo (bystanders behind the subject). 0 switches each off."""
        q = self.get_setting(QUALITY_SETTING) or {}
        return {k: float(q.get(k, 0.0)) for k in QUALITY_KEYS}

    def set_face_quality(self, min_px: float, min_prob: float, actor: str | None = None,
                         min_rel: float = 0.0) -> int:
        """Store the quality thresholds and re-hide every face by them (one UPDATE); returns the number of
        faces hidden now. ValueError names a bad threshold."""
        q = _check_quality(min_px, min_prob, min_rel)
        with self.transaction():
            self.set_setting(QUALITY_SETTING, q, actor)
            below = f"CASE WHEN {_BELOW.format(t='faces')} THEN 1 ELSE 0 END"  # 0/1 on either database
            self.db.execute(f"UPDATE faces SET hidden = {below} WHERE hidden != {below}", {**q, **q})
            return int(self._one("SELECT n FROM counts WHERE key = 'faces:hidden'") or 0)

    def count_below_quality(self, min_px: float, min_prob: float, min_rel: float = 0.0) -> int:
        """How many faces (status ok) these thresholds would hide (nothing is changed)."""
        q = _check_quality(min_px, min_prob, min_rel)
        sql = f"SELECT COUNT(*) FROM faces WHERE status = 'ok' AND {_BELOW.format(t='faces')}"
        return int(self.db.execute(sql, q).fetchone()[0] or 0)  # named parameters: not through _one

    def set_face_hidden(self, face_id: int, hidden: bool, actor: str | None = None) -> bool:
        """Hide or show one face whatever the thresholds say (a person's decision: "name it anyway"); returns
        whether it was hidden before. Applying the thresholds again (:meth:`set_face_quality`) re-hides it."""
        with self.transaction():
            old = self._one("SELECT hidden FROM faces WHERE id = ?", [face_id])
            if old is None:
                raise NotFoundError(f"face {face_id} not found")
            if bool(old) != bool(hidden):
                self.db.execute("UPDATE faces SET hidden = ? WHERE id = ?", [int(bool(hidden)), face_id])
                self.log_event("face_hidden" if hidden else "face_unhidden", actor, face_id=face_id)
            return bool(old)

    def hidden_face_ids(self, limit: int = 1000) -> list[int]:
        """Faces hidden by the quality thresholds (status ok), smallest first."""
        return [r[0] for r in self.db.execute(
            "SELECT id FROM faces WHERE status = 'ok' AND hidden = 1 ORDER BY MIN(x2 - x1, y2 - y1), id LIMIT ?",
            [limit])]

    def images(self, status: str | None = None, path_prefix: str | os.PathLike | None = None,
               limit: int = 1000) -> list[dict]:
        """Image rows (newest first), optionally by status and path prefix (``limit`` -1: all).

        ``path`` is the stored text; open the file with :func:`fs_path` (names that are not UTF-8).
        """
        where, params = equal_filters(status=status)
        if path_prefix is not None:
            path_prefix = encode_path(path_prefix)[0]
            where.append("(path = ? OR path LIKE ? ESCAPE '\\')")
            esc = path_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            params += [path_prefix, esc.rstrip("/") + "/%"]
        sql = "SELECT * FROM images" + where_sql(where) + " ORDER BY id DESC"
        if limit is not None and limit >= 0:
            sql += " LIMIT ?"
            params = params + [limit]
        return self._rows(sql, params)

    # ----------------------------------------------------------------- faces
    def face(self, face_id: int) -> dict:
        rows = self._rows("SELECT f.*, i.path, i.path_bytes, i.width, i.height FROM faces f "
                          "JOIN images i ON i.id = f.image_id WHERE f.id = ?", [face_id])
        if not rows:
            raise NotFoundError(f"face {face_id} not found")
        r = rows[0]
        r["landmarks"] = json.loads(r["landmarks"])
        return r

    def face_crop(self, face_id: int) -> np.ndarray:
        data = self._one("SELECT crop FROM faces WHERE id = ?", [face_id])
        if data is None:
            raise NotFoundError(f"face {face_id} not found")
        return decode_crop(data)

    def face_crops(self, face_ids: Sequence[int]) -> list[np.ndarray]:
        return [self.face_crop(int(f)) for f in face_ids]

    def face_crop_jpeg(self, face_id: int) -> bytes:
        """The stored JPEG bytes of a face crop."""
        data = self._one("SELECT crop FROM faces WHERE id = ?", [face_id])
        if data is None:
            raise NotFoundError(f"face {face_id} not found")
        return bytes(data)

    def face_ids(self, status: str | None = "ok") -> list[int]:
        if status is None:
            return [r[0] for r in self.db.execute("SELECT id FROM faces ORDER BY id").fetchall()]
        return [r[0] for r in self.db.execute("SELECT id FROM faces WHERE status = ? ORDER BY id", [status]).fetchall()]

    def first_open(self, face_ids: Sequence[int], limit: int) -> list[int]:
        """The first ``limit`` of ``face_ids`` (in their order) that nobody has answered (status ok, not
        hidden, no live label of any kind), looked up in chunks: no set of every labelled face is built."""
        out: list[int] = []
        ids = [int(f) for f in face_ids]
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            open_ = {r[0] for r in self.db.execute(
                f"SELECT id FROM faces WHERE id IN ({','.join('?' * len(chunk))}) AND status = 'ok' "
                "AND human = 0 AND auto = 0 AND hidden = 0", chunk).fetchall()}
            out += [f for f in chunk if f in open_]
            if len(out) >= limit:
                break
        return out[:limit]

    def open_face_ids(self, limit: int, exclude: Sequence[int] = ()) -> list[int]:
        """Faces nobody has answered yet (status ok, not hidden, no live label of any kind), smallest box
        first (bystanders before subjects), at most ``limit``, without ``exclude``."""
        skip = {int(f) for f in exclude}
        rows = self.db.execute(
            "SELECT id FROM faces INDEXED BY faces_open WHERE status = 'ok' AND human = 0 AND hidden = 0 "
            "AND auto = 0 ORDER BY MIN(x2 - x1, y2 - y1), id LIMIT ?", [int(limit) + len(skip)]).fetchall()
        return [r[0] for r in rows if r[0] not in skip][:limit]

    def add_not_strangers(self, face_ids: Sequence[int], annotator: str | None = None) -> list[int]:
        """Record faces an annotator left unticked in a sweep of strangers (someone to name later; kept
        out of the next sweeps). Returns the faces newly recorded, in order."""
        added = []
        with self.transaction():
            for f in dict.fromkeys(int(x) for x in face_ids):
                # raw SQL: the answer depends on the statement's rowcount (OR IGNORE)
                if self.db.execute("INSERT OR IGNORE INTO not_strangers (face_id, annotator, created_at) "
                                   "VALUES (?, ?, ?)", [f, annotator, _now()]).rowcount:
                    added.append(f)
        return added

    def remove_not_strangers(self, face_ids: Sequence[int]) -> int:
        """Forget :meth:`add_not_strangers` records (an undo). Returns how many were removed."""
        n = 0
        with self.transaction():
            for f in dict.fromkeys(int(x) for x in face_ids):
                n += self.db.execute("DELETE FROM not_strangers WHERE face_id = ?", [f]).rowcount
        return n

    def not_strangers(self) -> set[int]:
        """Faces recorded by :meth:`add_not_strangers`."""
        return {int(r[0]) for r in self.db.execute("SELECT face_id FROM not_strangers").fetchall()}

    def face_ids_out_of_loop(self) -> set[int]:
        """Faces the learning loop leaves out: status other than ok (not a face, stranger) or hidden."""
        return {r[0] for r in self.db.execute("SELECT id FROM faces WHERE status != 'ok' OR hidden = 1")}

    def has_faces(self) -> bool:
        """True once at least one face is stored."""
        return self._one("SELECT EXISTS (SELECT 1 FROM faces)") == 1

    def faces_of_image(self, image_id: int) -> list[int]:
        return [r[0] for r in self.db.execute("SELECT id FROM faces WHERE image_id = ? ORDER BY id", [image_id])]

    def set_face_status(self, face_id: int, status: str, actor: str | None = None) -> str:
        """Set a face's status (``ok``, ``not_face`` or ``stranger``); returns the previous one."""
        if status not in FACE_STATUSES:
            raise ValueError(f"face status {status!r} is not one of {', '.join(FACE_STATUSES)}")
        with self.transaction():
            old = self._one("SELECT status FROM faces WHERE id = ?", [face_id])
            if old is None:
                raise NotFoundError(f"face {face_id} not found")
            self.db.execute("UPDATE faces SET status = ? WHERE id = ?", [status, face_id])
            self.log_event("face_status", actor, face_id=face_id, status=status, previous=old)
            return str(old)

    def faces_table(self, status: str | None = "ok") -> list[dict]:
        """Every face with its image's path and size (no crops)."""
        sql = ("SELECT f.id AS face_id, f.image_id, i.path AS image_path, i.width, i.height, "
               "f.x1, f.y1, f.x2, f.y2, f.prob, f.status FROM faces f JOIN images i ON i.id = f.image_id")
        if status is None:
            return self._rows(sql + " ORDER BY f.id")
        return self._rows(sql + " WHERE f.status = ? ORDER BY f.id", [status])
