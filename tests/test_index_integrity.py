"""Index files checked against the database by fingerprint: damaged files and other vectors are rebuilt, never used."""
from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from apphelpers import SYNTH, build_synthetic, synthetic_service
from storage import FaceIndex, IndexStore, Library
from storage import fingerprint as fpr


def _unit(n: int, d: int, seed: int) -> np.ndarray:
    X = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return X / np.linalg.norm(X, axis=1, keepdims=True)


@pytest.fixture
def synth(tmp_path):
    """An on-disk synthetic library (32 faces, 4 people) with a saved index: ``(library, store, path)``."""
    lib, _ = build_synthetic(tmp_path / "lib")
    store = IndexStore(lib)
    store.get(SYNTH)
    yield lib, store, store.path(SYNTH)
    lib.close()


def _external(lib: Library, sql: str, rows: list[tuple]) -> None:
    """Run ``sql`` for ``rows`` from another program: a plain driver connection, none of the library's code."""
    if lib.dialect == "postgresql":
        import psycopg

        with psycopg.connect(str(lib.location), autocommit=True) as con, con.cursor() as cur:
            cur.executemany(sql.replace("?", "%s"), rows)
        return
    con = sqlite3.connect(lib.root / "library.db")
    with con:
        con.executemany(sql, rows)
    con.close()


def _assert_true_neighbours(lib: Library, idx: FaceIndex, k: int = 5) -> None:
    """Every face's k nearest neighbours in ``idx`` are those of brute force over the database's vectors."""
    ids, X = lib.embeddings(SYNTH)
    scores, found = idx.search(X, k)
    brute = X @ X.T
    for row, (s, f) in enumerate(zip(scores, found)):
        want = ids[np.argsort(-brute[row], kind="stable")[:k]]
        assert set(f.tolist()) == set(want.tolist()), (ids[row], f, want)
        np.testing.assert_allclose(s, np.sort(brute[row])[::-1][:k], rtol=1e-5, atol=1e-6)


def _assert_file_holds_db_vectors(lib: Library, path: Path) -> None:
    ids, X = lib.embeddings(SYNTH)
    held_ids, held_X = FaceIndex.load(path).stored()
    order = np.argsort(held_ids)
    np.testing.assert_array_equal(held_ids[order], ids)
    np.testing.assert_array_equal(held_X[order], X)  # exactly the same bytes, not close


def _faces(lib: Library, n: int) -> np.ndarray:
    """``n`` stored faces without embeddings; their ids."""
    from storage.db import NewFace

    out = []
    for i in range(n):
        _, fids = lib.add_image(f"/p/{i}.jpg", f"sha{i}", 1, 10, 10, [NewFace(
            (0, 0, 5, 5), np.zeros((5, 2)), 0.99, np.zeros((8, 8, 3), np.uint8))])
        out += fids
    return np.array(out, np.int64)


# ------------------------------------------------------------------ fingerprints
def test_database_fingerprint_is_order_independent_incremental_and_matches_the_index(tmp_path):
    lib = Library(tmp_path / "lib")
    X = _unit(40, 8, seed=1)
    ids = _faces(lib, 40)
    order = np.random.default_rng(0).permutation(40)
    for part in np.array_split(order, 5):  # appends in another order, in batches
        lib.put_embeddings("toy", ids[part], X[part])
    rows, fp = lib.embedding_fingerprint("toy")
    assert (rows, fp) == lib.embedding_fingerprint("toy", recompute=True)
    assert fp == FaceIndex.build(ids, X).fingerprint == fpr.combine(fpr.row_hashes(ids[::-1], X[::-1]))
    # Replacing vectors (one face listed twice: the last vector wins) keeps it exact.
    lib.put_embeddings("toy", [3, 7, 3], _unit(3, 8, seed=2))
    assert lib.embedding_fingerprint("toy") == lib.embedding_fingerprint("toy", recompute=True)
    assert lib.embedding_fingerprint("toy")[0] == 40
    assert lib.embedding_fingerprint("toy")[1] != fp
    back = np.array([lib.embedding(int(i), "toy") for i in ids])
    assert lib.embedding_fingerprint("toy")[1] == FaceIndex.build(ids, back).fingerprint
    assert lib.embedding_fingerprint("none") == (0, 0)
    lib.close()


