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


# ------------------------------------------------------------ factory structures (IVF-PQ and others)
def _clustered_unit(n, d, centres=50, seed=0):
    rng = np.random.default_rng(seed)
    C = rng.normal(size=(centres, d))
    X = C[rng.integers(centres, size=n)] + 0.5 * rng.normal(size=(n, d))
    X = X.astype(np.float32)
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def test_check_factory_names_the_bad_value_and_the_choices():
    from storage.index import check_factory

    assert check_factory(" IVF64,PQ8 ", 32) == "IVF64,PQ8" and check_factory("auto", 32) == "auto"
    with pytest.raises(ValueError, match="'IVF64,PQ7'.*PQ m must divide 32"):
        check_factory("IVF64,PQ7", 32)
    with pytest.raises(ValueError, match="'nonsense'.*valid choices: 'auto'"):
        check_factory("nonsense", 32)
    with pytest.raises(ValueError, match="empty index factory"):
        check_factory("  ", 32)


def test_ivf_pq_index_finds_neighbours_and_survives_save_load_and_adds(tmp_path):
    X = _clustered_unit(3000, 32)
    ids = np.arange(3000) * 2 + 1
    idx = FaceIndex.build(ids, X, factory="IVF32,PQ8x4", nprobe=8)
    flat = FaceIndex.build(ids, X)
    assert idx.kind == "IVF32,PQ8x4" and not idx.exact_vectors and flat.exact_vectors
    assert idx.memory_bytes() < flat.memory_bytes() / 4  # 4-byte codes instead of 128-byte vectors
    _, got = idx.search(X[:200], 10)
    _, true = flat.search(X[:200], 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, true)])
    assert recall > 0.25, recall  # 0.40 measured (4-bit codes); a broken index: about 10 / 3000
    assert np.mean(got == ids[:200, None]) * 10 > 0.6  # a face finds itself (0.86 measured)
    assert idx.fingerprint == flat.fingerprint  # of the exact vectors added, as the database's
    with pytest.raises(ValueError, match="does not hold the raw vectors"):
        idx.matrix()
    p = tmp_path / "pq.npz"
    idx.save(p)
    back = FaceIndex.load(p)
    assert back.kind == "IVF32,PQ8x4" and back.fingerprint == idx.fingerprint and back.ntotal == 3000
    np.testing.assert_array_equal(back.search(X[:5], 3)[1], idx.search(X[:5], 3)[1])
    new = _clustered_unit(10, 32, seed=5)
    back.add(np.array([10_001 + i for i in range(10)]), new)  # appends: codes of the trained lists
    assert back.ntotal == 3010 and back.search(new[:1], 1)[1][0, 0] != -1
    back.remove(np.array([1, 3]))
    assert back.ntotal == 3008 and 1 not in back.ids


def test_a_compressed_file_whose_hashes_were_changed_is_refused(tmp_path):
    X = _clustered_unit(1000, 16)
    idx = FaceIndex.build(np.arange(1000), X, factory="IVF16,PQ4x4")
    p = tmp_path / "pq.npz"
    idx.save(p)
    with np.load(p) as z:
        parts = {k: z[k] for k in z.files}
    parts["hashes"] = parts["hashes"].copy()
    parts["hashes"][0] ^= np.uint64(1)
    np.savez(p, **parts)
    with pytest.raises(ValueError, match="recorded fingerprint"):
        FaceIndex.load(p)


def test_store_builds_the_library_setting_and_falls_back_when_too_few_faces(tmp_path, caplog):
    from storage.index import INDEX_SETTING

    lib, X = _library_with(tmp_path, 20)
    lib.set_setting(INDEX_SETTING, {"factory": "IVF256,PQ4"})
    store = IndexStore(lib)
    assert store.factory() == "IVF256,PQ4"
    idx = store.rebuild("toy")  # 20 faces cannot train 256 lists: the default structure, logged
    assert idx.kind == "flat" and "building the default one" in caplog.text
    lib.set_setting(INDEX_SETTING, {"factory": "IVF2,PQ4x4"})
    idx = IndexStore(lib).rebuild("toy")
    assert idx.kind == "IVF2,PQ4x4"
    again = IndexStore(lib)
    assert again.get("toy").kind == "IVF2,PQ4x4" and again.in_sync("toy")
    ids, M = again.matrix("toy")  # compressed codes: the rounds read the database
    np.testing.assert_array_equal(M, lib.embeddings("toy")[1])
    lib.close()
