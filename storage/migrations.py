"""Schema migrations as named functions, applied once each, in order."""
from __future__ import annotations

import datetime as _dt
import json
from typing import Callable

import sqlite_utils

Migration = Callable[[sqlite_utils.Database], None]
MIGRATIONS: list[Migration] = []


def migration(fn: Migration) -> Migration:
    """Register ``fn`` as the next migration (its ``__name__`` is recorded)."""
    MIGRATIONS.append(fn)
    return fn


def apply_migrations(db: sqlite_utils.Database) -> list[str]:
    """Apply pending migrations in one transaction each, DDL included; return the names applied.

    Each migration and its ``_migrations`` row commit together or not at all
    (an explicit ``BEGIN IMMEDIATE``: Python's sqlite3 opens no transaction
    around DDL by itself), so a kill mid-migration leaves the previous schema.
    """
    if getattr(db, "dialect", "sqlite") == "postgresql":
        from .migrations_pg import apply_migrations_pg

        return apply_migrations_pg(db)
    conn = db.conn
    db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    if conn.in_transaction:
        conn.commit()
    applied = []
    for fn in MIGRATIONS:
        conn.execute("BEGIN IMMEDIATE")
        try:
            if conn.execute("SELECT 1 FROM _migrations WHERE name = ?", [fn.__name__]).fetchone():
                conn.execute("COMMIT")
                continue
            fn(db)
            conn.execute("INSERT INTO _migrations (name, applied_at) VALUES (?, ?)",
                         [fn.__name__, _dt.datetime.now(_dt.timezone.utc).isoformat()])
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
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


@migration
def m002_labelling_workflow(db: sqlite_utils.Database) -> None:
    """Tables of the labelling app: rounds, engine state, the query queue, undoable actions, reviews, skips."""
    db.execute("""CREATE TABLE rounds (
        id INTEGER PRIMARY KEY,
        backbone TEXT NOT NULL,
        method TEXT NOT NULL,
        actor TEXT,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        settings TEXT NOT NULL DEFAULT '{}',
        metrics TEXT NOT NULL DEFAULT '{}',
        unclear TEXT NOT NULL DEFAULT '[]',
        flagged TEXT NOT NULL DEFAULT '[]'
    )""")
    db.execute("""CREATE TABLE engine_state (
        backbone TEXT PRIMARY KEY,
        method TEXT NOT NULL,
        settings TEXT NOT NULL,
        face_ids BLOB NOT NULL,
        engine BLOB NOT NULL,
        model BLOB,
        round INTEGER,
        updated_at TEXT NOT NULL
    )""")
    db.execute("""CREATE TABLE queue (
        face_id INTEGER PRIMARY KEY REFERENCES faces(id),
        rank INTEGER NOT NULL,
        round INTEGER NOT NULL
    )""")
    db.execute("CREATE INDEX queue_rank ON queue(rank)")
    db.execute("""CREATE TABLE actions (
        id INTEGER PRIMARY KEY,
        actor TEXT NOT NULL,
        scope TEXT NOT NULL,
        kind TEXT NOT NULL,
        payload TEXT NOT NULL,
        created_at TEXT NOT NULL,
        undone_at TEXT
    )""")
    db.execute("CREATE INDEX actions_actor ON actions(actor, scope, undone_at)")
    db.execute("""CREATE TABLE reviews (
        id INTEGER PRIMARY KEY,
        face_id INTEGER NOT NULL REFERENCES faces(id),
        person_id INTEGER NOT NULL REFERENCES people(id),
        round INTEGER,
        sample TEXT NOT NULL,
        correct INTEGER NOT NULL,
        annotator TEXT,
        created_at TEXT NOT NULL,
        withdrawn INTEGER NOT NULL DEFAULT 0
    )""")
    db.execute("CREATE INDEX reviews_face ON reviews(face_id, person_id)")
    db.execute("""CREATE TABLE skips (
        face_id INTEGER NOT NULL REFERENCES faces(id),
        annotator TEXT NOT NULL,
        round INTEGER,
        created_at TEXT NOT NULL,
        PRIMARY KEY (face_id, annotator)
    )""")