def test_same_ids_differing_in_one_bit_of_one_vector_have_other_fingerprints():
    X = _unit(10, 8, seed=3)
    Y = X.copy()
    Y.view(np.uint32)[4, 2] ^= 1
    assert FaceIndex.build(np.arange(10), X).fingerprint != FaceIndex.build(np.arange(10), Y).fingerprint
    moved = FaceIndex.build(np.array([0, 1, 2, 3, 5, 4, 6, 7, 8, 9]), X)  # two faces' vectors swapped
    assert moved.fingerprint != FaceIndex.build(np.arange(10), X).fingerprint


def test_index_fingerprint_follows_add_replace_and_remove():
    X = _unit(6, 4, seed=4)
    idx = FaceIndex(4)
    idx.add(np.arange(6), X)
    idx.add(np.array([2, 2]), _unit(2, 4, seed=5))  # an id listed twice: the last vector wins
    idx.remove(np.array([5]))
    want = X[:5].copy()
    want[2] = _unit(2, 4, seed=5)[1]
    assert idx.ntotal == 5 and idx.fingerprint == FaceIndex.build(np.arange(5), want).fingerprint
    np.testing.assert_array_equal(idx.reconstruct(2), want[2])


def test_ivf_files_are_verified_and_reconstruct_any_face_id(tmp_path):
    X = _unit(1200, 8, seed=6)
    ids = np.arange(1200) * 3 + 11  # face ids, not 0..n-1
    idx = FaceIndex.build(ids, X, ivf_threshold=1000, nprobe=8)
    idx.remove(ids[:2])
    idx.save(tmp_path / "i.npz")
    back = FaceIndex.load(tmp_path / "i.npz")
    assert back.kind == "ivf" and back.fingerprint == FaceIndex.build(ids[2:], X[2:]).fingerprint
    np.testing.assert_array_equal(back.reconstruct(int(ids[5])), X[5])
    with pytest.raises(KeyError):
        back.reconstruct(int(ids[0]))


def test_a_file_whose_vectors_do_not_match_its_recorded_fingerprint_is_refused(tmp_path):
    import faiss

    X = _unit(20, 8, seed=7)
    good, other = FaceIndex.build(np.arange(20), X), FaceIndex.build(np.arange(20), _unit(20, 8, seed=8))
    p = tmp_path / "i.npz"
    np.savez(p, index=faiss.serialize_index(other._index), ids=np.arange(20), dim=np.int64(8),
             fingerprint=np.uint64(good.fingerprint))  # valid zip, valid FAISS, but not what it claims
    with pytest.raises(ValueError, match="recorded fingerprint"):
        FaceIndex.load(p)


# --------------------------------------------------------------- damaged files
def _truncate_half(p: Path, lib: Library) -> None:
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def _truncate_to_header(p: Path, lib: Library) -> None:
    p.write_bytes(p.read_bytes()[:30])


def _empty(p: Path, lib: Library) -> None:
    p.write_bytes(b"")


def _flip_in_vectors(p: Path, lib: Library) -> None:
    data = bytearray(p.read_bytes())
    _, X = lib.embeddings(SYNTH)
    at = data.find(X[7].tobytes())
    assert at > 0
    data[at + 5] ^= 0x10
    p.write_bytes(bytes(data))


def _flip_crc_in_zip_directory(p: Path, lib: Library) -> None:
    data = bytearray(p.read_bytes())
    name = data.rfind(b"index.npy")  # the central directory entry; its CRC-32 is 30 bytes before the name
    data[name - 30] ^= 0x01
    p.write_bytes(bytes(data))


def _flip_magic(p: Path, lib: Library) -> None:
    data = bytearray(p.read_bytes())
    data[1] ^= 0x40
    p.write_bytes(bytes(data))


