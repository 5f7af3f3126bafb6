"""People: rename, merge, move a face, remove a label; corrections stick; all logged and undoable."""
import pytest

from apphelpers import synthetic_service
from aspl.service import ServiceError
from storage import StorageError
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


# ---------------------------------------------------------------- the name box's names (B1)
NAMES = ["Angelina Jolie", "Alan Turing", "Alice Waters", "Bob"]


@pytest.mark.parametrize("typed, matches, resolved", [
    ("Angelina Jolie", ["Angelina Jolie"], "Angelina Jolie"),
    ("  angelina   JOLIE ", ["Angelina Jolie"], "Angelina Jolie"),  # case and spacing aside
    ("angel", ["Angelina Jolie"], "Angelina Jolie"),  # the only name it begins
    ("al", ["Alan Turing", "Alice Waters"], None),  # begins several: not resolved
    ("bo", ["Bob"], "Bob"),
    ("Bobby", [], None),  # longer than a name: a new person
    ("jolie", [], None),  # a later word is not a prefix of the name
    ("   ", [], None),
])
def test_name_matches_and_resolve_name(typed, matches, resolved):
    from aspl.service.people import name_matches, resolve_name

    assert name_matches(typed, NAMES) == matches
    assert resolve_name(typed, NAMES) == resolved


def test_service_resolves_names_against_live_people(svc_truth):
    svc, _ = svc_truth
    assert svc.resolve_name("ada") == "Ada Lovelace"
    assert svc.resolve_name("GRACE hopper") == "Grace Hopper"
    assert svc.resolve_name("A") is None and svc.name_matches("A") == ["Ada Lovelace", "Alan Turing"]
    svc.merge_people(pid(svc, "Ada Lovelace"), pid(svc, "Alan Turing"), "alice")
    assert svc.resolve_name("A") == "Alan Turing"  # a merged person is no longer a name to pick


# ---------------------------------------------------------------- B7: no orphan people, delete, undo
def test_undo_of_a_move_that_created_a_person_removes_it(svc_truth):
    svc, _ = svc_truth
    h = svc.library.label_rows(("human",))[0]
    svc.move_face(h["face_id"], "Someone New", "alice")
    new = pid(svc, "Someone New")
    svc.undo("alice", "people")
    assert "Someone New" not in svc.person_names()
    assert svc.library.person_deleted(new) and new not in {x["id"] for x in svc.people()}
    assert svc.library.face_persons([h["face_id"]]) == {h["face_id"]: h["person_id"]}
    svc.move_face(h["face_id"], "Someone New", "alice")  # the name is free again
    assert svc.library.face_persons([h["face_id"]]) == {h["face_id"]: pid(svc, "Someone New")}


def test_undo_of_a_move_keeps_a_created_person_that_others_named_faces_as(svc_truth):
    svc, truth = svc_truth
    a, b = [r["face_id"] for r in svc.library.label_rows(("human",))[:2]]
    svc.move_face(a, "Someone New", "alice")
    svc.move_face(b, "Someone New", "bob")
    svc.undo("alice", "people")
    assert svc.library.face_persons([b]) == {b: pid(svc, "Someone New")}
    svc.move_face(a, "Grace Hopper", "alice")
    svc.undo("alice", "people")  # an existing person is never removed by an undo
    assert "Grace Hopper" in svc.person_names()


def test_delete_an_empty_person_and_undo(svc_truth):
    svc, _ = svc_truth
    p = pid(svc, "Kurt Goedel")
    with pytest.raises(StorageError, match=r"person \d+ \('Kurt Goedel'\) still names 2 face\(s\)"):
        svc.delete_person(p, "alice")
    faces = [r["face_id"] for r in svc.person_faces(p)]
    for f in faces:
        svc.remove_label(f, "alice")
    assert svc.delete_person(p, "alice") == "Kurt Goedel"
    assert "Kurt Goedel" not in svc.person_names() and p not in {x["id"] for x in svc.people()}
    assert svc.describe(svc.last_action("alice", "people")) == "deleted person 'Kurt Goedel'"
    svc.run_round("admin")  # a round after a delete is fine
    assert p not in {r["person_id"] for r in svc.library.label_rows(("auto",))}
    svc.library.add_label(faces[0], svc.library.person_id("Kurt Goedel", create=True), "human")  # name is free
    assert svc.library.person_id("Kurt Goedel") != p
    with pytest.raises(StorageError, match="person .* is called 'Kurt Goedel' now"):
        svc.undo("alice", "people")
    svc.rename_person(svc.library.person_id("Kurt Goedel"), "Kurt G.", "bob")
    svc.undo("alice", "people")
    assert svc.library.person_name(p) == "Kurt Goedel" and p in {x["id"] for x in svc.people()}
    assert {(f, p) for f in faces} <= svc.library.rejections()  # its rejections are still there
    svc.undo("alice", "people")  # and a removed label can still be restored
    assert len(svc.library.label_rows(("human",), person_id=p)) == 1


def test_a_label_of_a_deleted_person_is_not_restored_behind_its_back(svc_truth):
    svc, _ = svc_truth
    p = pid(svc, "Kurt Goedel")
    faces = [r["face_id"] for r in svc.person_faces(p)]
    for f in faces:
        svc.remove_label(f, "bob")
    svc.delete_person(p, "alice")
    with pytest.raises(ServiceError, match=r"names a deleted person \(Kurt Goedel \(deleted #\d+\)\); undo that"):
        svc.undo("bob", "people")
    svc.undo("alice", "people")
    svc.undo("bob", "people")
    assert svc.library.face_persons([faces[-1]]) == {faces[-1]: p}


def test_a_merged_person_cannot_be_deleted(svc_truth):
    svc, _ = svc_truth
    a, b = pid(svc, "Ada Lovelace"), pid(svc, "Alan Turing")
    svc.merge_people(a, b, "alice")
    with pytest.raises(StorageError, match="part of a merge"):
        svc.delete_person(a, "alice")


def test_a_deleted_person_takes_no_new_faces_and_no_merge(svc_truth):
    svc, _ = svc_truth
    p = pid(svc, "Kurt Goedel")
    for f in [r["face_id"] for r in svc.person_faces(p)]:
        svc.remove_label(f, "alice")
    svc.delete_person(p, "alice")
    face = svc.library.label_rows(("human",))[0]["face_id"]
    with pytest.raises(StorageError, match=r"person \d+ \(Kurt Goedel \(deleted #\d+\)\) was deleted"):
        svc.move_face(face, p, "alice")  # e.g. from a page drawn before the deletion
    with pytest.raises(ServiceError, match="cannot merge: person .* was deleted"):
        svc.merge_people(pid(svc, "Ada Lovelace"), p, "alice")