@migration
def m_methods_tracks_and_notes(db: sqlite_utils.Database) -> None:
    """Video face tracks (a track is labelled once) and free-text annotator notes on faces/people."""
    db.execute("""CREATE TABLE tracks (
        id INTEGER PRIMARY KEY,
        video_path TEXT NOT NULL,
        first_frame INTEGER NOT NULL,
        last_frame INTEGER NOT NULL,
        created_at TEXT NOT NULL
    )""")
    db.execute("""CREATE TABLE track_faces (
        track_id INTEGER NOT NULL REFERENCES tracks(id),
        face_id INTEGER NOT NULL REFERENCES faces(id),
        frame INTEGER NOT NULL,
        PRIMARY KEY (track_id, face_id)
    )""")
    db.execute("CREATE INDEX track_faces_face ON track_faces(face_id)")
    db.execute("""CREATE TABLE notes (
        id INTEGER PRIMARY KEY,
        face_id INTEGER REFERENCES faces(id),
        person_id INTEGER REFERENCES people(id),
        text TEXT NOT NULL,
        annotator TEXT,
        created_at TEXT NOT NULL
    )""")
    db.execute("CREATE INDEX notes_face ON notes(face_id)")
    db.execute("CREATE INDEX notes_person ON notes(person_id)")


@migration
def m004_loop_state_as_data(db: sqlite_utils.Database) -> None:
    """Engine state as data: the pickled ``engine_state`` table is dropped (never unpickled) and
    ``loop_state`` keeps the loop's JSON metadata and npz arrays, keyed by face id inside.

    Libraries that had pickled state start a fresh engine at their next round;
    an ``engine_state_reset`` event records how many states were dropped.
    """
    old = db.execute("SELECT COUNT(*) FROM engine_state").fetchone()[0]
    db.execute("DROP TABLE engine_state")
    db.execute("""CREATE TABLE loop_state (
        backbone TEXT PRIMARY KEY,
        meta TEXT NOT NULL,
        arrays BLOB NOT NULL,
        round INTEGER,
        updated_at TEXT NOT NULL
    )""")
    if old:
        db.execute("INSERT INTO events (time, actor, kind, payload) VALUES (?, ?, ?, ?)",
                   [_dt.datetime.now(_dt.timezone.utc).isoformat(), "migration", "engine_state_reset",
                    json.dumps({"dropped": old, "reason": "pickled engine state is no longer read; "
                                "the next round starts a fresh engine"})])


@migration
def m005_backbone_setting(db: sqlite_utils.Database) -> None:
    """The library's backbone becomes an explicit setting.

    Before, the app took the backbone with most embeddings, so ``aspl embed
    --backbone X`` could silently switch it. Libraries without a ``backbone``
    setting get the one they were using (most embeddings; ties: the name first
    in order); empty libraries get it at their first import.
    """
    if db.execute("SELECT 1 FROM settings WHERE key = 'backbone'").fetchone():
        return
    row = db.execute("SELECT backbone FROM embeddings GROUP BY backbone "
                     "ORDER BY COUNT(*) DESC, backbone LIMIT 1").fetchone()
    if row is not None:
        db.execute("INSERT INTO settings (key, value) VALUES ('backbone', ?)", [json.dumps(row[0])])


@migration
def m008_conflicts(db: sqlite_utils.Database) -> None:
    """Conflicts between annotators, decided by a reviewer instead of silently overwritten: e.g. "not a face"
    on a face another annotator labelled (``kind`` ``not_face``; ``label_id`` the label in question)."""
    db.execute("""CREATE TABLE conflicts (
        id INTEGER PRIMARY KEY,
        face_id INTEGER NOT NULL REFERENCES faces(id),
        kind TEXT NOT NULL,
        label_id INTEGER REFERENCES labels(id),
        raised_by TEXT NOT NULL,
        created_at TEXT NOT NULL,
        resolved_at TEXT,
        resolved_by TEXT,
        resolution TEXT
    )""")
    db.execute("CREATE INDEX conflicts_open ON conflicts(resolved_at, face_id)")