def _bare_array(p: Path, lib: Library) -> None:
    with open(p, "wb") as f:
        np.save(f, np.zeros(3))


def _other_members(p: Path, lib: Library) -> None:
    with open(p, "wb") as f:
        np.savez(f, something=np.zeros(3))


def _directory(p: Path, lib: Library) -> None:
    p.unlink()
    p.mkdir()


DAMAGE = [_truncate_half, _truncate_to_header, _empty, _flip_in_vectors, _flip_crc_in_zip_directory, _flip_magic,
          _bare_array, _other_members]


@pytest.mark.parametrize("damage", DAMAGE, ids=[d.__name__.strip("_") for d in DAMAGE])
def test_a_damaged_index_file_is_logged_and_rebuilt_with_true_neighbours(synth, damage, caplog):
    lib, store, p = synth
    damage(p, lib)
    assert not store.in_sync(SYNTH)
    caplog.set_level(logging.WARNING, logger="storage.index")
    idx = IndexStore(lib).get(SYNTH)
    assert any("damaged or unreadable" in r.getMessage() and "rebuilding" in r.getMessage() for r in caplog.records)
    _assert_true_neighbours(lib, idx)
    assert store.in_sync(SYNTH) and store.in_sync(SYNTH, deep=True)
    _assert_file_holds_db_vectors(lib, p)


def test_random_bit_flips_never_crash_and_never_serve_wrong_vectors(synth):
    lib, store, p = synth
    good = p.read_bytes()
    rng = np.random.default_rng(11)
    for at in rng.choice(len(good), size=24, replace=False):
        data = bytearray(good)
        data[int(at)] ^= 1 << int(rng.integers(8))
        p.write_bytes(bytes(data))
        fresh = IndexStore(lib)
        idx = fresh.get(SYNTH)  # either the flip was harmless (zip metadata) or the file is rebuilt
        _assert_true_neighbours(lib, idx, k=3)
        assert fresh.in_sync(SYNTH), at
        _assert_file_holds_db_vectors(lib, p)


def test_a_directory_in_place_of_the_file_is_served_from_memory(synth, caplog):
    lib, store, p = synth
    _directory(p, lib)
    caplog.set_level(logging.WARNING, logger="storage.index")
    idx = IndexStore(lib).get(SYNTH)
    _assert_true_neighbours(lib, idx)
    assert "could not save" in caplog.text and not store.in_sync(SYNTH)


def test_a_legacy_file_without_fingerprint_is_kept_when_its_vectors_agree(synth):
    import faiss

    lib, store, p = synth
    idx = FaceIndex.load(p)
    with open(p, "wb") as f:  # the format before fingerprints
        np.savez(f, index=faiss.serialize_index(idx._index), ids=idx._ids, dim=np.int64(idx.dim))
    assert store.in_sync(SYNTH)
    mtime = p.stat().st_mtime_ns
    IndexStore(lib).get(SYNTH)
    assert p.stat().st_mtime_ns == mtime  # not rebuilt


# ---------------------------------------------------- same ids, other vectors
def _other_vectors(lib: Library) -> tuple[np.ndarray, np.ndarray]:
    """The database's ids with their vectors shuffled among faces (neighbours change)."""
    ids, X = lib.embeddings(SYNTH)
    return ids, X[np.random.default_rng(5).permutation(len(ids))]


def test_an_index_file_with_the_same_ids_and_other_vectors_is_rebuilt(synth):
    lib, store, p = synth
    ids, Y = _other_vectors(lib)
    FaceIndex.build(ids, Y).save(p)
    assert FaceIndex.load(p).ids.tolist() == lib.embedding_ids(SYNTH).tolist()  # the old check passed
    assert not store.in_sync(SYNTH)
    _assert_true_neighbours(lib, IndexStore(lib).get(SYNTH))
    assert store.in_sync(SYNTH)


