"""The library on PostgreSQL: SQL translation rules, the same migrations, concurrency, errors, the CLI."""
import threading

import numpy as np
import pytest

from storage import LabelConflictError, Library
from storage.migrations import MIGRATIONS
from storage.migrations_pg import MIGRATIONS_PG
from storage.pg import translate


@pytest.mark.parametrize("sqlite, postgres", [
    ("SELECT 1 FROM t WHERE a = ? AND b = ?", "SELECT 1 FROM t WHERE a = %s AND b = %s"),
    ("UPDATE t SET x = :v WHERE k = 'faces:open' AND y LIKE '50%'",
     "UPDATE t SET x = %(v)s WHERE k = 'faces:open' AND y LIKE '50%%'"),
    ("SELECT 'a?b', x::int FROM t WHERE y = ?", "SELECT 'a?b', x::int FROM t WHERE y = %s"),
    ("DELETE FROM leases WHERE annotator = ? AND face_id IS NOT ?",
     "DELETE FROM leases WHERE annotator = %s AND face_id IS DISTINCT FROM %s"),
    ("SELECT 1 FROM skips s WHERE s.round IS :r AND x IS NULL AND z IS NOT NULL",
     "SELECT 1 FROM skips s WHERE s.round IS NOT DISTINCT FROM %(r)s AND x IS NULL AND z IS NOT NULL"),
    ("INSERT OR IGNORE INTO rejections (a, b) VALUES (?, ?)",
     "INSERT INTO rejections (a, b) VALUES (%s, %s) ON CONFLICT DO NOTHING"),
    ("SELECT f.id FROM faces f INDEXED BY faces_open WHERE f.auto = 0",
     "SELECT f.id FROM faces f WHERE f.auto = 0"),
    ("SELECT f.id FROM queue q CROSS JOIN faces f ON f.id = q.face_id", "SELECT f.id FROM queue q JOIN faces f ON f.id = q.face_id"),
    ("SELECT MAX(MIN(g.x2 - g.x1, g.y2 - g.y1)), MAX(id), MIN(a, MAX(b, c)) FROM g",
     "SELECT MAX(LEAST(g.x2 - g.x1, g.y2 - g.y1)), MAX(id), LEAST(a, GREATEST(b, c)) FROM g"),
    ("SELECT f.id FROM skips s ORDER BY s.rowid LIMIT 1", "SELECT f.id FROM skips s ORDER BY s.seq LIMIT 1"),
])
def test_translation_rules(sqlite, postgres):
    assert translate(sqlite) == postgres


def test_both_engines_have_the_same_named_migrations_in_the_same_order():
    assert [m.__name__ for m in MIGRATIONS_PG] == [m.__name__ for m in MIGRATIONS]


def test_a_postgresql_library_needs_a_data_folder_and_a_reachable_server(monkeypatch):
    from storage import StorageError

    monkeypatch.delenv("ASPL_DATA", raising=False)
    with pytest.raises(StorageError, match="ASPL_DATA"):
        Library("postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(ConnectionError, match=r"cannot connect to the PostgreSQL library postgresql://nobody:\*\*\*@"):
        Library("postgresql://nobody:secret@127.0.0.1:1/none", data_dir="/tmp/aspl-pg-unused")


def test_migrations_apply_once_and_a_second_server_finds_them(pg_server, tmp_path):
    url = pg_server.new_database()
    first = Library(url, data_dir=tmp_path)
    assert first.migrations_applied == [m.__name__ for m in MIGRATIONS]
    second = Library(url, data_dir=tmp_path)
    assert second.migrations_applied == []
    assert second.dialect == "postgresql" and second.reopen().migrations_applied == []
    first.close()
    second.close()


def _face(lib, k=0):
    from storage.db import NewFace

    _, fids = lib.add_image(f"p/{k}.jpg", f"sha{k}", 10, 100, 100, [NewFace(
        (10.0, 10.0, 60.0, 60.0), np.zeros((5, 2), np.float32), 0.99, np.zeros((8, 8, 3), np.uint8),
        {"toy": np.ones(4, np.float32) / 2})])
    return fids[0]


def test_two_connections_never_lease_one_face_and_one_human_label_wins(pg_server, tmp_path):
    url = pg_server.new_database()
    libs = [Library(url, data_dir=tmp_path) for _ in range(4)]
    faces = [_face(libs[0], k) for k in range(6)]
    got: dict[str, list] = {}

    def annotate(i: int) -> None:
        got[f"a{i}"] = [libs[i].take_next_face(f"a{i}", 60, None) for _ in range(1)]

    threads = [threading.Thread(target=annotate, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    taken = [f for v in got.values() for f in v]
    assert len(set(taken)) == 4 and set(taken) <= set(faces)  # four annotators, four different faces
    p = libs[0].person_id("Ada", create=True)
    libs[1].add_label(faces[0], p, "human", annotator="a1")
    with libs[2].transaction():  # the conflict is answered and the transaction goes on
        with pytest.raises(LabelConflictError):
            libs[2].add_label(faces[0], p, "human", annotator="a2")
        libs[2].add_label(faces[1], p, "human", annotator="a2")
    assert {r["face_id"] for r in libs[3].label_rows(("human",))} == {faces[0], faces[1]}
    assert libs[3].counts()["labels:human"] == 2 and libs[3].counts()["faces:open"] == 4
    assert libs[3].person_id("ada") == p  # names compare without case, as on SQLite
    for lib in libs:
        lib.close()


def test_cli_stats_on_a_postgresql_library(pg_server, tmp_path, monkeypatch, capsys):
    import json

    from aspl.cli import main

    url = pg_server.new_database()
    monkeypatch.setenv("ASPL_DATA", str(tmp_path / "data"))
    from storage import IndexStore

    with Library(url) as lib:
        _face(lib)
        IndexStore(lib).get("toy")  # the index file in ASPL_DATA, checked against the database by stats
    assert main(["stats", "--db", url]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["faces"] == 1 and out["index_in_sync"] == {"toy": True}
