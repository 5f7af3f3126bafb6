"""Loop state in the library: plain data only; old pickled engine state is dropped, never loaded."""
from __future__ import annotations

import pickle
import sqlite3

import numpy as np
import pytest

from storage import Library, StateFormatError
from storage.library import DB_FILENAME
from storage.migrations import MIGRATIONS


def test_loop_state_round_trips_arrays_and_scalars(fresh_db):
    st = {"round": 3, "settings": {"query_size": 5}, "face_ids": np.array([4, 9, 2]), "w": np.ones(3) / 3}
    fresh_db.save_loop_state("dlib-resnet", st, 1)
    got = fresh_db.loop_state("dlib-resnet")
    assert got["round"] == 3 and got["settings"] == {"query_size": 5}
    assert np.array_equal(got["face_ids"], [4, 9, 2]) and np.allclose(got["w"], 1 / 3)
    fresh_db.save_loop_state("dlib-resnet", {**st, "round": 4}, 2)  # replaced, not duplicated
    assert fresh_db.loop_state("dlib-resnet")["round"] == 4
    assert fresh_db.loop_state("other") is None


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _old_library(root, marker):
    """A library as the previous release wrote it: a pickled engine (here a payload) in engine_state."""
    root.mkdir()
    conn = sqlite3.connect(root / DB_FILENAME)
    conn.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    import sqlite_utils

    db = sqlite_utils.Database(conn)
    for fn in MIGRATIONS:
        if fn.__name__ == "m004_loop_state_as_data":
            break
        fn(db)
        conn.execute("INSERT INTO _migrations VALUES (?, 'then')", [fn.__name__])
    bomb = pickle.dumps(_Payload(marker))
    conn.execute("INSERT INTO engine_state VALUES ('dlib-resnet', 'aspl', '{}', ?, ?, ?, 1, 'then')",
                 [np.arange(3, dtype=np.int64).tobytes(), bomb, bomb])
    conn.commit()
    conn.close()


def test_a_planted_pickle_in_an_old_library_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    root = tmp_path / "lib"
    _old_library(root, marker)
    lib = Library(root)
    assert "m004_loop_state_as_data" in lib.migrations_applied
    assert lib.loop_state("dlib-resnet") is None  # a fresh engine next round
    ev = lib.events(kind="engine_state_reset")
    assert ev and ev[0]["payload"]["dropped"] == 1
    tables = {r[0] for r in lib.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "engine_state" not in tables
    lib.close()
    assert not marker.exists()


def test_damaged_state_bytes_are_a_named_error_not_code(fresh_db, tmp_path):
    marker = tmp_path / "pwned"
    fresh_db.db.execute("INSERT INTO loop_state VALUES ('b', '{}', ?, 1, 'now')", [pickle.dumps(_Payload(marker))])
    with pytest.raises(StateFormatError):
        fresh_db.loop_state("b")
    assert not marker.exists()


def test_a_failed_migration_leaves_the_previous_schema(tmp_path, monkeypatch):
    from storage import migrations

    root = tmp_path / "lib"
    Library(root).close()

    def broken(db):
        db.execute("CREATE TABLE half_done (x INTEGER)")
        raise RuntimeError("killed mid-migration")

    broken.__name__ = "m999_broken"
    monkeypatch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS + [broken])
    with pytest.raises(RuntimeError, match="killed"):
        Library(root)
    conn = sqlite3.connect(root / DB_FILENAME)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    done = {r[0] for r in conn.execute("SELECT name FROM _migrations")}
    conn.close()
    assert "half_done" not in tables and "m999_broken" not in done
    monkeypatch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:-1])
    Library(root).close()  # opens again
