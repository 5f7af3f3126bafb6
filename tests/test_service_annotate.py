"""Annotating: next face under a lease, confirm / new person / not a face / skip, undo."""
import time

import pytest

from apphelpers import synthetic_service
from aspl.service import FaceClosedError, NothingToUndoError, ServiceError
from storage import LabelConflictError


@pytest.fixture
def svc_truth():
    svc, truth = synthetic_service(None, human_per_person=1)
    svc.set_loop_settings({"auto_trust": 1.0})  # these faces are all sure: let the queue ask about them
    return svc, truth


def test_annotators_get_different_faces_and_a_reload_keeps_the_face(svc_truth):
    svc, _ = svc_truth
    a, b = svc.next_face("alice"), svc.next_face("bob")
    assert a is not None and b is not None and a != b
    assert svc.next_face("alice") == a  # reload: same face
    assert svc.next_face("carol") not in (a, b)


def test_expired_leases_are_reused(svc_truth):
    svc, _ = svc_truth
    svc.set_loop_settings({"lease_seconds": 0.05})
    a = svc.next_face("alice")
    time.sleep(0.1)
    assert svc.next_face("bob") == a


def test_queue_order_after_a_round(svc_truth):
    svc, _ = svc_truth
    svc.run_round("admin")
    assert svc.next_face("alice") == svc.library.queue()[0]


def test_confirm_records_annotator_and_moves_on(svc_truth):
    svc, truth = svc_truth
    f = svc.next_face("alice")
    pid = svc.library.person_id(truth[f])
    lid = svc.confirm(f, pid, "alice")
    lab = svc.library.label(lid)
    assert (lab["face_id"], lab["person_id"], lab["source"], lab["annotator"]) == (f, pid, "human", "alice")
    assert svc.next_face("alice") != f
    with pytest.raises(LabelConflictError):
        svc.confirm(f, pid, "bob")  # two annotators cannot both win


def test_new_person_creates_once_case_insensitively(svc_truth):
    svc, _ = svc_truth
    f1 = svc.next_face("alice")
    svc.new_person(f1, "Zed  Newman", "alice")
    f2 = svc.next_face("alice")
    svc.new_person(f2, "zed newman", "alice")
    zed = [p for p in svc.people() if p["name"].lower() == "zed newman"]
    assert len(zed) == 1 and zed[0]["human"] == 2


def test_not_a_face_is_never_shown_again_and_undo_restores(svc_truth):
    svc, truth = svc_truth
    f = svc.next_face("alice")
    svc.not_face(f, "alice")
    seen = set()
    for _ in range(40):
        g = svc.next_face("alice")
        if g is None:
            break
        seen.add(g)
        svc.skip(g, "alice")
    assert f not in seen
    with pytest.raises(FaceClosedError, match="not_face"):
        svc.confirm(f, svc.library.person_id(truth[f]), "bob")
    # undo the skips, then the not-a-face
    while svc.last_action("alice")["kind"] == "skip":
        svc.undo("alice")
    act = svc.undo("alice")
    assert act["kind"] == "not_face"
    assert svc.library.face(f)["status"] == "ok"
    assert svc.next_face("alice") == f  # the undone face comes back first


def test_skip_puts_the_face_last_for_that_annotator_only(svc_truth):
    svc, _ = svc_truth
    f = svc.next_face("alice")
    svc.skip(f, "alice")
    assert svc.next_face("alice") != f
    assert svc.next_face("bob") == f


def test_undo_revokes_the_last_label_and_logs_it(svc_truth):
    svc, truth = svc_truth
    f = svc.next_face("alice")
    lid = svc.confirm(f, svc.library.person_id(truth[f]), "alice")
    act = svc.undo("alice")
    assert act["kind"] == "label" and "labelled face" in svc.describe(act)
    assert svc.library.label(lid)["revoked"] == 1
    assert f not in svc.library.labelled_face_ids()
    kinds = [e["kind"] for e in svc.library.events(limit=5)]
    assert "undo" in kinds and "label_revoked" in kinds
    assert svc.next_face("alice") == f
    with pytest.raises(NothingToUndoError, match="alice has nothing to undo"):
        svc.undo("alice")


def test_undo_of_a_label_restores_the_auto_label_it_replaced(svc_truth):
    svc, truth = svc_truth
    svc.run_round("admin")
    a = svc.library.label_rows(("auto",))[0]
    svc.confirm(a["face_id"], a["person_id"], "alice")
    assert not svc.library.label_rows(("auto",), face_id=a["face_id"])
    svc.undo("alice")
    assert [r["id"] for r in svc.library.label_rows(("auto",), face_id=a["face_id"])] == [a["id"]]


