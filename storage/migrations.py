"""Schema migrations as named functions, applied once each, in order."""
from __future__ import annotations

import datetime as _dt
from typing import Callable

import sqlite_utils

Migration = Callable[[sqlite_utils.Database], None]
MIGRATIONS: list[Migration] = []


def migration(fn: Migration) -> Migration:
    """Register ``fn`` as the next migration (its ``__name__`` is recorded)."""
    MIGRATIONS.append(fn)
    return fn


def apply_migrations(db: sqlite_utils.Database) -> list[str]:
    """Apply pending migrations in one transaction each; return the names applied."""
    db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    done = {r[0] for r in db.execute("SELECT name FROM _migrations").fetchall()}
    applied = []
    for fn in MIGRATIONS:
        if fn.__name__ in done:
            continue
        with db.conn:
            fn(db)
            db.execute("INSERT INTO _migrations (name, applied_at) VALUES (?, ?)",
                       [fn.__name__, _dt.datetime.now(_dt.timezone.utc).isoformat()])
        applied.append(fn.__name__)
    return applied


@migration
def m001_initial_schema(db: sqlite_utils.Database) -> None:
    db.execute("""CREATE TABLE images (
        id INTEGER PRIMARY KEY,
        path TEXT NOT NULL,
        sha256 TEXT NOT NULL UNIQUE,
        size INTEGER NOT NULL,
        width INTEGER,
        height INTEGER,
        status TEXT NOT NULL CHECK (status IN ('ok', 'no_face', 'rejected')),
        error_reason TEXT,
        error_detail TEXT,
        imported_at TEXT NOT NULL
    )""")
    db.execute("""CREATE TABLE faces (
        id INTEGER PRIMARY KEY,
        image_id INTEGER NOT NULL REFERENCES images(id),
        x1 REAL NOT NULL, y1 REAL NOT NULL, x2 REAL NOT NULL, y2 REAL NOT NULL,
        landmarks TEXT NOT NULL,
        prob REAL NOT NULL,
        crop BLOB NOT NULL,
        status TEXT NOT NULL DEFAULT 'ok' CHECK (status IN ('ok', 'not_face'))
    )""")
    db.execute("CREATE INDEX faces_image ON faces(image_id)")
    db.execute("""CREATE TABLE people (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE COLLATE NOCASE,
        created_at TEXT NOT NULL,
        merged_into INTEGER REFERENCES people(id)
    )""")
    db.execute("""CREATE TABLE labels (
        id INTEGER PRIMARY KEY,
        face_id INTEGER NOT NULL REFERENCES faces(id),
        person_id INTEGER NOT NULL REFERENCES people(id),
        source TEXT NOT NULL CHECK (source IN ('human', 'seed', 'auto')),
        confidence REAL,
        round INTEGER,
        annotator TEXT,
        created_at TEXT NOT NULL,
        revoked INTEGER NOT NULL DEFAULT 0,
        revoked_at TEXT,
        revoked_by TEXT
    )""")
    db.execute("CREATE INDEX labels_face ON labels(face_id)")
    db.execute("CREATE INDEX labels_person ON labels(person_id)")
    # At most one live human/seed label per face: two annotators cannot both win.
    db.execute("CREATE UNIQUE INDEX labels_one_human ON labels(face_id) "
               "WHERE revoked = 0 AND source IN ('human', 'seed')")
    db.execute("""CREATE TABLE embeddings (
        face_id INTEGER NOT NULL REFERENCES faces(id),
        backbone TEXT NOT NULL,
        dim INTEGER NOT NULL,
        vector BLOB NOT NULL,
        PRIMARY KEY (face_id, backbone)
    )""")
    db.execute("CREATE INDEX embeddings_backbone ON embeddings(backbone)")
    db.execute("""CREATE TABLE rejections (
        face_id INTEGER NOT NULL REFERENCES faces(id),
        person_id INTEGER NOT NULL REFERENCES people(id),
        annotator TEXT,
        created_at TEXT NOT NULL,
        PRIMARY KEY (face_id, person_id)
    )""")
    db.execute("""CREATE TABLE leases (
        face_id INTEGER PRIMARY KEY REFERENCES faces(id),
        annotator TEXT NOT NULL,
        expires_at REAL NOT NULL
    )""")
    db.execute("""CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        time TEXT NOT NULL,
        actor TEXT,
        kind TEXT NOT NULL,
        payload TEXT NOT NULL
    )""")
    # The event log is append-only.
    db.execute("CREATE TRIGGER events_no_update BEFORE UPDATE ON events "
               "BEGIN SELECT RAISE(ABORT, 'events are append-only'); END")
    db.execute("CREATE TRIGGER events_no_delete BEFORE DELETE ON events "
               "BEGIN SELECT RAISE(ABORT, 'events are append-only'); END")
    db.execute("""CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    )""")
