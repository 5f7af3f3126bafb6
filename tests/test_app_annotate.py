"""Annotate page (AppTest): one face with suggestions, new person, not a face, skip, undo, batch mode."""
import os
import re

import pytest

from apphelpers import app_test, build_synthetic, texts


@pytest.fixture
def at(tmp_path, monkeypatch):
    lib, truth = build_synthetic(tmp_path / "lib", human_per_person=1)
    lib.close()
    at = app_test(monkeypatch, tmp_path / "lib")
    at.truth = truth
    return at


def shown(at) -> int:
    m = re.search(r"data-face='(\d+)'", texts(at))
    assert m, texts(at)
    return int(m.group(1))


def service(at):
    from app_pages.common import _service

    return _service(os.environ["ASPL_DB"])


def test_login_is_asked_first_and_the_name_comes_from_the_account(tmp_path, monkeypatch):
    lib, _ = build_synthetic(tmp_path / "lib")
    lib.close()
    at = app_test(monkeypatch, tmp_path / "lib", annotator=None)
    assert "Log in" in texts(at) and not at.exception
    assert not [b for b in at.button if b.key and b.key.startswith("kb_")]  # no labelling before a login
    at = app_test(monkeypatch, tmp_path / "lib", annotator="dora", role="annotator")
    assert "Signed in as **dora** (annotator)" in texts(at) and at.button(key="kb_x")


def test_confirm_a_suggestion_shows_the_next_face(at):
    f = shown(at)
    first = at.button(key="kb_1")
    assert at.truth[f] in first.label and "similarity" in first.label
    assert len(at.image) >= 3  # crop, photo with box, suggestion thumbnails
    first.click().run()
    assert not at.exception
    g = shown(at)
    assert g != f
    svc = service(at)
    lab = svc.library.label_rows(("human",), face_id=f)[0]
    assert lab["annotator"] == "alice" and svc.library.person_name(lab["person_id"]) == at.truth[f]


def test_new_person_not_a_face_skip_and_undo(at):
    f = shown(at)
    # AppTest's selectbox only takes listed options; typing a new name is covered by the browser test
    at.selectbox(key="kb_new").set_value("Grace Hopper").run()
    g = shown(at)
    assert g != f
    svc = service(at)
    assert svc.library.face_persons([f]) == {f: svc.library.person_id("Grace Hopper")}
    assert at.selectbox(key="kb_new").value is None  # the name box is cleared for the next face
    at.button(key="kb_x").click().run()
    assert svc.library.face(g)["status"] == "not_face"
    h = shown(at)
    at.button(key="kb_s").click().run()
    assert shown(at) not in (f, g, h)
    at.button(key="kb_u").click().run()  # undo the skip
    assert shown(at) == h
    at.button(key="kb_u").click().run()  # undo not-a-face
    assert shown(at) == g and svc.library.face(g)["status"] == "ok"
    assert "Undone" in texts(at)


def test_keyboard_snippet_is_on_the_page(at):
    html = [e for e in at.main if getattr(e, "type", "") == "html"] or at.get("html")
    body = " ".join(str(getattr(h, "proto", h)) for h in html)
    assert "kb_new" in body and "keydown" in body


def test_batch_mode_accepts_a_group(at):
    svc = service(at)
    svc.run_round("admin")
    at.segmented_control(key="ann_mode").set_value("Batch").run()
    assert not at.exception
    group = at.selectbox(key="batch_group")
    assert "auto-labelled" in group.options[0]
    boxes = [c for c in at.checkbox if c.key and c.key.startswith("bsel_")]
    assert len(boxes) >= 2
    boxes[-1].uncheck().run()
    at.button(key="batch_accept").click().run()
    assert not at.exception
    assert "Labelled" in texts(at)
    assert len(svc.library.label_rows(("human",))) >= 4 + len(boxes) - 1
    assert len(svc.library.rejections()) == 1


def test_empty_library_points_to_import(tmp_path, monkeypatch):
    at = app_test(monkeypatch, tmp_path / "empty")
    assert not at.exception and "import photos on the Import page" in texts(at)


def test_explain_is_offered_only_for_torch_backbones(at):
    # The synthetic library's vectors come from no registered network: nothing to explain.
    assert "LinearScope explains torch ReLU networks" in texts(at)
    assert not [b for b in at.button if b.key and b.key.startswith("explain_")]


def test_explain_draws_a_linearscope_heatmap(tmp_path, monkeypatch):
    lib, _ = build_synthetic(tmp_path / "lib", human_per_person=2)
    lib.set_setting("backbone", "simplenet-v1-050")
    lib.close()
    at = app_test(monkeypatch, tmp_path / "lib")
    f = shown(at)
    at.button(key=f"explain_{f}").click().run()
    assert not at.exception
    captions = [img.proto.imgs[0].caption for img in at.image]
    assert any(c.startswith("red supports") for c in captions), captions