def test_annotator_name_is_required(svc_truth):
    svc, _ = svc_truth
    with pytest.raises(ServiceError, match="annotator name is required"):
        svc.next_face("  ")


def test_all_labelled_gives_none():
    svc, truth = synthetic_service(None, n_people=2, per_person=2, human_per_person=2)
    assert svc.next_face("alice") is None and svc.remaining() == 0


def test_a_round_keeps_a_held_face_and_reranks_the_rest(svc_truth):
    svc, _ = svc_truth
    svc.set_loop_settings({"auto_trust": 1.0})  # every auto-label may be asked: the queue holds them all
    held = svc.next_face("alice")
    other = svc.next_face("bob")
    svc.run_round("admin")
    lib = svc.library
    # a face still queued stays with the annotator looking at it; the next face follows the new ranking
    assert svc.next_face("alice") == held and svc.next_face("bob") == other
    svc.skip(held, "alice")
    assert svc.next_face("alice") == next(f for f in lib.queue() if f not in (held, other))
    # query size 50 > faces: the new ranking holds every face without a human label, the held one too
    lib = svc.library
    assert set(lib.queue()) == set(lib.face_ids("ok")) - lib.labelled_face_ids(("human", "seed"))
    assert held in lib.queue()
    assert set(svc.library.leased_faces().values()) == {"alice", "bob"} and len(svc.library.leased_faces()) == 2


def test_not_a_face_on_another_annotators_label_is_a_conflict_not_a_revoke(svc_truth):
    svc, truth = svc_truth
    lib = svc.library
    face = svc.next_face("alice")
    pid = lib.person_id(truth[face])
    lid = svc.confirm(face, pid, "alice")
    assert svc.not_face(face, "bob") is False  # bob objects: alice's label stays, a reviewer decides
    assert lib.face(face)["status"] == "ok" and lib.label(lid)["revoked"] == 0
    (c,) = svc.open_conflicts()
    assert (c["face_id"], c["raised_by"], c["labelled_by"], c["name"]) == (face, "bob", "alice", truth[face])
    svc.undo("bob")  # bob changes his mind: the conflict is withdrawn
    assert svc.open_conflicts() == []
    svc.not_face(face, "bob")
    (c,) = svc.open_conflicts()
    svc.resolve_conflict(c["id"], "not_face", "carol")
    assert lib.face(face)["status"] == "not_face" and lib.label(lid)["revoked"] == 1
    assert svc.open_conflicts() == []
    svc.undo("carol", "review")  # the decision is undoable: the label comes back, the conflict reopens
    assert lib.face(face)["status"] == "ok" and lib.label(lid)["revoked"] == 0
    assert [x["id"] for x in svc.open_conflicts()] == [c["id"]]
    svc.resolve_conflict(c["id"], "keep_label", "carol")
    assert lib.label(lid)["revoked"] == 0 and svc.open_conflicts() == []
    with pytest.raises(ValueError, match="valid choices: keep_label, not_face"):
        svc.resolve_conflict(c["id"], "maybe", "carol")
    assert svc.not_face(face, "alice") is True  # her own label: she may correct herself
    assert lib.face(face)["status"] == "not_face"


def test_a_round_never_hands_a_face_being_looked_at_to_someone_else():
    svc, truth = synthetic_service(None, human_per_person=1)
    svc.set_loop_settings({"engine": {"query_size": 1, "min_labels": 1}, "auto_trust": 1.0})
    lib = svc.library
    held = svc.next_face("alice")
    svc.run_round("admin")
    assert held not in lib.queue()  # the new ranking does not ask for it ...
    seen_by_bob = {svc.next_face("bob")}
    for _ in range(5):
        f = svc.next_face("bob")
        svc.skip(f, "bob")
        seen_by_bob.add(f)
    assert held not in seen_by_bob  # ... yet alice keeps it until she answers
    svc.confirm(held, lib.person_id(truth[held]), "alice")


def test_undo_of_a_new_person_answer_removes_the_person_it_created(svc_truth):
    svc, _ = svc_truth
    f = svc.next_face("alice")
    svc.new_person(f, "Brand New", "alice")
    assert "Brand New" in svc.person_names()
    svc.undo("alice")
    assert "Brand New" not in svc.person_names()
    g = svc.next_face("alice")
    svc.new_person(g, "Ada Lovelace", "alice")  # an existing person stays after an undo
    svc.undo("alice")
    assert "Ada Lovelace" in svc.person_names()
