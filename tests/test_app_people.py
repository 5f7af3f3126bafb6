"""People page (AppTest): gallery with human and auto labels apart; rename, merge, remove, undo, event log."""
import os

import pytest

from apphelpers import app_test, build_synthetic, page, texts
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

