"""The command line end to end: import, stats, search, backbones, and clear errors."""
import json
import subprocess
import sys

import pytest

from aspl.cli import main


def test_import_stats_search(small_lfw, tmp_path, capsys):
    db = tmp_path / "lib"
    assert main(["import", str(small_lfw), "--db", str(db), "--labels-from-folders", "-q"]) == 0
    out = capsys.readouterr().out
    assert "12 imported" in out and "12 seed labels" in out
    assert main(["stats", "--db", str(db)]) == 0
    st = json.loads(capsys.readouterr().out)
    assert st["images"] == 12 and st["people"] == 3 and st["index_in_sync"] == {"dlib-resnet": True}
    from storage import Library

    lib = Library(db)
    seeds = {r["face_id"]: lib.person_name(r["person_id"]) for r in lib.label_rows(("seed",))}
    lib.close()
    for name in ("Hans Blix", "Laura Bush"):
        face = min(f for f, n in seeds.items() if n == name)
        assert main(["search", str(face), "-k", "3", "--db", str(db)]) == 0
        rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert len(rows) == 3 and all(r["face_id"] != face for r in rows)
        assert rows == sorted(rows, key=lambda r: -r["score"]) and 0 < rows[-1]["score"] <= rows[0]["score"] <= 1.0001
        # dlib separates these people: the 3 nearest seed-labelled faces are the same person's other photos
        assert [r["person"] for r in rows if r["source"] == "seed"] == [name] * 3, rows


def test_clear_errors(tmp_path, capsys):
    assert main(["import", str(tmp_path / "missing"), "--db", str(tmp_path / "lib")]) == 2
    assert "missing" in capsys.readouterr().err
    assert main(["import", str(tmp_path), "--db", str(tmp_path / "lib"), "--backbone", "nope"]) == 2
    err = capsys.readouterr().err
    assert "nope" in err and "dlib-resnet" in err
    assert main(["search", "42", "--db", str(tmp_path / "lib")]) == 2
    assert "face 42" in capsys.readouterr().err


def test_backbones_lists_registry_as_json():
    out = subprocess.run([sys.executable, "-m", "aspl", "backbones"], capture_output=True, text=True, check=True).stdout
    rows = [json.loads(line) for line in out.splitlines()]
    names = {r["name"] for r in rows}
    assert {"dlib-resnet", "facenet-vggface2", "inception-v4", "lrcn-small"} <= names
    dlib = next(r for r in rows if r["name"] == "dlib-resnet")
    assert dlib["embedding_dim"] == 128 and dlib["pretrained_weights"] is True


@pytest.mark.parametrize("argv", [["import"], ["search"], ["nope"]])
def test_usage_errors_exit_nonzero(argv):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2


def test_user_accounts_from_the_command_line(tmp_path, capsys, monkeypatch):
    import io

    from aspl.service import Service
    from storage import Library

    db = str(tmp_path / "lib")
    monkeypatch.setattr("sys.stdin", io.StringIO("a long password\n"))
    assert main(["user", "add", "alice", "--role", "reviewer", "--password-stdin", "--db", db]) == 0
    assert "alice (reviewer) created" in capsys.readouterr().out
    assert main(["user", "list", "--db", db]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["name"], r["role"], r["disabled"]) for r in rows] == [("alice", "reviewer", 0)]
    assert main(["user", "role", "alice", "admin", "--db", db]) == 0
    assert main(["user", "disable", "alice", "--db", db]) == 2  # the last admin
    assert "last admin" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["user", "add", "bob", "--role", "owner", "--db", db])
    with Library(db) as lib:
        assert Service(lib).authenticate("alice", "a long password") == {"name": "alice", "role": "admin"}