@migration
def m007_embedding_fingerprints(db: sqlite_utils.Database) -> None:
    """Per-backbone fingerprints of the stored embeddings, so index files are checked against the exact vectors.

    ``row_count`` and ``fingerprint`` (see :mod:`storage.fingerprint`) are kept
    exact by the library in the same transaction as each embedding write.
    Triggers bump ``writes`` on every insert, update or delete of an embedding,
    also from connections outside the app; a row whose ``synced_writes`` lags
    ``writes`` is stale and is recomputed from the embeddings. Rows are made
    lazily: a backbone without one is computed at first use.
    """
    db.execute("""CREATE TABLE embedding_fingerprints (
        backbone TEXT PRIMARY KEY,
        row_count INTEGER NOT NULL,
        fingerprint TEXT NOT NULL,
        writes INTEGER NOT NULL DEFAULT 0,
        synced_writes INTEGER NOT NULL DEFAULT 0
    )""")
    for name, event, backbones in (("insert", "INSERT", "NEW.backbone"),
                                   ("update", "UPDATE", "OLD.backbone, NEW.backbone"),
                                   ("delete", "DELETE", "OLD.backbone")):
        db.execute(f"CREATE TRIGGER embeddings_count_{name} AFTER {event} ON embeddings BEGIN "
                   f"UPDATE embedding_fingerprints SET writes = writes + 1 WHERE backbone IN ({backbones}); END")


@migration
def m006_image_path_bytes(db: sqlite_utils.Database) -> None:
    """``images.path_bytes``: the exact bytes of a file name that is not valid UTF-8 (NULL otherwise).

    ``images.path`` stays readable text (such bytes as ``\\xNN`` escapes), so a
    name like ``b'caf\\xe9.jpg'`` no longer aborts an import, and
    :func:`storage.faces.fs_path` finds the file again from the stored bytes.
    """
    db.execute("ALTER TABLE images ADD COLUMN path_bytes BLOB")


@migration
def m009_accounts(db: sqlite_utils.Database) -> None:
    """Accounts with roles (annotator, reviewer, admin) and failed-login counts for throttling.

    The old single admin password (setting ``admin_password``) becomes the account ``admin``.
    """
    db.execute("""CREATE TABLE users (
        name TEXT PRIMARY KEY COLLATE NOCASE,
        role TEXT NOT NULL CHECK (role IN ('annotator', 'reviewer', 'admin')),
        password TEXT NOT NULL,
        created_at TEXT NOT NULL,
        created_by TEXT,
        disabled INTEGER NOT NULL DEFAULT 0
    )""")
    db.execute("""CREATE TABLE login_failures (
        name TEXT PRIMARY KEY,
        failures INTEGER NOT NULL,
        locked_until REAL NOT NULL
    )""")
    old = db.execute("SELECT value FROM settings WHERE key = 'admin_password'").fetchone()
    if old is not None:
        db.execute("INSERT INTO users (name, role, password, created_at, created_by) VALUES (?, ?, ?, ?, ?)",
                   ["admin", "admin", old[0], _dt.datetime.now(_dt.timezone.utc).isoformat(), "migration"])
        db.execute("DELETE FROM settings WHERE key = 'admin_password'")