@pytest.mark.parametrize("writer", ["api", "external_sql"])
def test_vectors_replaced_in_the_database_under_the_same_ids_make_the_index_stale(synth, writer):
    lib, store, p = synth
    idx_before = store.get(SYNTH)
    ids, Y = _other_vectors(lib)
    if writer == "api":
        lib.put_embeddings(SYNTH, ids, Y)
    else:  # another program, without the library's code: triggers mark the stored fingerprint stale
        _external(lib, "UPDATE embeddings SET vector = ? WHERE face_id = ? AND backbone = ?",
                  [(y.tobytes(), int(i), SYNTH) for i, y in zip(ids, Y)])
    assert not store.in_sync(SYNTH) and not store.in_sync(SYNTH, deep=True)
    # The same store's index in memory is stale too: get() notices and rebuilds.
    idx = store.get(SYNTH)
    assert idx is not idx_before
    _assert_true_neighbours(lib, idx)
    _assert_true_neighbours(lib, IndexStore(lib).get(SYNTH))
    assert store.in_sync(SYNTH) and store.in_sync(SYNTH, deep=True)
    assert lib.embedding_fingerprint(SYNTH) == lib.embedding_fingerprint(SYNTH, recompute=True)


def test_external_deletes_and_inserts_are_noticed(synth):
    lib, store, p = synth
    _external(lib, "DELETE FROM embeddings WHERE face_id = 3 AND backbone = ?", [(SYNTH,)])
    assert lib.embedding_fingerprint(SYNTH)[0] == 31 and not store.in_sync(SYNTH)
    assert 3 not in store.get(SYNTH).ids
    lib.put_embeddings(SYNTH, [3], _unit(1, 32, seed=9))
    assert lib.embedding_fingerprint(SYNTH) == lib.embedding_fingerprint(SYNTH, recompute=True)
    assert store.get(SYNTH).ntotal == 32 and store.in_sync(SYNTH)


def test_cli_stats_and_search_with_replaced_vectors(synth, capsys, monkeypatch):
    from aspl.cli import main

    lib, store, p = synth
    ids, Y = _other_vectors(lib)
    lib.put_embeddings(SYNTH, ids, Y)
    db = str(lib.location) if lib.dialect == "postgresql" else str(lib.root)
    monkeypatch.setenv("ASPL_DATA", str(lib.root))  # a PostgreSQL library's index files
    assert main(["stats", "--db", db]) == 0
    assert json.loads(capsys.readouterr().out)["index_in_sync"] == {SYNTH: False}
    face = int(ids[0])
    assert main(["search", str(face), "-k", "4", "--db", db]) == 0
    got = [json.loads(line)["face_id"] for line in capsys.readouterr().out.splitlines()]
    sims = Y @ Y[0]
    want = [int(i) for i in ids[np.argsort(-sims, kind="stable")] if i != face][:4]
    assert got == want
    assert main(["stats", "--db", db]) == 0
    assert json.loads(capsys.readouterr().out)["index_in_sync"] == {SYNTH: True}


# ------------------------------------------------------- callers never crash
def test_suggestions_with_a_truncated_index_file(tmp_path):
    svc, truth = synthetic_service(tmp_path / "lib", human_per_person=1)
    IndexStore(svc.library).get(SYNTH)
    p = IndexStore(svc.library).path(SYNTH)
    _truncate_half(p, svc.library)
    f = svc.next_face("alice")
    s = svc.suggestions(f)
    assert s and s[0].source == "neighbours" and s[0].name == truth[f]
    assert IndexStore(svc.library).in_sync(SYNTH)


def test_import_into_a_library_with_an_emptied_index_file(importer, small_lfw):
    lib, store = importer.library, importer.indexes
    importer.run(small_lfw / "Hans_Blix", progress=False)
    p = store.path("dlib-resnet")
    p.write_bytes(b"")
    importer.indexes = IndexStore(lib)  # a new process
    s = importer.run(small_lfw / "Laura_Bush", progress=False)
    assert s.imported == 4
    assert importer.indexes.in_sync("dlib-resnet", deep=True)
    ids, X = lib.embeddings("dlib-resnet")
    held, _ = FaceIndex.load(p).stored()
    assert sorted(held.tolist()) == ids.tolist() and len(ids) == lib.stats()["faces"]
