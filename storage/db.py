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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import sqlite_utils
from PIL import Image

from .migrations import apply_migrations

LABEL_SOURCES = ("human", "seed", "auto")
DB_FILENAME = "library.db"


class StorageError(Exception):
    """Base class of storage errors."""


class NotFoundError(StorageError, KeyError):
    """A face, person, image or label id that does not exist."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"


class LabelConflictError(StorageError):
    """A face already has a live human label (e.g. two annotators at once)."""


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