@migration
def m010_counters(db: sqlite_utils.Database) -> None:
    """Counts kept by triggers, so the numbers every page shows cost one indexed read at any library size:
    ``faces:<status>``, ``images:<status>`` and ``labels:<source>`` (live labels only).

    Also the indexes the annotate path needs: live labels by face and source, faces by status, skips by
    annotator and round.
    """
    db.execute("CREATE TABLE counts (key TEXT PRIMARY KEY, n INTEGER NOT NULL DEFAULT 0)")
    keys = [f"faces:{s}" for s in ("ok", "not_face")] + [f"images:{s}" for s in ("ok", "no_face", "rejected")] \
        + [f"labels:{s}" for s in ("human", "seed", "auto")]
    db.conn.executemany("INSERT INTO counts (key, n) VALUES (?, 0)", [(k,) for k in keys])
    for sql in ("SELECT 'faces:' || status, COUNT(*) FROM faces GROUP BY status",
                "SELECT 'images:' || status, COUNT(*) FROM images GROUP BY status",
                "SELECT 'labels:' || source, COUNT(*) FROM labels WHERE revoked = 0 GROUP BY source"):
        for key, n in db.execute(sql).fetchall():
            db.execute("UPDATE counts SET n = ? WHERE key = ?", [n, key])
    for table, col in (("faces", "status"), ("images", "status")):
        db.execute(f"CREATE TRIGGER {table}_count_insert AFTER INSERT ON {table} BEGIN "
                   f"UPDATE counts SET n = n + 1 WHERE key = '{table}:' || NEW.{col}; END")
        db.execute(f"CREATE TRIGGER {table}_count_delete AFTER DELETE ON {table} BEGIN "
                   f"UPDATE counts SET n = n - 1 WHERE key = '{table}:' || OLD.{col}; END")
        db.execute(f"CREATE TRIGGER {table}_count_update AFTER UPDATE OF {col} ON {table} "
                   f"WHEN OLD.{col} != NEW.{col} BEGIN "
                   f"UPDATE counts SET n = n - 1 WHERE key = '{table}:' || OLD.{col}; "
                   f"UPDATE counts SET n = n + 1 WHERE key = '{table}:' || NEW.{col}; END")
    db.execute("CREATE TRIGGER labels_count_insert AFTER INSERT ON labels WHEN NEW.revoked = 0 BEGIN "
               "UPDATE counts SET n = n + 1 WHERE key = 'labels:' || NEW.source; END")
    db.execute("CREATE TRIGGER labels_count_delete AFTER DELETE ON labels WHEN OLD.revoked = 0 BEGIN "
               "UPDATE counts SET n = n - 1 WHERE key = 'labels:' || OLD.source; END")
    db.execute("CREATE TRIGGER labels_count_update AFTER UPDATE OF revoked, source ON labels "
               "WHEN OLD.revoked != NEW.revoked OR OLD.source != NEW.source BEGIN "
               "UPDATE counts SET n = n - (OLD.revoked = 0) WHERE key = 'labels:' || OLD.source; "
               "UPDATE counts SET n = n + (NEW.revoked = 0) WHERE key = 'labels:' || NEW.source; END")
    db.execute("CREATE INDEX labels_face_live ON labels(face_id, revoked, source)")
    db.execute("CREATE INDEX faces_status ON faces(status, id)")
    db.execute("CREATE INDEX skips_annotator ON skips(annotator, round, face_id)")
    db.execute("CREATE INDEX leases_annotator ON leases(annotator, expires_at)")
    db.execute("CREATE INDEX images_status ON images(status, error_reason)")


@migration
def m011_face_label_flags(db: sqlite_utils.Database) -> None:
    """``faces.human`` / ``faces.auto``: how many live human-or-seed / auto labels a face has, kept by
    triggers, with a partial index over the open faces, so "the next face to ask" is an index seek at any
    library size instead of a scan past every labelled face."""
    db.execute("ALTER TABLE faces ADD COLUMN human INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE faces ADD COLUMN auto INTEGER NOT NULL DEFAULT 0")
    db.execute("UPDATE faces SET human = (SELECT COUNT(*) FROM labels l WHERE l.face_id = faces.id AND "
               "l.revoked = 0 AND l.source IN ('human', 'seed')), auto = (SELECT COUNT(*) FROM labels l "
               "WHERE l.face_id = faces.id AND l.revoked = 0 AND l.source = 'auto')")
    for name, event, when, body in (
            ("insert", "INSERT", "NEW.revoked = 0", ["+1 NEW"]),
            ("delete", "DELETE", "OLD.revoked = 0", ["-1 OLD"]),
            ("update", "UPDATE OF revoked, source, face_id",
             "OLD.revoked != NEW.revoked OR OLD.source != NEW.source OR OLD.face_id != NEW.face_id",
             ["-(OLD.revoked = 0) OLD", "+(NEW.revoked = 0) NEW"])):
        stmts = []
        for b in body:
            delta, r = b.rsplit(" ", 1)
            for target in ("human", "auto"):
                cond = f"{r}.source = 'auto'" if target == "auto" else f"{r}.source != 'auto'"
                stmts.append(f"UPDATE faces SET {target} = {target} {delta[0]} {delta[1:] or '1'} "
                             f"WHERE id = {r}.face_id AND {cond};")
        db.execute(f"CREATE TRIGGER labels_face_flags_{name} AFTER {event} ON labels WHEN {when} BEGIN "
                   + " ".join(stmts) + " END")
    db.execute("CREATE INDEX faces_open ON faces(auto, id) WHERE status = 'ok' AND human = 0")


