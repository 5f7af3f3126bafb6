"""Reading a backbone's vectors in one go: order by face id, subsets, batches, bad rows."""
import numpy as np
import pytest

import storage.embeddings as emb_mod
from storage.db import NewFace


def _library_with_vectors(lib, n=40, dim=6, seed=0):
    rng = np.random.default_rng(seed)
    crop = np.full((16, 16, 3), 128, np.uint8)
    X = rng.standard_normal((n, dim)).astype(np.float32)
    _, fids = lib.add_image("/p/a.jpg", "a", 10, 20, 20,
                            [NewFace((1, 2, 10, 12), np.zeros((5, 2)), 0.99, crop, {}) for _ in range(n)])
    fids = np.array(fids, dtype=np.int64)
    order = rng.permutation(n)  # written out of id order (rowids no longer follow face ids)
    lib.put_embeddings("toy", fids[order].tolist(), X[order])
    lib.put_embeddings("other", fids[:3].tolist(), X[:3, :2])
    return fids, X


def test_all_vectors_come_back_sorted_by_face_id_and_writable(fresh_db, monkeypatch):
    fids, X = _library_with_vectors(fresh_db)
    monkeypatch.setattr(emb_mod, "_READ_BATCH", 7)  # several fetch batches
    ids, got = fresh_db.embeddings("toy")
    assert ids.tolist() == sorted(fids.tolist())
    np.testing.assert_array_equal(got, X[np.argsort(fids)])
    assert got.dtype == np.float32 and got.flags.writeable and got.flags.c_contiguous
    ids2, got2 = fresh_db.embeddings("other")
    assert ids2.tolist() == fids[:3].tolist() and got2.shape == (3, 2)
    none_ids, none_X = fresh_db.embeddings("missing")
    assert none_ids.size == 0 and none_X.shape == (0, 0)


@pytest.mark.parametrize("few", [1000, 2])  # IN queries, and one full read filtered
def test_a_subset_reads_only_those_faces(fresh_db, monkeypatch, few):
    fids, X = _library_with_vectors(fresh_db)
    monkeypatch.setattr(emb_mod, "_FEW_IDS", few)
    monkeypatch.setattr(emb_mod, "_CHUNK", 3)
    want = [int(fids[5]), int(fids[1]), int(fids[5]), 10**9, int(fids[30]), int(fids[12])]
    ids, got = fresh_db.embeddings("toy", want)
    assert ids.tolist() == sorted({int(fids[i]) for i in (1, 5, 12, 30)})
    np.testing.assert_array_equal(got, X[[int(np.flatnonzero(fids == f)[0]) for f in ids]])
    empty_ids, _ = fresh_db.embeddings("toy", [])
    assert empty_ids.size == 0


def test_vectors_of_different_sizes_are_refused(fresh_db):
    fids, _ = _library_with_vectors(fresh_db)
    fresh_db.put_embeddings("toy", [int(fids[0])], np.ones((1, 4), np.float32))
    with pytest.raises(ValueError, match="differ in size"):
        fresh_db.embeddings("toy")
