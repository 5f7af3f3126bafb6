"""FAISS index: exact and IVF search, atomic save/load, agreement with the database."""
import numpy as np
import pytest

from storage import FaceIndex, IndexStore, Library


def _unit(n, d, seed=0):
    X = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def test_exact_search_returns_face_ids_by_inner_product():
    X = _unit(200, 16)
    ids = np.arange(200) * 10 + 7
    idx = FaceIndex.build(ids, X)
    scores, found = idx.search(X[[3, 50]], 5)
    assert idx.kind == "flat"
    assert found[:, 0].tolist() == [37, 507]
    brute = np.sort(X @ X[3])[::-1][:5]
    np.testing.assert_allclose(scores[0], brute, rtol=1e-5)


def test_ivf_above_threshold_finds_itself():
    X = _unit(3000, 16, seed=1)
    idx = FaceIndex.build(np.arange(3000), X, ivf_threshold=1000, nprobe=8)
    assert idx.kind == "ivf"
    _, found = idx.search(X[:100], 1)
    assert (found[:, 0] == np.arange(100)).mean() > 0.95


def test_add_replaces_existing_ids_and_remove():
    idx = FaceIndex(4)
    idx.add(np.array([1, 2]), _unit(2, 4))
    idx.add(np.array([2]), _unit(1, 4, seed=5))
    assert idx.ntotal == 2 and idx.ids.tolist() == [1, 2]
    idx.remove(np.array([1]))
    assert idx.ids.tolist() == [2]
    with pytest.raises(ValueError, match="dimension 4"):
        idx.add(np.array([3]), _unit(1, 5))


def test_empty_index_search_and_bad_queries():
    idx = FaceIndex(8)
    _, found = idx.search(_unit(2, 8), 3)
    assert (found == -1).all()
    with pytest.raises(ValueError, match="query dimension"):
        idx.search(_unit(1, 4), 3)
    with pytest.raises(ValueError, match="k must be positive"):
        idx.search(_unit(1, 8), 0)


def test_save_load_roundtrip_atomic(tmp_path):
    X = _unit(50, 8)
    idx = FaceIndex.build(np.arange(50) + 100, X)
    p = tmp_path / "i.npz"
    idx.save(p)
    assert [f.name for f in tmp_path.iterdir()] == ["i.npz"]  # no temporary left behind
    back = FaceIndex.load(p)
    assert back.ids.tolist() == list(range(100, 150))
    np.testing.assert_array_equal(back.search(X[:3], 2)[1], idx.search(X[:3], 2)[1])


def _library_with(tmp_path, n):
    from storage.db import NewFace

    lib = Library(tmp_path / "lib")
    X = _unit(n, 8)
    for i in range(n):
        lib.add_image(f"/p/{i}.jpg", f"h{i}", 1, 10, 10,
                      [NewFace((0, 0, 5, 5), np.zeros((5, 2)), 0.99, np.zeros((8, 8, 3), np.uint8), {"toy": X[i]})])
    return lib, X


def test_store_rebuilds_when_index_disagrees_with_database(tmp_path):
    lib, X = _library_with(tmp_path, 20)
    store = IndexStore(lib)
    assert store.get("toy").ntotal == 20 and store.in_sync("toy")
    # A crash after the database commit but before the index save: a stale file.
    FaceIndex.build(np.arange(1, 11), X[:10]).save(store.path("toy"))
    assert not store.in_sync("toy")
    fresh = IndexStore(lib)
    assert fresh.get("toy").ids.tolist() == lib.embedding_ids("toy").tolist()
    assert fresh.in_sync("toy")
    lib.close()


def test_store_rebuilds_from_corrupt_file(tmp_path):
    lib, _ = _library_with(tmp_path, 5)
    store = IndexStore(lib)
    store.path("toy").parent.mkdir(parents=True, exist_ok=True)
    store.path("toy").write_bytes(b"garbage")
    assert IndexStore(lib).get("toy").ntotal == 5
    lib.close()


def test_unsafe_backbone_name_rejected(tmp_path):
    lib = Library(tmp_path / "lib")
    with pytest.raises(ValueError, match="safe file name"):
        IndexStore(lib).path("../evil")
    lib.close()


@pytest.mark.parametrize("ivf", [False, True])
def test_matrix_gives_the_database_vectors_sorted_by_id(ivf):
    X = _unit(1200, 8, seed=3)
    ids = np.random.default_rng(0).permutation(1200) * 3 + 1  # added out of id order
    idx = FaceIndex.build(ids, X, ivf_threshold=1000 if ivf else 10**9, nprobe=4)
    assert idx.kind == ("ivf" if ivf else "flat")
    got_ids, got = idx.matrix()
    order = np.argsort(ids)
    np.testing.assert_array_equal(got_ids, ids[order])
    np.testing.assert_array_equal(got, X[order])


def test_store_matrix_reads_the_open_index_only_while_it_agrees(tmp_path, monkeypatch):
    lib, X = _library_with(tmp_path, 20)
    store = IndexStore(lib)
    assert store.matrix("toy")[1].shape == (20, 8)  # nothing open yet: the database
    store.get("toy")
    db_ids, db_X = lib.embeddings("toy")
    real = lib.embeddings
    monkeypatch.setattr(lib, "embeddings", lambda *a, **k: pytest.fail("read the database"))
    ids, M = store.matrix("toy")
    np.testing.assert_array_equal(ids, db_ids)
    np.testing.assert_array_equal(M, db_X)
    # The database changes behind the open index: the matrix comes from the database, with the new vector.
    monkeypatch.setattr(lib, "embeddings", real)
    new = _unit(1, 8, seed=9)[0]
    lib.put_embeddings("toy", [int(db_ids[0])], new[None])
    ids, M = store.matrix("toy")
    np.testing.assert_array_equal(M[0], new)
    lib.close()
