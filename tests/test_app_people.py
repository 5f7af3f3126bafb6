"""People page (AppTest): gallery with human and auto labels apart; rename, merge, remove, undo, event log."""
import os

import pytest

from apphelpers import app_test, build_synthetic, page, texts
from keyhelpers import allow_typed_names, key_map
from aspl.service import Service
from storage import Library


@pytest.fixture
def at(tmp_path, monkeypatch):
    lib, truth = build_synthetic(tmp_path / "lib", human_per_person=2)
    Service(lib).run_round("admin")
    lib.close()
    return page(app_test(monkeypatch, tmp_path / "lib"), "people")


def lib_now() -> Library:
    return Library(os.environ["ASPL_DB"])


def test_gallery_separates_human_and_auto(at):
    assert not at.exception
    t = texts(at)
    assert "Confirmed by people (2)" in t and "Automatic labels (6)" in t
    assert len([c for c in at.checkbox if c.key.startswith("psel_")]) == 8


def test_rename_merge_and_undo(at):
    person = at.selectbox(key="people_pick").value
    next(t for t in at.text_input if t.label == "Rename to").set_value("Countess Ada")
    next(b for b in at.button if b.label == "Rename").click().run()
    assert not at.exception
    assert lib_now().person_name(person) == "Countess Ada"
    next(s for s in at.selectbox if s.label == "Merge into").select_index(0)
    next(b for b in at.button if b.label == "Merge").click().run()
    assert not at.exception
    assert person in {p["id"] for p in lib_now().people()}  # nothing merged before the confirmation
    assert "Merge **Countess Ada** (2 human, 6 auto labels) into" in texts(at)
    assert key_map(at)[0]["enter"] == "kb_merge_yes" and key_map(at)[0]["escape"] == "kb_merge_no"
    at.button(key="kb_merge_yes").click().run()
    assert not at.exception and "Merged Countess Ada into" in texts(at)
    assert person not in {p["id"] for p in lib_now().people()}
    at.button(key="people_undo").click().run()
    assert person in {p["id"] for p in lib_now().people()}
    assert "Undone: merged" in texts(at)


def test_remove_labels_from_selection(at):
    boxes = [c for c in at.checkbox if c.key.startswith("psel_")]
    boxes[-1].check().run()
    at.button(key="people_remove").click().run()
    assert not at.exception
    assert "will not be suggested" in texts(at)
    assert len(lib_now().rejections()) == 1
    assert "Automatic labels (5)" in texts(at)



def test_a_merge_can_be_cancelled(at):
    person = at.selectbox(key="people_pick").value
    next(s for s in at.selectbox if s.label == "Merge into").select_index(0)
    next(b for b in at.button if b.label == "Merge").click().run()
    at.button(key="kb_merge_no").click().run()
    assert not at.exception and "Merge **" not in texts(at)
    assert person in {p["id"] for p in lib_now().people()}


def test_delete_an_empty_person_and_undo(at):
    assert at.button(key="people_delete").disabled  # faces are still labelled as this person
    person = at.selectbox(key="people_pick").value
    name = lib_now().person_name(person)
    for c in [c for c in at.checkbox if c.key.startswith("psel_")]:
        c.check()
    at.run()
    at.button(key="people_remove").click().run()
    assert "Confirmed by people (0)" in texts(at) and "Automatic labels (0)" in texts(at)
    at.button(key="people_delete").click().run()
    assert not at.exception and f"Deleted {name}" in texts(at)
    assert name not in {p["name"] for p in lib_now().people()}
    assert at.selectbox(key="people_pick").value != person
    at.button(key="people_undo").click().run()
    assert f"Undone: deleted person '{name}'" in texts(at)
    assert name in {p["name"] for p in lib_now().people()}


def test_move_to_a_name_that_begins_an_existing_one_asks_first(at, monkeypatch):
    allow_typed_names(monkeypatch)
    boxes = [c for c in at.checkbox if c.key.startswith("psel_")]
    face = int(boxes[-1].key.rsplit("_", 1)[1])
    boxes[-1].check().run()
    next(s for s in at.selectbox if s.label == "Move selected faces to").set_value("grace")
    next(b for b in at.button if b.label == "Move").click().run()
    assert not at.exception
    assert "**grace** is nobody yet, but it begins **Grace Hopper**" in texts(at)
    assert "grace" not in {p["name"] for p in lib_now().people()}
    assert key_map(at)[0]["enter"] == "kb_nameq_0"
    at.button(key="kb_nameq_0").click().run()
    assert not at.exception and "Moved 1 face(s) to Grace Hopper" in texts(at)
    lib = lib_now()
    assert lib.face_persons([face], ("human", "seed")) == {face: lib.person_id("Grace Hopper")}
    assert "grace" not in {p["name"] for p in lib.people()}
