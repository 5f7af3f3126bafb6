"""The face library: one SQLite file (WAL) accessed through sqlite-utils.

Domain verbs only; callers never write SQL. Every multi-row change runs in one
transaction, so a crash leaves either all of it or none of it.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import io
import json
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import sqlite_utils
from PIL import Image

from .migrations import apply_migrations

LABEL_SOURCES = ("human", "seed", "auto")
FACE_STATUSES = ("ok", "not_face")
DB_FILENAME = "library.db"


class StorageError(Exception):
    """Base class of storage errors."""


class NotFoundError(StorageError, KeyError):
    """A face, person, image or label id that does not exist."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"


class LabelConflictError(StorageError):
    """A face already has a live human label (e.g. two annotators at once)."""


class NameConflictError(StorageError):
    """Another person already has the name asked for."""


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


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


class Library:
    """A face library rooted at a folder: ``library.db`` plus ``index/``.

    ``Library(":memory:")`` gives an in-memory database (tests).
    """

    def __init__(self, root: str | Path, busy_timeout_s: float = 30.0):
        self._lock = threading.RLock()
        if str(root) == ":memory:":
            self.root: Path | None = None
            conn = sqlite3.connect(":memory:", check_same_thread=False)
        else:
            self.root = Path(root).expanduser().resolve()
            if self.root.exists() and not self.root.is_dir():
                raise StorageError(f"library path {self.root} exists and is not a folder")
            self.root.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.root / DB_FILENAME, timeout=busy_timeout_s, check_same_thread=False)
        self.db = sqlite_utils.Database(conn)
        if self.root is not None:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        self.migrations_applied = apply_migrations(self.db)

    @property
    def index_dir(self) -> Path | None:
        return None if self.root is None else self.root / "index"

    def close(self) -> None:
        self.db.conn.close()

    def __enter__(self) -> "Library":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic unit of work (serialised within this process)."""
        with self._lock:
            conn = self.db.conn
            if conn.in_transaction:  # nested: join the outer one
                yield
                return
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            else:
                conn.execute("COMMIT")

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self.db.execute(sql, list(params)).fetchone()
        return row[0] if row else None

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict]:
        cur = self.db.execute(sql, list(params))
        cols = [c[0] for c in cur.description]
        return [dict(zip(cols, r)) for r in cur.fetchall()]

    # ---------------------------------------------------------------- events
    def log_event(self, kind: str, actor: str | None = None, **payload: Any) -> None:
        """Append to the event log (append-only; enforced by triggers)."""
        self.db.execute("INSERT INTO events (time, actor, kind, payload) VALUES (?, ?, ?, ?)",
                        [_now(), actor, kind, json.dumps(payload, default=str, sort_keys=True)])

    def events(self, kind: str | None = None, limit: int = 100) -> list[dict]:
        """Most recent events first."""
        where, params = ("WHERE kind = ?", [kind]) if kind else ("", [])
        rows = self._rows(f"SELECT * FROM events {where} ORDER BY id DESC LIMIT ?", params + [limit])
        for r in rows:
            r["payload"] = json.loads(r["payload"])
        return rows

    # ---------------------------------------------------------------- images
    def image_by_sha(self, sha256: str) -> dict | None:
        rows = self._rows("SELECT * FROM images WHERE sha256 = ?", [sha256])
        return rows[0] if rows else None

    def image(self, image_id: int) -> dict:
        rows = self._rows("SELECT * FROM images WHERE id = ?", [image_id])
        if not rows:
            raise NotFoundError(f"image {image_id} not found")
        return rows[0]

    def reject_image(self, path: str, sha256: str | None, size: int, reason: str, detail: str = "") -> int:
        """Record a file that could not be used, with its reason; returns the image id.

        Files that could not be hashed (unreadable) are keyed by their path.
        """
        key = sha256 or f"unreadable:{path}"
        with self.transaction():
            existing = self.image_by_sha(key)
            if existing:
                return int(existing["id"])
            cur = self.db.execute(
                "INSERT INTO images (path, sha256, size, status, error_reason, error_detail, imported_at) "
                "VALUES (?, ?, ?, 'rejected', ?, ?, ?)", [path, key, size, reason, detail[:500], _now()])
            return int(cur.lastrowid)

    def add_image(self, path: str, sha256: str, size: int, width: int, height: int, faces: Sequence[NewFace],
                  annotator: str | None = None) -> tuple[int, list[int]]:
        """Store a photo with all its faces, embeddings and seed labels atomically.

        Returns ``(image_id, face_ids)``. A photo whose hash is already stored is
        not added again (``face_ids`` is then empty).
        """
        with self.transaction():
            existing = self.image_by_sha(sha256)
            if existing:
                return int(existing["id"]), []
            status = "ok" if faces else "no_face"
            reason = None if faces else "no face found"
            cur = self.db.execute(
                "INSERT INTO images (path, sha256, size, width, height, status, error_reason, imported_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [path, sha256, size, width, height, status, reason, _now()])
            image_id = int(cur.lastrowid)
            face_ids = []
            for f in faces:
                x1, y1, x2, y2 = (float(v) for v in f.box)
                cur = self.db.execute(
                    "INSERT INTO faces (image_id, x1, y1, x2, y2, landmarks, prob, crop) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [image_id, x1, y1, x2, y2, json.dumps(np.asarray(f.landmarks, float).round(2).tolist()),
                     float(f.prob), encode_crop(f.crop)])
                fid = int(cur.lastrowid)
                face_ids.append(fid)
                for backbone, vec in f.embeddings.items():
                    self._put_embedding(fid, backbone, vec)
                if f.seed_person:
                    pid = self.person_id(f.seed_person, create=True)
                    self.add_label(fid, pid, "seed", confidence=1.0, annotator=annotator)
            return image_id, face_ids

    # ----------------------------------------------------------------- faces
    def face(self, face_id: int) -> dict:
        rows = self._rows("SELECT f.*, i.path, i.width, i.height FROM faces f JOIN images i ON i.id = f.image_id "
                          "WHERE f.id = ?", [face_id])
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

    def face_ids(self, status: str | None = "ok") -> list[int]:
        if status is None:
            return [r[0] for r in self.db.execute("SELECT id FROM faces ORDER BY id").fetchall()]
        return [r[0] for r in self.db.execute("SELECT id FROM faces WHERE status = ? ORDER BY id", [status]).fetchall()]

    def faces_of_image(self, image_id: int) -> list[int]:
        return [r[0] for r in self.db.execute("SELECT id FROM faces WHERE image_id = ? ORDER BY id", [image_id])]

    # ------------------------------------------------------------ embeddings
    def _put_embedding(self, face_id: int, backbone: str, vec: np.ndarray) -> None:
        v = np.ascontiguousarray(vec, dtype=np.float32).ravel()
        self.db.execute("INSERT OR REPLACE INTO embeddings (face_id, backbone, dim, vector) VALUES (?, ?, ?, ?)",
                        [face_id, backbone, int(v.size), v.tobytes()])

    def put_embeddings(self, backbone: str, face_ids: Sequence[int], X: np.ndarray) -> None:
        """Store (or replace) embeddings of ``face_ids`` for ``backbone`` atomically."""
        X = np.asarray(X, np.float32)
        if len(face_ids) != len(X):
            raise ValueError(f"{len(face_ids)} face ids but {len(X)} embeddings")
        with self.transaction():
            for fid, v in zip(face_ids, X):
                self._put_embedding(int(fid), backbone, v)

    def embeddings(self, backbone: str, face_ids: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, X)`` for ``backbone``, ordered by face id (optionally only ``face_ids``)."""
        rows = self.db.execute("SELECT face_id, dim, vector FROM embeddings WHERE backbone = ? ORDER BY face_id",
                               [backbone]).fetchall()
        if face_ids is not None:
            keep = set(int(f) for f in face_ids)
            rows = [r for r in rows if r[0] in keep]
        if not rows:
            return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
        ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
        X = np.frombuffer(b"".join(r[2] for r in rows), np.float32).reshape(len(rows), rows[0][1]).copy()
        return ids, X

    def embedding_ids(self, backbone: str) -> np.ndarray:
        return np.fromiter((r[0] for r in self.db.execute(
            "SELECT face_id FROM embeddings WHERE backbone = ? ORDER BY face_id", [backbone])), np.int64)

    def faces_missing_embedding(self, backbone: str) -> list[int]:
        return [r[0] for r in self.db.execute(
            "SELECT f.id FROM faces f LEFT JOIN embeddings e ON e.face_id = f.id AND e.backbone = ? "
            "WHERE e.face_id IS NULL ORDER BY f.id", [backbone])]

    def backbones_embedded(self) -> dict[str, int]:
        return {r[0]: r[1] for r in self.db.execute("SELECT backbone, COUNT(*) FROM embeddings GROUP BY backbone")}

    # ---------------------------------------------------------------- people
    def person_id(self, name: str, create: bool = False, actor: str | None = None) -> int:
        """Id of the person called ``name`` (case-insensitive), following merges."""
        name = " ".join(str(name).split())
        if not name:
            raise ValueError("a person's name cannot be empty")
        with self.transaction():
            row = self.db.execute("SELECT id, merged_into FROM people WHERE name = ?", [name]).fetchone()
            if row:
                return self._resolve(row[0])
            if not create:
                raise NotFoundError(f"no person named {name!r}")
            cur = self.db.execute("INSERT INTO people (name, created_at) VALUES (?, ?)", [name, _now()])
            self.log_event("person_created", actor, person_id=cur.lastrowid, name=name)
            return int(cur.lastrowid)

    def _resolve(self, person_id: int) -> int:
        seen = set()
        pid = person_id
        while True:
            nxt = self._one("SELECT merged_into FROM people WHERE id = ?", [pid])
            if nxt is None or pid in seen:
                return int(pid)
            seen.add(pid)
            pid = nxt

    def people(self) -> list[dict]:
        """Live (not merged) people with their label counts by source."""
        return self._rows(
            "SELECT p.id, p.name, "
            "SUM(CASE WHEN l.source IN ('human','seed') THEN 1 ELSE 0 END) AS human, "
            "SUM(CASE WHEN l.source = 'auto' THEN 1 ELSE 0 END) AS auto "
            "FROM people p LEFT JOIN labels l ON l.person_id = p.id AND l.revoked = 0 "
            "WHERE p.merged_into IS NULL GROUP BY p.id ORDER BY p.name")

    def person_name(self, person_id: int) -> str:
        name = self._one("SELECT name FROM people WHERE id = ?", [person_id])
        if name is None:
            raise NotFoundError(f"person {person_id} not found")
        return name

    # ---------------------------------------------------------------- labels
    def add_label(self, face_id: int, person_id: int, source: str, confidence: float | None = None,
                  round: int | None = None, annotator: str | None = None) -> int:
        """Label a face. A second live human/seed label on one face raises :class:`LabelConflictError`."""
        if source not in LABEL_SOURCES:
            raise ValueError(f"label source {source!r} is not one of {', '.join(LABEL_SOURCES)}")
        with self.transaction():
            if self._one("SELECT 1 FROM faces WHERE id = ?", [face_id]) is None:
                raise NotFoundError(f"face {face_id} not found")
            try:
                cur = self.db.execute(
                    "INSERT INTO labels (face_id, person_id, source, confidence, round, annotator, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)", [face_id, person_id, source, confidence, round, annotator, _now()])
            except sqlite3.IntegrityError as e:
                if "labels_one_human" in str(e) or "UNIQUE" in str(e):
                    raise LabelConflictError(f"face {face_id} already has a human label") from e
                raise
            self.log_event("label_added", annotator, label_id=cur.lastrowid, face_id=face_id,
                           person_id=person_id, source=source)
            return int(cur.lastrowid)

    def revoke_label(self, label_id: int, actor: str | None = None) -> None:
        with self.transaction():
            n = self.db.execute("UPDATE labels SET revoked = 1, revoked_at = ?, revoked_by = ? "
                                "WHERE id = ? AND revoked = 0", [_now(), actor, label_id]).rowcount
            if n == 0:
                raise NotFoundError(f"no live label {label_id}")
            self.log_event("label_revoked", actor, label_id=label_id)

    def labels(self, sources: Sequence[str] = LABEL_SOURCES, live: bool = True) -> list[dict]:
        """Labels of the given sources (person ids resolved through merges)."""
        bad = [s for s in sources if s not in LABEL_SOURCES]
        if bad:
            raise ValueError(f"label sources {bad} not among {', '.join(LABEL_SOURCES)}")
        marks = ",".join("?" * len(sources))
        rows = self._rows(f"SELECT * FROM labels WHERE source IN ({marks})" + (" AND revoked = 0" if live else "")
                          + " ORDER BY id", list(sources))
        for r in rows:
            r["person_id"] = self._resolve(r["person_id"])
        return rows

    def replace_auto_labels(self, round: int, labels: Sequence[tuple[int, int, float]]) -> int:
        """Revoke all live auto-labels and write this round's ``(face, person, confidence)`` set."""
        with self.transaction():
            self.db.execute("UPDATE labels SET revoked = 1, revoked_at = ?, revoked_by = 'engine' "
                            "WHERE source = 'auto' AND revoked = 0", [_now()])
            t = _now()
            self.db.conn.executemany(
                "INSERT INTO labels (face_id, person_id, source, confidence, round, annotator, created_at) "
                "VALUES (?, ?, 'auto', ?, ?, 'engine', ?)",
                [(int(f), int(p), float(c), round, t) for f, p, c in labels])
            self.log_event("auto_labels_replaced", "engine", round=round, count=len(labels))
            return len(labels)

    # ----------------------------------------------------------------- stats
    def stats(self) -> dict[str, Any]:
        """Counts for ``python -m aspl stats``."""
        img = dict(self.db.execute("SELECT status, COUNT(*) FROM images GROUP BY status").fetchall())
        rejected = dict(self.db.execute("SELECT error_reason, COUNT(*) FROM images WHERE status = 'rejected' "
                                        "GROUP BY error_reason ORDER BY 2 DESC").fetchall())
        by_source = dict(self.db.execute("SELECT source, COUNT(*) FROM labels WHERE revoked = 0 "
                                         "GROUP BY source").fetchall())
        return {
            "images": int(img.get("ok", 0) + img.get("no_face", 0)),
            "images_without_faces": int(img.get("no_face", 0)),
            "faces": int(self._one("SELECT COUNT(*) FROM faces") or 0),
            "rejected_files": int(img.get("rejected", 0)),
            "rejected_by_reason": rejected,
            "labels_by_source": {s: int(by_source.get(s, 0)) for s in LABEL_SOURCES},
            "people": int(self._one("SELECT COUNT(*) FROM people WHERE merged_into IS NULL") or 0),
            "embeddings_by_backbone": self.backbones_embedded(),
        }

    # ---------------------------------------------------------------- settings
    def get_setting(self, key: str, default: Any = None) -> Any:
        v = self._one("SELECT value FROM settings WHERE key = ?", [key])
        return default if v is None else json.loads(v)

    def set_setting(self, key: str, value: Any, actor: str | None = None) -> None:
        with self.transaction():
            self.db.execute("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", [key, json.dumps(value)])
            self.log_event("setting_changed", actor, key=key, value=value)

    # ======================================================================
    # Labelling workflow (the app's service layer): faces' status, label
    # moves, rejections, leases, rounds, engine state, the query queue,
    # undoable actions, reviews and skips. Generic verbs; no policy here.
    # ======================================================================
    @property
    def lock(self) -> threading.RLock:
        """The re-entrant lock that serialises this connection's transactions (callers may hold it longer)."""
        return self._lock

    def resolve_person(self, person_id: int) -> int:
        """The live person a (possibly merged) person id stands for."""
        return self._resolve(person_id)

    def embedding_count(self, backbone: str) -> int:
        """Faces embedded with ``backbone``."""
        return int(self._one("SELECT COUNT(*) FROM embeddings WHERE backbone = ?", [backbone]) or 0)

    def face_crop_jpeg(self, face_id: int) -> bytes:
        """The stored JPEG bytes of a face crop."""
        data = self._one("SELECT crop FROM faces WHERE id = ?", [face_id])
        if data is None:
            raise NotFoundError(f"face {face_id} not found")
        return bytes(data)

    def set_face_status(self, face_id: int, status: str, actor: str | None = None) -> str:
        """Set a face's status (``ok`` or ``not_face``); returns the previous one."""
        if status not in FACE_STATUSES:
            raise ValueError(f"face status {status!r} is not one of {', '.join(FACE_STATUSES)}")
        with self.transaction():
            old = self._one("SELECT status FROM faces WHERE id = ?", [face_id])
            if old is None:
                raise NotFoundError(f"face {face_id} not found")
            self.db.execute("UPDATE faces SET status = ? WHERE id = ?", [status, face_id])
            self.log_event("face_status", actor, face_id=face_id, status=status, previous=old)
            return str(old)

    def images(self, status: str | None = None, path_prefix: str | None = None, limit: int = 1000) -> list[dict]:
        """Image rows (newest first), optionally by status and path prefix."""
        where, params = [], []
        if status is not None:
            where.append("status = ?")
            params.append(status)
        if path_prefix is not None:
            where.append("(path = ? OR path LIKE ? ESCAPE '\\')")
            esc = path_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            params += [path_prefix, esc.rstrip("/") + "/%"]
        sql = "SELECT * FROM images" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id DESC LIMIT ?"
        return self._rows(sql, params + [limit])

    def _merge_map(self) -> dict[int, int]:
        """Person id -> live person id (merges followed), from one query."""
        parent = dict(self.db.execute("SELECT id, merged_into FROM people").fetchall())
        out = {}
        for pid in parent:
            seen, p = set(), pid
            while parent.get(p) is not None and p not in seen:
                seen.add(p)
                p = parent[p]
            out[pid] = p
        return out

    def label_rows(self, sources: Sequence[str] = LABEL_SOURCES, face_id: int | None = None,
                   person_id: int | None = None, annotator: str | None = None) -> list[dict]:
        """Live labels (person ids resolved through merges), in one query; optional filters."""
        bad = [s for s in sources if s not in LABEL_SOURCES]
        if bad:
            raise ValueError(f"label sources {bad} not among {', '.join(LABEL_SOURCES)}")
        sql = f"SELECT * FROM labels WHERE revoked = 0 AND source IN ({','.join('?' * len(sources))})"
        params: list[Any] = list(sources)
        if face_id is not None:
            sql += " AND face_id = ?"
            params.append(face_id)
        if annotator is not None:
            sql += " AND annotator = ?"
            params.append(annotator)
        rows = self._rows(sql + " ORDER BY id", params)
        m = self._merge_map()
        for r in rows:
            r["person_id"] = m.get(r["person_id"], r["person_id"])
        if person_id is not None:
            rows = [r for r in rows if r["person_id"] == person_id]
        return rows

    def label(self, label_id: int) -> dict:
        rows = self._rows("SELECT * FROM labels WHERE id = ?", [label_id])
        if not rows:
            raise NotFoundError(f"label {label_id} not found")
        return rows[0]

    def labelled_face_ids(self, sources: Sequence[str] = ("human", "seed")) -> set[int]:
        """Faces with a live label of one of ``sources``."""
        marks = ",".join("?" * len(sources))
        return {r[0] for r in self.db.execute(
            f"SELECT DISTINCT face_id FROM labels WHERE revoked = 0 AND source IN ({marks})", list(sources))}

    def revoke_face_labels(self, face_id: int, sources: Sequence[str] = ("auto",), actor: str | None = None
                           ) -> list[int]:
        """Revoke the live labels of ``sources`` on a face; returns their ids."""
        with self.transaction():
            ids = [r["id"] for r in self.label_rows(sources, face_id=face_id)]
            for lid in ids:
                self.revoke_label(lid, actor)
            return ids

    def unrevoke_label(self, label_id: int, actor: str | None = None) -> None:
        """Make a revoked label live again (undo); :class:`LabelConflictError` if the face has another human label."""
        with self.transaction():
            if self._one("SELECT revoked FROM labels WHERE id = ?", [label_id]) is None:
                raise NotFoundError(f"label {label_id} not found")
            try:
                self.db.execute("UPDATE labels SET revoked = 0, revoked_at = NULL, revoked_by = NULL WHERE id = ?",
                                [label_id])
            except sqlite3.IntegrityError as e:
                raise LabelConflictError(
                    f"label {label_id} cannot be restored: its face has another human label") from e
            self.log_event("label_restored", actor, label_id=label_id)

    def move_labels(self, label_ids: Sequence[int], person_id: int, actor: str | None = None) -> None:
        """Point labels at another person (merges, and their undo)."""
        with self.transaction():
            self.person_name(person_id)
            for lid in label_ids:
                self.db.execute("UPDATE labels SET person_id = ? WHERE id = ?", [person_id, int(lid)])
            self.log_event("labels_moved", actor, label_ids=list(map(int, label_ids)), person_id=person_id)

    def person_label_ids(self, person_id: int) -> list[int]:
        """Ids of the live labels stored with exactly this person id."""
        return [r[0] for r in self.db.execute(
            "SELECT id FROM labels WHERE person_id = ? AND revoked = 0 ORDER BY id", [person_id])]

    # ----------------------------------------------------------- rejections
    def add_rejection(self, face_id: int, person_id: int, annotator: str | None = None) -> bool:
        """Record that a face is not ``person_id``; False when already recorded."""
        with self.transaction():
            n = self.db.execute("INSERT OR IGNORE INTO rejections (face_id, person_id, annotator, created_at) "
                                "VALUES (?, ?, ?, ?)", [face_id, person_id, annotator, _now()]).rowcount
            if n:
                self.log_event("rejection_added", annotator, face_id=face_id, person_id=person_id)
            return bool(n)

    def remove_rejection(self, face_id: int, person_id: int, actor: str | None = None) -> bool:
        with self.transaction():
            n = self.db.execute("DELETE FROM rejections WHERE face_id = ? AND person_id = ?",
                                [face_id, person_id]).rowcount
            if n:
                self.log_event("rejection_removed", actor, face_id=face_id, person_id=person_id)
            return bool(n)

    def rejections(self, face_id: int | None = None) -> set[tuple[int, int]]:
        """``(face_id, person_id)`` pairs (person ids resolved through merges)."""
        sql, params = "SELECT face_id, person_id FROM rejections", []
        if face_id is not None:
            sql, params = sql + " WHERE face_id = ?", [face_id]
        m = self._merge_map()
        return {(int(f), int(m.get(p, p))) for f, p in self.db.execute(sql, params).fetchall()}

    def person_rejections(self, person_id: int) -> list[int]:
        """Faces rejected for exactly this person id."""
        return [r[0] for r in self.db.execute("SELECT face_id FROM rejections WHERE person_id = ?", [person_id])]

    # ---------------------------------------------------------------- people
    def person(self, person_id: int) -> dict:
        rows = self._rows("SELECT * FROM people WHERE id = ?", [person_id])
        if not rows:
            raise NotFoundError(f"person {person_id} not found")
        return rows[0]

    def rename_person(self, person_id: int, name: str, actor: str | None = None) -> str:
        """Rename a person; returns the old name. :class:`NameConflictError` if another person has ``name``."""
        name = " ".join(str(name).split())
        if not name:
            raise ValueError("a person's name cannot be empty")
        with self.transaction():
            old = self.person_name(person_id)
            other = self._one("SELECT id FROM people WHERE name = ? AND id != ?", [name, person_id])
            if other is not None:
                raise NameConflictError(f"another person is already called {name!r} (id {other}); merge instead")
            self.db.execute("UPDATE people SET name = ? WHERE id = ?", [name, person_id])
            self.log_event("person_renamed", actor, person_id=person_id, old=old, new=name)
            return old

    def set_merged_into(self, person_id: int, target: int | None, actor: str | None = None) -> None:
        """Mark ``person_id`` as merged into ``target`` (None: unmerge)."""
        with self.transaction():
            self.person_name(person_id)
            if target is not None:
                self.person_name(target)
                if self._resolve(target) == person_id:
                    raise ValueError(f"cannot merge person {person_id} into {target}: that would make a cycle")
            self.db.execute("UPDATE people SET merged_into = ? WHERE id = ?", [target, person_id])
            self.log_event("person_merged" if target is not None else "person_unmerged", actor,
                           person_id=person_id, into=target)

    # ---------------------------------------------------------------- leases
    def take_lease(self, annotator: str, candidates: Sequence[int], seconds: float,
                   now: float | None = None) -> int | None:
        """Lease the first of ``candidates`` not leased by someone else; the annotator's own live lease
        on a candidate wins (a reload shows the same face). Expired leases are free; the annotator's
        leases on faces no longer among ``candidates`` are dropped. Returns the face id or None."""
        now = time.time() if now is None else now
        with self.transaction():
            self.db.execute("DELETE FROM leases WHERE expires_at <= ?", [now])
            cand = set(int(c) for c in candidates)
            mine = [r[0] for r in self.db.execute(
                "SELECT face_id FROM leases WHERE annotator = ? ORDER BY expires_at DESC", [annotator])]
            stale = [f for f in mine if f not in cand]
            for f in stale:
                self.db.execute("DELETE FROM leases WHERE face_id = ?", [f])
            mine = [f for f in mine if f in cand]
            if mine:
                face = mine[0]
            else:
                others = {r[0] for r in self.db.execute("SELECT face_id FROM leases WHERE annotator != ?", [annotator])}
                face = next((int(c) for c in candidates if int(c) not in others), None)
                if face is None:
                    return None
            self.db.execute("INSERT OR REPLACE INTO leases (face_id, annotator, expires_at) VALUES (?, ?, ?)",
                            [face, annotator, now + seconds])
            return face

    def lease(self, face_id: int, annotator: str, seconds: float, now: float | None = None) -> None:
        """Lease a face to ``annotator`` (replacing any lease on it)."""
        now = time.time() if now is None else now
        with self.transaction():
            self.db.execute("INSERT OR REPLACE INTO leases (face_id, annotator, expires_at) VALUES (?, ?, ?)",
                            [face_id, annotator, now + seconds])

    def release_leases(self, annotator: str, face_ids: Sequence[int] | None = None) -> None:
        with self.transaction():
            if face_ids is None:
                self.db.execute("DELETE FROM leases WHERE annotator = ?", [annotator])
            else:
                for f in face_ids:
                    self.db.execute("DELETE FROM leases WHERE annotator = ? AND face_id = ?", [annotator, int(f)])

    def clear_leases(self) -> int:
        """Drop every lease (a new round re-ranks the faces to ask); returns how many."""
        with self.transaction():
            return int(self.db.execute("DELETE FROM leases").rowcount)

    def leased_faces(self, exclude_annotator: str | None = None, now: float | None = None) -> dict[int, str]:
        """Live leases: face id -> annotator (optionally without one annotator's)."""
        now = time.time() if now is None else now
        return {int(f): a for f, a in self.db.execute(
            "SELECT face_id, annotator FROM leases WHERE expires_at > ?", [now]).fetchall()
            if a != exclude_annotator}

    # ---------------------------------------------------------------- rounds
    def start_round(self, backbone: str, method: str, actor: str | None, settings: dict) -> int:
        with self.transaction():
            cur = self.db.execute("INSERT INTO rounds (backbone, method, actor, started_at, settings) "
                                  "VALUES (?, ?, ?, ?, ?)",
                                  [backbone, method, actor, _now(), json.dumps(settings, sort_keys=True)])
            self.log_event("round_started", actor, round=cur.lastrowid, backbone=backbone, method=method)
            return int(cur.lastrowid)

    def finish_round(self, round_id: int, metrics: dict, unclear: Sequence[int] = (),
                     flagged: Sequence[int] = ()) -> None:
        with self.transaction():
            self.db.execute("UPDATE rounds SET finished_at = ?, metrics = ?, unclear = ?, flagged = ? WHERE id = ?",
                            [_now(), json.dumps(metrics, default=float, sort_keys=True),
                             json.dumps([int(f) for f in unclear]), json.dumps([int(f) for f in flagged]),
                             round_id])
            self.log_event("round_finished", "engine", round=round_id, **{
                k: v for k, v in metrics.items() if isinstance(v, (int, float, str)) or v is None})

    def set_round_flagged(self, round_id: int, flagged: Sequence[int]) -> None:
        with self.transaction():
            self.db.execute("UPDATE rounds SET flagged = ? WHERE id = ?",
                            [json.dumps([int(f) for f in flagged]), round_id])

    def rounds(self, finished_only: bool = True, limit: int | None = None) -> list[dict]:
        """Rounds oldest first (JSON fields decoded)."""
        sql = "SELECT * FROM rounds" + (" WHERE finished_at IS NOT NULL" if finished_only else "") + " ORDER BY id"
        rows = self._rows(sql)
        if limit is not None:
            rows = rows[-limit:]
        for r in rows:
            for k in ("settings", "metrics", "unclear", "flagged"):
                r[k] = json.loads(r[k])
        return rows

    def last_round(self) -> dict | None:
        """The latest finished round, or None."""
        rows = self._rows("SELECT * FROM rounds WHERE finished_at IS NOT NULL ORDER BY id DESC LIMIT 1")
        if not rows:
            return None
        r = rows[0]
        for k in ("settings", "metrics", "unclear", "flagged"):
            r[k] = json.loads(r[k])
        return r

    def last_round_id(self) -> int | None:
        return self._one("SELECT MAX(id) FROM rounds WHERE finished_at IS NOT NULL")

    # ---------------------------------------------------------- engine state
    def save_engine_state(self, backbone: str, method: str, settings: dict, face_ids: np.ndarray,
                          engine: bytes, model: bytes | None, round_id: int | None) -> None:
        """Store the serialised engine (and last model) of ``backbone``; rows are ``face_ids``."""
        with self.transaction():
            self.db.execute("INSERT OR REPLACE INTO engine_state (backbone, method, settings, face_ids, engine, "
                            "model, round, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                            [backbone, method, json.dumps(settings, sort_keys=True),
                             np.ascontiguousarray(face_ids, np.int64).tobytes(), engine, model, round_id, _now()])

    def engine_state(self, backbone: str) -> dict | None:
        rows = self._rows("SELECT * FROM engine_state WHERE backbone = ?", [backbone])
        if not rows:
            return None
        r = rows[0]
        r["settings"] = json.loads(r["settings"])
        r["face_ids"] = np.frombuffer(r["face_ids"], np.int64).copy()
        return r

    # ----------------------------------------------------------------- queue
    def set_queue(self, round_id: int, face_ids: Sequence[int]) -> None:
        """Replace the query queue with ``face_ids`` (most useful first)."""
        with self.transaction():
            self.db.execute("DELETE FROM queue")
            self.db.conn.executemany("INSERT OR IGNORE INTO queue (face_id, rank, round) VALUES (?, ?, ?)",
                                     [(int(f), i, round_id) for i, f in enumerate(face_ids)])

    def queue(self) -> list[int]:
        return [r[0] for r in self.db.execute("SELECT face_id FROM queue ORDER BY rank")]

    # --------------------------------------------------------------- actions
    def add_action(self, actor: str, scope: str, kind: str, payload: dict) -> int:
        """Record an undoable action (with what is needed to undo it)."""
        with self.transaction():
            cur = self.db.execute("INSERT INTO actions (actor, scope, kind, payload, created_at) "
                                  "VALUES (?, ?, ?, ?, ?)",
                                  [actor, scope, kind, json.dumps(payload, default=int, sort_keys=True), _now()])
            return int(cur.lastrowid)

    def actions(self, actor: str | None = None, scope: str | None = None, live: bool = True,
                limit: int = 50) -> list[dict]:
        """Most recent actions first (``live``: not undone)."""
        where, params = [], []
        if actor is not None:
            where.append("actor = ?")
            params.append(actor)
        if scope is not None:
            where.append("scope = ?")
            params.append(scope)
        if live:
            where.append("undone_at IS NULL")
        sql = "SELECT * FROM actions" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id DESC LIMIT ?"
        rows = self._rows(sql, params + [limit])
        for r in rows:
            r["payload"] = json.loads(r["payload"])
        return rows

    def mark_action_undone(self, action_id: int, actor: str | None = None) -> None:
        with self.transaction():
            n = self.db.execute("UPDATE actions SET undone_at = ? WHERE id = ? AND undone_at IS NULL",
                                [_now(), action_id]).rowcount
            if not n:
                raise NotFoundError(f"no live action {action_id}")
            self.log_event("undo", actor, action_id=action_id)

    # --------------------------------------------------------------- reviews
    def add_review(self, face_id: int, person_id: int, round_id: int | None, sample: str, correct: bool,
                   annotator: str | None) -> int:
        with self.transaction():
            cur = self.db.execute("INSERT INTO reviews (face_id, person_id, round, sample, correct, annotator, "
                                  "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                                  [face_id, person_id, round_id, sample, int(bool(correct)), annotator, _now()])
            self.log_event("auto_label_reviewed", annotator, face_id=face_id, person_id=person_id,
                           sample=sample, correct=bool(correct))
            return int(cur.lastrowid)

    def withdraw_review(self, review_id: int) -> None:
        with self.transaction():
            self.db.execute("UPDATE reviews SET withdrawn = 1 WHERE id = ?", [review_id])

    def reviews(self, sample: str | None = None, round_id: int | None = None) -> list[dict]:
        where, params = ["withdrawn = 0"], []
        if sample is not None:
            where.append("sample = ?")
            params.append(sample)
        if round_id is not None:
            where.append("round = ?")
            params.append(round_id)
        return self._rows("SELECT * FROM reviews WHERE " + " AND ".join(where) + " ORDER BY id", params)

    # ----------------------------------------------------------------- skips
    def add_skip(self, face_id: int, annotator: str, round_id: int | None) -> None:
        with self.transaction():
            self.db.execute("INSERT OR REPLACE INTO skips (face_id, annotator, round, created_at) VALUES (?, ?, ?, ?)",
                            [face_id, annotator, round_id, _now()])

    def remove_skip(self, face_id: int, annotator: str) -> None:
        with self.transaction():
            self.db.execute("DELETE FROM skips WHERE face_id = ? AND annotator = ?", [face_id, annotator])

    def skipped_face_ids(self, annotator: str, round_id: int | None) -> set[int]:
        """Faces ``annotator`` skipped during round ``round_id`` (None: before any round)."""
        if round_id is None:
            rows = self.db.execute("SELECT face_id FROM skips WHERE annotator = ? AND round IS NULL", [annotator])
        else:
            rows = self.db.execute("SELECT face_id FROM skips WHERE annotator = ? AND round = ?", [annotator, round_id])
        return {r[0] for r in rows}

    # -------------------------------------------------------------- settings
    def set_private_setting(self, key: str, value: Any, actor: str | None = None) -> None:
        """Like :meth:`set_setting`, but the event log records only the key (secrets, hashes)."""
        with self.transaction():
            self.db.execute("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", [key, json.dumps(value)])
            self.log_event("setting_changed", actor, key=key, value="(hidden)")

    def embedding(self, face_id: int, backbone: str) -> np.ndarray | None:
        """One face's embedding for ``backbone`` (None if it has none)."""
        row = self.db.execute("SELECT dim, vector FROM embeddings WHERE face_id = ? AND backbone = ?",
                              [face_id, backbone]).fetchone()
        return None if row is None else np.frombuffer(row[1], np.float32).copy()

    def face_persons(self, face_ids: Sequence[int], sources: Sequence[str] = ("human", "seed")) -> dict[int, int]:
        """Face id -> person id (resolved) of the live labels of ``sources`` on ``face_ids``."""
        ids = [int(f) for f in face_ids]
        if not ids:
            return {}
        m = self._merge_map()
        out: dict[int, int] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            rows = self.db.execute(
                "SELECT face_id, person_id FROM labels WHERE revoked = 0 "
                f"AND source IN ({','.join('?' * len(sources))}) "
                f"AND face_id IN ({','.join('?' * len(chunk))}) ORDER BY id", list(sources) + chunk).fetchall()
            for f, p in rows:
                out[int(f)] = int(m.get(p, p))
        return out

    def person_faces(self, person_id: int, sources: Sequence[str] = LABEL_SOURCES, limit: int | None = None
                     ) -> list[dict]:
        """Live labels of a person (including people merged into it): human/seed first, then by confidence."""
        m = self._merge_map()
        raw = [p for p, r in m.items() if r == person_id] or [person_id]
        sql = (f"SELECT * FROM labels WHERE revoked = 0 AND source IN ({','.join('?' * len(sources))}) "
               f"AND person_id IN ({','.join('?' * len(raw))}) "
               "ORDER BY CASE WHEN source = 'auto' THEN 1 ELSE 0 END, confidence DESC, id")
        rows = self._rows(sql + (f" LIMIT {int(limit)}" if limit else ""), list(sources) + raw)
        for r in rows:
            r["person_id"] = person_id
        return rows

    def faces_table(self, status: str | None = "ok") -> list[dict]:
        """Every face with its image's path and size (no crops)."""
        sql = ("SELECT f.id AS face_id, f.image_id, i.path AS image_path, i.width, i.height, "
               "f.x1, f.y1, f.x2, f.y2, f.prob, f.status FROM faces f JOIN images i ON i.id = f.image_id")
        if status is None:
            return self._rows(sql + " ORDER BY f.id")
        return self._rows(sql + " WHERE f.status = ? ORDER BY f.id", [status])

    # ------------------------------------------------- tracks and notes (methods)
    def add_track(self, video_path: str, faces: Sequence[tuple[int, int]]) -> int:
        """Store a video face track: ``faces`` are ``(frame, face_id)`` pairs in time order."""
        if not faces:
            raise ValueError("a track needs at least one face")
        frames = [int(f) for f, _ in faces]
        with self.transaction():
            cur = self.db.execute("INSERT INTO tracks (video_path, first_frame, last_frame, created_at) "
                                  "VALUES (?, ?, ?, ?)", [video_path, min(frames), max(frames), _now()])
            tid = int(cur.lastrowid)
            self.db.conn.executemany("INSERT INTO track_faces (track_id, face_id, frame) VALUES (?, ?, ?)",
                                [(tid, int(fid), int(fr)) for fr, fid in faces])
            self.log_event("track_added", None, track_id=tid, faces=len(faces), video=video_path)
            return tid

    def tracks(self) -> list[dict]:
        """Every track with its face count."""
        return self._rows("SELECT t.*, COUNT(tf.face_id) AS faces FROM tracks t "
                          "LEFT JOIN track_faces tf ON tf.track_id = t.id GROUP BY t.id ORDER BY t.id")

    def track_face_ids(self, track_id: int) -> list[int]:
        """Face ids of a track in frame order; :class:`NotFoundError` for an unknown track."""
        if self._one("SELECT 1 FROM tracks WHERE id = ?", [track_id]) is None:
            raise NotFoundError(f"track {track_id} not found")
        return [int(r[0]) for r in self.db.execute(
            "SELECT face_id FROM track_faces WHERE track_id = ? ORDER BY frame, face_id", [track_id]).fetchall()]

    def label_track(self, track_id: int, person_id: int, source: str = "human",
                    annotator: str | None = None) -> list[int]:
        """Label every face of a track (once, for the whole track); faces already human-labelled are skipped."""
        ids = self.track_face_ids(track_id)
        done = self.labelled_face_ids(("human", "seed"))
        out = []
        with self.transaction():
            for fid in ids:
                if fid not in done:
                    out.append(self.add_label(fid, person_id, source, confidence=1.0, annotator=annotator))
            self.log_event("track_labelled", annotator, track_id=track_id, person_id=person_id, labels=len(out))
        return out

    def add_note(self, text: str, face_id: int | None = None, person_id: int | None = None,
                 annotator: str | None = None) -> int:
        """A free-text annotator note on a face and/or a person."""
        if not text.strip():
            raise ValueError("a note needs some text")
        if face_id is None and person_id is None:
            raise ValueError("a note needs a face_id or a person_id")
        with self.transaction():
            cur = self.db.execute("INSERT INTO notes (face_id, person_id, text, annotator, created_at) "
                                  "VALUES (?, ?, ?, ?, ?)", [face_id, person_id, text.strip(), annotator, _now()])
            return int(cur.lastrowid)

    def notes(self) -> list[dict]:
        """Every note, oldest first."""
        return self._rows("SELECT * FROM notes ORDER BY id")
