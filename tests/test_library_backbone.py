"""The library's backbone is an explicit setting: import uses it, embed never switches it, switching is one
explicit action (``aspl use-backbone`` or the Admin swap), and old libraries get it by a named migration."""
from __future__ import annotations

import sqlite3

import numpy as np

from apphelpers import SYNTH, build_synthetic
from aspl.cli import main
from aspl.importer import embed_library
from aspl.service import Service
from storage import IndexStore, Library


def test_import_with_another_backbone_than_the_librarys_is_refused(tmp_path, small_lfw, capsys):
    lib, _ = build_synthetic(tmp_path / "lib")
    lib.close()
    code = main(["import", str(small_lfw / "Hans_Blix"), "--db", str(tmp_path / "lib"), "--backbone",
                 "dlib-resnet", "-q"])
    err = capsys.readouterr().err
    assert code == 2 and SYNTH in err and "use-backbone dlib-resnet" in err
    lib = Library(tmp_path / "lib")
    assert lib.stats()["images"] == 32 and lib.get_setting("backbone") == SYNTH  # nothing imported, nothing switched


def test_first_import_stores_the_backbone_and_embedding_another_does_not_switch(tmp_path, small_lfw, capsys):
    db = tmp_path / "lib"
    assert main(["import", str(small_lfw / "Hans_Blix"), "--db", str(db), "-q"]) == 0
    lib = Library(db)
    assert lib.get_setting("backbone") == "dlib-resnet"
    embed_library(lib, IndexStore(lib), _Other(), progress=False)
    assert lib.embedding_count("other-test") == lib.embedding_count("dlib-resnet") > 0
    assert Service(lib).backbone == "dlib-resnet"  # more (or as many) vectors of another backbone: no switch


class _Other:
    """A stand-in backbone: a fixed random projection of the crop's mean colour."""

    class info:
        name, embedding_dim = "other-test", 4

    def embed(self, crops):
        P = np.random.default_rng(0).normal(size=(3, 4))
        return np.stack([np.asarray(c, np.float32).mean((0, 1)) @ P for c in crops]).astype(np.float32)


def test_use_backbone_embeds_missing_faces_then_switches(tmp_path, small_lfw, capsys):
    db = tmp_path / "lib"
    assert main(["import", str(small_lfw / "Hans_Blix"), "--db", str(db), "-q"]) == 0
    assert main(["use-backbone", "nope", "--db", str(db)]) == 2
    assert "nope" in capsys.readouterr().err
    assert main(["use-backbone", "lrcn-small", "--db", str(db), "-q"]) == 0
    assert "now uses lrcn-small (was dlib-resnet" in capsys.readouterr().out
    lib = Library(db)
    assert lib.get_setting("backbone") == "lrcn-small"
    assert lib.embedding_count("lrcn-small") == lib.stats()["faces"]
    assert IndexStore(lib).in_sync("lrcn-small")
    assert any(e["kind"] == "backbone_swapped" for e in lib.events(limit=5))


def test_old_library_gets_the_backbone_it_used_by_migration(tmp_path):
    lib, _ = build_synthetic(tmp_path / "lib")
    lib.put_embeddings("minor", [1, 2], np.ones((2, 3), np.float32))
    lib.close()
    con = sqlite3.connect(tmp_path / "lib" / "library.db")
    with con:
        con.execute("DELETE FROM settings WHERE key = 'backbone'")
        con.execute("DELETE FROM _migrations WHERE name = 'm005_backbone_setting'")
    con.close()
    lib = Library(tmp_path / "lib")
    assert lib.get_setting("backbone") == SYNTH  # the backbone with most vectors, as the app used before
