"""Batch mode: a person's auto-labels or a cluster of unclear faces, accepted in one action."""
from apphelpers import synthetic_service


def test_clusters_of_unnamed_faces_before_any_round():
    svc, truth = synthetic_service(None, n_people=3, per_person=6)
    groups = svc.batch_groups("alice")
    assert groups and all(g.kind == "cluster" for g in groups)
    g = groups[0]
    assert len(g.face_ids) >= 2 and len({truth[f] for f in g.face_ids}) == 1
    n = svc.accept_batch(g.face_ids, "New Person", "alice")
    assert n == len(g.face_ids)
    pid = svc.library.person_id("New Person")
    assert {r["face_id"] for r in svc.library.person_faces(pid)} == set(g.face_ids)
    assert all(r["annotator"] == "alice" for r in svc.library.label_rows(("human",)))


def test_person_group_deselected_faces_are_rejected_and_undo_restores():
    svc, truth = synthetic_service(None, human_per_person=1)
    svc.run_round("admin")
    g = next(x for x in svc.batch_groups("alice") if x.kind == "person")
    keep, out = g.face_ids[:-1], g.face_ids[-1:]
    assert svc.accept_batch(keep, g.person_id, "alice", deselected=out) == len(keep)
    assert (out[0], g.person_id) in svc.library.rejections()
    assert not svc.library.label_rows(("auto",), face_id=out[0])
    assert set(keep) <= svc.library.labelled_face_ids()
    act = svc.undo("alice")
    assert act["kind"] == "batch"
    assert not set(keep) & svc.library.labelled_face_ids()
    assert (out[0], g.person_id) not in svc.library.rejections()
    assert svc.library.label_rows(("auto",), face_id=out[0])  # auto-label of this round restored


def test_faces_leased_by_someone_else_are_left_out():
    svc, _ = synthetic_service(None, human_per_person=1)
    svc.run_round("admin")
    busy = svc.next_face("bob")
    for g in svc.batch_groups("alice"):
        assert busy not in g.face_ids


def test_undo_of_a_batch_that_created_a_person_removes_it():
    svc, _ = synthetic_service(None, n_people=3, per_person=6)
    g = svc.batch_groups("alice")[0]
    svc.accept_batch(g.face_ids, "Brand New", "alice")
    new = svc.library.person_id("Brand New")
    svc.undo("alice")
    assert "Brand New" not in svc.person_names() and svc.library.person_deleted(new)
    assert not set(g.face_ids) & svc.library.labelled_face_ids()
    svc.accept_batch(g.face_ids[:1], "brand new", "alice")  # the name can be used again
    assert svc.person_names() == ["brand new"]


def test_cluster_titles_are_unique_and_name_the_centre_face():
    svc, _ = synthetic_service(None, n_people=3, per_person=6)
    groups = svc.batch_groups("alice")
    assert len(groups) >= 2
    assert len({g.title for g in groups}) == len(groups)
    for g in groups:
        assert g.title == f"Unnamed group #{g.face_ids[0]}: {len(g.face_ids)} similar faces"


def test_a_changed_cluster_similarity_applies_at_once_not_after_the_next_round():
    svc, truth = synthetic_service(None, n_people=3, per_person=6)
    clusters = lambda: [g for g in svc.batch_groups("alice") if g.kind == "cluster"]  # noqa: E731
    loose = clusters()
    svc.set_loop_settings({"cluster_similarity": 0.999})  # nothing is that similar
    assert loose and clusters() == []


def test_groups_use_centred_similarity_so_a_shared_direction_does_not_merge_people():
    import numpy as np

    from aspl.service.batch import similarity_groups

    rng = np.random.default_rng(0)
    common = 5 * rng.normal(size=16)  # every vector shares a large direction, as face embeddings do
    centres = rng.normal(size=(4, 16))
    X = np.concatenate([common + c + 0.2 * rng.normal(size=(10, 16)) for c in centres]).astype(np.float32)
    y = np.repeat(np.arange(4), 10)
    ids = np.arange(40)
    raw = (X / np.linalg.norm(X, axis=1, keepdims=True)) @ (X / np.linalg.norm(X, axis=1, keepdims=True)).T
    assert raw[y[:, None] != y[None, :]].min() > 0.8  # raw cosine cannot tell these people apart at 0.8
    groups = similarity_groups(ids, X, 0.6, 24, 12)
    assert len(groups) == 4 and all(len(set(y[g.face_ids])) == 1 for g in groups)


def test_the_leftover_grid_holds_unanswered_faces_no_group_holds_smallest_first():
    svc, truth = synthetic_service(None, n_people=3, per_person=6)
    svc.set_loop_settings({"cluster_similarity": 0.999})
    lib = svc.library
    lib.db.execute("UPDATE faces SET x2 = x1 + 20 WHERE id = 7")  # one smaller face
    (g,) = svc.batch_groups("alice")
    assert g.kind == "open" and g.face_ids[0] == 7 and set(g.face_ids) == set(truth)
    assert svc.mark_batch(g.face_ids[:4], "stranger", "alice") == 4
    (h,) = svc.batch_groups("alice")
    assert not set(g.face_ids[:4]) & set(h.face_ids) and len(h.face_ids) == len(truth) - 4
