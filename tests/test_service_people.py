"""People: rename, merge, move a face, remove a label; corrections stick; all logged and undoable."""
import pytest

from apphelpers import synthetic_service
from storage.db import NameConflictError


@pytest.fixture
def svc_truth():
    return synthetic_service(None, human_per_person=2)


def pid(svc, name):
    return svc.library.person_id(name)


def test_rename_and_undo(svc_truth):
    svc, _ = svc_truth
    p = pid(svc, "Ada Lovelace")
    svc.rename_person(p, "Augusta Ada King", "alice")
    assert svc.library.person_name(p) == "Augusta Ada King"
    with pytest.raises(NameConflictError, match="already called 'Alan Turing'"):
        svc.rename_person(p, "Alan Turing", "alice")
    svc.undo("alice", "people")
    assert svc.library.person_name(p) == "Ada Lovelace"
    kinds = [e["kind"] for e in svc.events(limit=10)]
    assert "person_renamed" in kinds and "undo" in kinds


def test_merge_moves_labels_and_undo_splits_again(svc_truth):
    svc, _ = svc_truth
    a, b = pid(svc, "Ada Lovelace"), pid(svc, "Alan Turing")
    svc.run_round("admin")
    before_a = {r["face_id"] for r in svc.person_faces(a)}
    before_b = {r["face_id"] for r in svc.person_faces(b)}
    svc.merge_people(a, b, "alice")
    assert a not in {p["id"] for p in svc.people()}
    assert {r["face_id"] for r in svc.person_faces(b)} == before_a | before_b
    assert svc.library.person_id("Ada Lovelace") == b  # the old name resolves to the merged person
    svc.run_round("admin")  # the engine sees one person now
    assert {r["person_id"] for r in svc.library.label_rows(("auto",))} <= {p["id"] for p in svc.people()}
    svc.undo("alice", "people")
    assert {r["face_id"] for r in svc.person_faces(a) if r["source"] == "human"} == \
        {r["face_id"] for r in svc.library.label_rows(("human",), person_id=a)}
    assert a in {p["id"] for p in svc.people()}
    assert len(svc.library.label_rows(("human",), person_id=a)) == 2


def test_move_face_rejects_old_person_for_good(svc_truth):
    svc, truth = svc_truth
    svc.run_round("admin")
    a = svc.library.label_rows(("auto",))[0]
    wrong_pid = a["person_id"]
    svc.move_face(a["face_id"], "Someone Else", "alice")
    assert svc.library.face_persons([a["face_id"]]) == {a["face_id"]: pid(svc, "Someone Else")}
    assert (a["face_id"], wrong_pid) in svc.library.rejections()
    svc.remove_label(a["face_id"], "alice")  # not Someone Else either
    svc.run_round("admin")
    svc.run_round("admin")
    autos = {(r["face_id"], r["person_id"]) for r in svc.library.label_rows(("auto",))}
    assert (a["face_id"], wrong_pid) not in autos
    assert wrong_pid not in {s.person_id for s in svc.suggestions(a["face_id"])}


def test_remove_label_and_undo(svc_truth):
    svc, _ = svc_truth
    h = svc.library.label_rows(("human",))[0]
    assert svc.remove_label(h["face_id"], "alice") == 1
    assert h["face_id"] not in svc.library.labelled_face_ids()
    assert (h["face_id"], h["person_id"]) in svc.library.rejections()
    act = svc.undo("alice", "people")
    assert act["kind"] == "remove_label"
    assert svc.library.label(h["id"])["revoked"] == 0
    assert (h["face_id"], h["person_id"]) not in svc.library.rejections()


def test_move_undo_restores_the_human_label(svc_truth):
    svc, _ = svc_truth
    h = svc.library.label_rows(("human",))[0]
    svc.move_face(h["face_id"], pid(svc, "Grace Hopper"), "alice")
    svc.undo("alice", "people")
    assert svc.library.face_persons([h["face_id"]]) == {h["face_id"]: h["person_id"]}
    assert (h["face_id"], h["person_id"]) not in svc.library.rejections()


def test_people_undo_does_not_touch_annotate_actions(svc_truth):
    svc, truth = svc_truth
    f = svc.next_face("alice")
    svc.confirm(f, pid(svc, truth[f]), "alice")
    svc.rename_person(pid(svc, "Grace Hopper"), "Amazing Grace", "alice")
    assert svc.undo("alice", "people")["kind"] == "rename"
    assert f in svc.library.labelled_face_ids()