OPEN_FACE = "({r}.status = 'ok' AND {r}.human = 0 AND {r}.auto = 0 AND {r}.hidden = 0)"
HIDDEN_FACE = "({r}.status = 'ok' AND {r}.hidden = 1)"


@migration
def m012_strangers_and_quality(db: sqlite_utils.Database) -> None:
    """Strangers and hidden faces.

    * face status ``stranger`` ("a real face, but nobody we name"), next to ``ok`` and ``not_face``: the
      CHECK constraint is widened in place (SQLite's documented ``writable_schema`` procedure for changes
      that do not touch stored rows), so no copy of the faces table and its crops is made;
    * ``faces.hidden``: 1 when a face is below the library's quality thresholds (size, detection
      probability); hidden faces stay stored but are never queued, trained on or counted as remaining;
    * trigger-kept counts ``faces:stranger``, ``faces:open`` (status ok, no live label of any kind, not
      hidden: what "remaining" means) and ``faces:hidden``;
    * the partial index of faces to ask leaves hidden faces out; actions by time (answers since a round).
    """
    conn = db.conn
    version = conn.execute("PRAGMA schema_version").fetchone()[0]
    old = "CHECK (status IN ('ok', 'not_face'))"
    sql = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'faces'").fetchone()[0]
    if old not in sql:
        raise RuntimeError(f"faces table has an unexpected status constraint: {sql!r}")
    conn.execute("PRAGMA writable_schema = ON")
    try:
        conn.execute("UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'faces'",
                     [sql.replace(old, "CHECK (status IN ('ok', 'not_face', 'stranger'))")])
        conn.execute(f"PRAGMA schema_version = {int(version) + 1}")
    finally:
        conn.execute("PRAGMA writable_schema = OFF")
    db.execute("ALTER TABLE faces ADD COLUMN hidden INTEGER NOT NULL DEFAULT 0")
    o, h = OPEN_FACE, HIDDEN_FACE
    db.execute("INSERT INTO counts (key, n) VALUES ('faces:stranger', 0)")
    db.execute(f"INSERT INTO counts (key, n) SELECT 'faces:open', COUNT(*) FROM faces f WHERE {o.format(r='f')}")
    db.execute(f"INSERT INTO counts (key, n) SELECT 'faces:hidden', COUNT(*) FROM faces f WHERE {h.format(r='f')}")
    for key, cond in (("open", o), ("hidden", h)):
        new, old_ = cond.format(r="NEW"), cond.format(r="OLD")
        db.execute(f"CREATE TRIGGER faces_{key}_insert AFTER INSERT ON faces WHEN {new} BEGIN "
                   f"UPDATE counts SET n = n + 1 WHERE key = 'faces:{key}'; END")
        db.execute(f"CREATE TRIGGER faces_{key}_delete AFTER DELETE ON faces WHEN {old_} BEGIN "
                   f"UPDATE counts SET n = n - 1 WHERE key = 'faces:{key}'; END")
        db.execute(f"CREATE TRIGGER faces_{key}_update AFTER UPDATE OF status, human, auto, hidden ON faces "
                   f"WHEN {new} != {old_} BEGIN "
                   f"UPDATE counts SET n = n + {new} - {old_} WHERE key = 'faces:{key}'; END")
    db.execute("DROP INDEX faces_open")
    db.execute("CREATE INDEX faces_open ON faces(auto, id) WHERE status = 'ok' AND human = 0 AND hidden = 0")
    db.execute("CREATE INDEX actions_created ON actions(created_at)")


@migration
def m013_labels_by_person(db: sqlite_utils.Database) -> None:
    """Live labels by source and person (``labels_live_person``): the Batch tab counts each person's
    auto-labels with one index-only aggregate and reads a person's most confident ones (at 1M faces the
    scan of the labels table behind it took 2.3 s of every Batch page)."""
    db.execute("CREATE INDEX labels_live_person ON labels(source, revoked, person_id, confidence, face_id)")


@migration
def m014_not_strangers(db: sqlite_utils.Database) -> None:
    """``not_strangers``: faces an annotator left unticked in a sweep of strangers (a real face of someone,
    to name later), kept out of the next sweeps so they are not unticked again and again."""
    db.execute("""CREATE TABLE not_strangers (
        face_id INTEGER PRIMARY KEY REFERENCES faces(id),
        annotator TEXT,
        created_at TEXT NOT NULL
    )""")
