"""People and labels: sources, conflicts, revocation, auto-label replacement."""
import numpy as np
import pytest

from storage import LabelConflictError, NotFoundError
from storage.db import NewFace


def _face(seed=None, vec=None):
    crop = np.full((16, 16, 3), 128, np.uint8)
    emb = {} if vec is None else {"toy": np.asarray(vec, np.float32)}
    return NewFace((1, 2, 10, 12), np.zeros((5, 2)), 0.99, crop, emb, seed)


def _image(lib, sha, faces):
    return lib.add_image(f"/p/{sha}.jpg", sha, 10, 20, 20, faces)


def test_add_image_stores_faces_embeddings_and_seed(fresh_db):
    img, fids = _image(fresh_db, "a", [_face("Ann", [1, 0]), _face(None, [0, 1])])
    assert len(fids) == 2
    ids, X = fresh_db.embeddings("toy")
    assert ids.tolist() == fids and X.shape == (2, 2)
    labs = fresh_db.labels()
    assert [(l["face_id"], l["source"]) for l in labs] == [(fids[0], "seed")]
    assert fresh_db.person_name(labs[0]["person_id"]) == "Ann"
    assert fresh_db.face_crop(fids[0]).shape == (16, 16, 3)


def test_same_hash_is_not_added_twice(fresh_db):
    first = _image(fresh_db, "a", [_face()])
    again = _image(fresh_db, "a", [_face()])
    assert again == (first[0], [])
    assert fresh_db.stats()["faces"] == 1


def test_failed_image_write_leaves_nothing(fresh_db, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("crash while writing")

    monkeypatch.setattr(fresh_db, "_put_embedding", boom)
    with pytest.raises(RuntimeError):
        _image(fresh_db, "a", [_face("Ann", [1, 0])])
    st = fresh_db.stats()
    assert (st["images"], st["faces"], st["people"]) == (0, 0, 0)


def test_two_human_labels_on_one_face_conflict(fresh_db):
    _, (f,) = _image(fresh_db, "a", [_face()])
    ann, bob = fresh_db.person_id("Ann", create=True), fresh_db.person_id("Bob", create=True)
    fresh_db.add_label(f, ann, "human", annotator="alice")
    with pytest.raises(LabelConflictError, match=str(f)):
        fresh_db.add_label(f, bob, "human", annotator="bert")
    live = fresh_db.labels(["human"])
    assert [(l["person_id"], l["annotator"]) for l in live] == [(ann, "alice")]


def test_revoked_label_frees_the_face(fresh_db):
    _, (f,) = _image(fresh_db, "a", [_face()])
    ann = fresh_db.person_id("Ann", create=True)
    lid = fresh_db.add_label(f, ann, "human", annotator="alice")
    fresh_db.revoke_label(lid, actor="alice")
    assert fresh_db.labels(["human"]) == []
    assert len(fresh_db.labels(["human"], live=False)) == 1
    fresh_db.add_label(f, ann, "human")
    with pytest.raises(NotFoundError):
        fresh_db.revoke_label(lid)


def test_bad_source_and_missing_face(fresh_db):
    ann = fresh_db.person_id("Ann", create=True)
    with pytest.raises(ValueError, match="human, seed, auto"):
        fresh_db.add_label(1, ann, "guess")
    with pytest.raises(NotFoundError, match="face 99"):
        fresh_db.add_label(99, ann, "human")


def test_replace_auto_labels_recomputes(fresh_db):
    _, fids = _image(fresh_db, "a", [_face(), _face(), _face()])
    ann = fresh_db.person_id("Ann", create=True)
    fresh_db.replace_auto_labels(1, [(fids[0], ann, 0.9), (fids[1], ann, 0.5)])
    fresh_db.replace_auto_labels(2, [(fids[2], ann, 0.7)])
    live = fresh_db.labels(["auto"])
    assert [(l["face_id"], l["round"]) for l in live] == [(fids[2], 2)]
    assert fresh_db.stats()["labels_by_source"]["auto"] == 1


def test_person_names_are_normalised_and_unique(fresh_db):
    a = fresh_db.person_id("  Ann   Lee ", create=True)
    assert fresh_db.person_id("ann lee") == a
    with pytest.raises(NotFoundError, match="Zed"):
        fresh_db.person_id("Zed")
    with pytest.raises(ValueError, match="empty"):
        fresh_db.person_id("  ", create=True)


def test_auto_label_counts_and_a_persons_most_confident_auto_labels_follow_merges(fresh_db):
    _, fids = _image(fresh_db, "a", [_face() for _ in range(5)])
    ann, bob = fresh_db.person_id("Ann", create=True), fresh_db.person_id("Bob", create=True)
    fresh_db.replace_auto_labels(1, [(fids[0], ann, 0.5), (fids[1], ann, 0.9), (fids[2], bob, 0.7),
                                     (fids[3], bob, 0.0), (fids[4], ann, 0.9)])
    assert fresh_db.auto_label_counts() == {ann: 3, bob: 2}
    top = fresh_db.top_auto_labels(ann, 2)
    assert [r["face_id"] for r in top] == [fids[1], fids[4]]  # most confident first, then by face
    assert [r["face_id"] for r in fresh_db.top_auto_labels(ann, 2, exclude=[fids[1]])] == [fids[4], fids[0]]
    fresh_db.set_merged_into(bob, ann)  # Bob was Ann all along
    assert fresh_db.auto_label_counts() == {ann: 5}
    top = fresh_db.top_auto_labels(ann, 5)
    assert [r["face_id"] for r in top] == [fids[1], fids[4], fids[2], fids[0], fids[3]]
    assert {r["person_id"] for r in top} == {ann}


def test_first_open_keeps_the_order_and_skips_answered_faces(fresh_db):
    _, fids = _image(fresh_db, "a", [_face() for _ in range(4)])
    ann = fresh_db.person_id("Ann", create=True)
    fresh_db.add_label(fids[1], ann, "human", 1.0, annotator="t")
    fresh_db.replace_auto_labels(1, [(fids[3], ann, 0.9)])
    order = [fids[3], fids[2], fids[1], fids[0]]
    assert fresh_db.first_open(order, 5) == [fids[2], fids[0]]
    assert fresh_db.first_open(order, 1) == [fids[2]]
    assert fresh_db.first_open([], 3) == []


def test_not_strangers_are_recorded_once_and_forgotten_on_undo(fresh_db):
    _, fids = _image(fresh_db, "a", [_face() for _ in range(3)])
    assert fresh_db.not_strangers() == set()
    assert fresh_db.add_not_strangers([fids[0], fids[1], fids[0]], "alice") == [fids[0], fids[1]]
    assert fresh_db.add_not_strangers([fids[1], fids[2]], "bob") == [fids[2]]  # fids[1] already recorded
    assert fresh_db.not_strangers() == set(fids)
    assert fresh_db.remove_not_strangers([fids[2], fids[2]]) == 1
    assert fresh_db.not_strangers() == {fids[0], fids[1]}
