"""The face library: one SQLite file (WAL) accessed through sqlite-utils.

Domain verbs only; callers never write SQL. Every multi-row change runs in one
transaction, so a crash leaves either all of it or none of it. The verbs live in
one mixin per table family (``faces``, ``embeddings``, ``people``, ``workflow``,
``rounds``, ``media``); this module holds the connection and what they share.
"""
from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import zlib
from pathlib import Path
from typing import Any, Iterator, Sequence

import sqlite_utils

from ._common import LABEL_SOURCES, _now
from .embeddings import EmbeddingsMixin
from .errors import BusyError, StorageError
from .faces import FacesMixin
from .media import MediaMixin
from .migrations import apply_migrations
from .people import PeopleMixin
from .pg import PgDatabase, is_url
from .rounds import RoundsMixin
from .users import UsersMixin
from .workflow import WorkflowMixin

DB_FILENAME = "library.db"


class Library(FacesMixin, EmbeddingsMixin, PeopleMixin, WorkflowMixin, RoundsMixin, MediaMixin, UsersMixin):
    """A face library rooted at a folder: ``library.db`` plus ``index/``.

    ``Library(":memory:")`` gives an in-memory database (tests). Owns the
    ``events`` and ``settings`` tables; the mixins own the others.
    """

    def __init__(self, root: str | Path, busy_timeout_s: float = 30.0, data_dir: str | Path | None = None):
        self._lock = threading.RLock()
        self.location: str | Path = root  # what reopens this library (see :meth:`reopen`)
        if is_url(root):  # PostgreSQL: the database holds the data, ``data_dir`` the index files and uploads
            data = data_dir or os.environ.get("ASPL_DATA")
            if not data:
                raise StorageError("a PostgreSQL library keeps its FAISS index files, uploads and exports in a "
                                   "folder: set ASPL_DATA=/path/to/folder (or pass data_dir)")
            self.root = Path(data).expanduser().resolve()
            self.root.mkdir(parents=True, exist_ok=True)
            self.db = PgDatabase(str(root))
            self.migrations_applied = apply_migrations(self.db)
            return
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
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return getattr(self.db, "dialect", "sqlite")

    def reopen(self) -> "Library":
        """A new connection to this library (for a background job)."""
        if self.dialect == "postgresql":
            return Library(self.location, data_dir=self.root)
        if self.root is None:
            raise StorageError("an in-memory library has no second connection; share this one")
        return Library(self.root)

    @property
    def index_dir(self) -> Path | None:
        return None if self.root is None else self.root / "index"

    @property
    def lock(self) -> threading.RLock:
        """The re-entrant lock that serialises this connection's transactions (callers may hold it longer)."""
        return self._lock

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
            if self.dialect == "postgresql":
                db = self.db
                if db.in_transaction:  # nested: join the outer one
                    yield
                    return
                db.begin()
                try:
                    yield
                except BaseException:
                    db.rollback()
                    raise
                else:
                    db.commit()
                return
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

    def _insert(self, table: str, record: dict[str, Any], replace: bool = False) -> int:
        """Insert one row (``replace``: INSERT OR REPLACE) with sqlite-utils; returns its rowid.

        Inside :meth:`transaction` sqlite-utils uses a savepoint, so nothing is
        committed early and a failed insert leaves the outer transaction usable.
        """
        rowid = self.db.table(table).insert(record, replace=replace).last_rowid
        return 0 if rowid is None else int(rowid)

    @contextlib.contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        """Hold the library-wide lock ``name`` (e.g. ``"round"``) while inside, across processes and app
        servers: a PostgreSQL advisory lock of this connection, or an ``flock`` on ``<folder>/.<name>.lock``
        for a SQLite file (an in-memory library has one process). :class:`BusyError` at once if another
        connection holds it. A crashed holder frees it (its connection or file closes)."""
        if self.dialect == "postgresql":
            key = zlib.crc32(f"aspl:{name}".encode())
            if not self.db.raw("SELECT pg_try_advisory_lock(%s)", [key]).fetchone()[0]:
                raise BusyError(f"the {name} lock is held by another app server or process")
            try:
                yield
            finally:
                self.db.raw("SELECT pg_advisory_unlock(%s)", [key])
            return
        if self.root is None:
            yield
            return
        import fcntl

        with open(self.root / f".{name}.lock", "a+") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as e:
                raise BusyError(f"the {name} lock is held by another app server or process") from e
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def held_elsewhere(self, name: str) -> bool:
        """Whether another connection holds the lock ``name`` now (see :meth:`exclusive`)."""
        try:
            with self.exclusive(name):
                return False
        except BusyError:
            return True

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        """A statement whose failure is caught and answered (a unique label, say) leaves the transaction
        usable: PostgreSQL aborts a whole transaction on an error, unless it came inside a savepoint."""
        if self.dialect != "postgresql" or not self.db.in_transaction:
            yield
            return
        self.db.raw("SAVEPOINT aspl_stmt")
        try:
            yield
        except BaseException:
            self.db.raw("ROLLBACK TO SAVEPOINT aspl_stmt")
            raise
        self.db.raw("RELEASE SAVEPOINT aspl_stmt")

    # ---------------------------------------------------------------- events
    def log_event(self, kind: str, actor: str | None = None, **payload: Any) -> None:
        """Append to the event log (append-only; enforced by triggers)."""
        self._insert("events", {"time": _now(), "actor": actor, "kind": kind,
                                "payload": json.dumps(payload, default=str, sort_keys=True)})

    def events(self, kind: str | None = None, limit: int = 100) -> list[dict]:
        """Most recent events first."""
        where, params = ("WHERE kind = ?", [kind]) if kind else ("", [])
        rows = self._rows(f"SELECT * FROM events {where} ORDER BY id DESC LIMIT ?", params + [limit])
        for r in rows:
            r["payload"] = json.loads(r["payload"])
        return rows

    # -------------------------------------------------------------- settings
    def get_setting(self, key: str, default: Any = None) -> Any:
        v = self._one("SELECT value FROM settings WHERE key = ?", [key])
        return default if v is None else json.loads(v)

    def set_setting(self, key: str, value: Any, actor: str | None = None) -> None:
        with self.transaction():
            self._insert("settings", {"key": key, "value": json.dumps(value)}, replace=True)
            self.log_event("setting_changed", actor, key=key, value=value)

    def set_private_setting(self, key: str, value: Any, actor: str | None = None) -> None:
        """Like :meth:`set_setting`, but the event log records only the key (secrets, hashes)."""
        with self.transaction():
            self._insert("settings", {"key": key, "value": json.dumps(value)}, replace=True)
            self.log_event("setting_changed", actor, key=key, value="(hidden)")

    # ----------------------------------------------------------------- stats
    def counts(self) -> dict[str, int]:
        """The trigger-kept counts (one small table read): ``faces:<status>``, ``faces:open`` (no live label,
        not hidden), ``faces:hidden``,
        ``images:<status>``, ``labels:<source>`` (live labels)."""
        return {k: int(n) for k, n in self.db.execute("SELECT key, n FROM counts").fetchall()}

    def change_marker(self) -> tuple:
        """A cheap value that changes whenever the labelling state may have changed: an answer, an undo, a
        round, an import, a status or quality change (the newest event and action ids, the trigger-kept
        counts). For caches of views derived from that state (e.g. the Batch groups)."""
        ev = self._one("SELECT MAX(id) FROM events")
        act = self._one("SELECT MAX(id) FROM actions")
        return ev, act, tuple(sorted(self.counts().items()))

    def stats(self, detail: bool = True) -> dict[str, Any]:
        """Counts for ``python -m aspl stats`` (without ``detail``: only the trigger-kept counts and people,
        cheap at any size: no rejected-by-reason or per-backbone counts)."""
        c = self.counts()
        rejected = dict(self.db.execute("SELECT error_reason, COUNT(*) FROM images WHERE status = 'rejected' "
                                        "GROUP BY error_reason ORDER BY 2 DESC").fetchall()) if detail else {}
        return {
            "images": c["images:ok"] + c["images:no_face"],
            "images_without_faces": c["images:no_face"],
            "faces": c["faces:ok"] + c["faces:not_face"] + c["faces:stranger"],
            "strangers": c["faces:stranger"],
            "hidden_faces": c["faces:hidden"],
            "rejected_files": c["images:rejected"],
            "rejected_by_reason": rejected,
            "labels_by_source": {s: c[f"labels:{s}"] for s in LABEL_SOURCES},
            "people": int(self._one("SELECT COUNT(*) FROM people WHERE merged_into IS NULL") or 0),
            "embeddings_by_backbone": self.backbones_embedded() if detail else {},
        }
