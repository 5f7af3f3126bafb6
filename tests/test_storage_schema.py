"""Migrations, WAL, and the append-only event log."""
import sqlite3

import pytest

from storage import DATABASE_ERRORS, Library
from storage.migrations import MIGRATIONS, apply_migrations


def test_migrations_apply_once(tmp_path):
    lib = Library(tmp_path / "lib")
    assert lib.migrations_applied == [m.__name__ for m in MIGRATIONS]
    assert apply_migrations(lib.db) == []
    lib.close()
    again = Library(tmp_path / "lib")
    assert again.migrations_applied == []
    again.close()


def test_on_disk_library_uses_wal(tmp_path):
    lib = Library(tmp_path / "lib")
    assert lib.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert (tmp_path / "lib" / "library.db").is_file()
    lib.close()


def test_library_path_that_is_a_file_is_refused(tmp_path):
    f = tmp_path / "not_a_dir"
    f.write_text("x")
    with pytest.raises(Exception, match="not a folder"):
        Library(f)


def test_events_are_append_only(fresh_db):
    fresh_db.log_event("something", "alice", n=1)
    assert fresh_db.events()[0]["payload"] == {"n": 1}
    with pytest.raises(DATABASE_ERRORS, match="append-only"):
        fresh_db.db.execute("UPDATE events SET kind = 'x'")
    with pytest.raises(DATABASE_ERRORS, match="append-only"):
        fresh_db.db.execute("DELETE FROM events")


def test_settings_roundtrip_and_logged(fresh_db):
    assert fresh_db.get_setting("pace", 0.12) == 0.12
    fresh_db.set_setting("pace", {"start": 0.2}, actor="admin")
    assert fresh_db.get_setting("pace") == {"start": 0.2}
    assert fresh_db.events("setting_changed")[0]["actor"] == "admin"


def test_reopen_gives_a_second_connection_to_a_file_library_and_refuses_memory(tmp_path):
    from storage import StorageError

    lib = Library(tmp_path / "lib")
    lib.set_setting("k", 1)
    other = lib.reopen()
    assert other is not lib and other.get_setting("k") == 1 and other.root == lib.root
    other.close()
    lib.close()
    with pytest.raises(StorageError, match="in-memory"):
        Library(":memory:").reopen()
