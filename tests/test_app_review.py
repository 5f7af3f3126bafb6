"""Review page (AppTest): re-certify auto-labels, precision with its interval, flagged human labels."""
import os

import pytest

from apphelpers import app_test, build_synthetic, page, texts
from keyhelpers import allow_typed_names, key_map
from pgserver import library_at
from aspl.service import Service
from storage import Library


def test_review_accept_reject_precision_and_flags(tmp_path, monkeypatch):
    lib, truth = build_synthetic(tmp_path / "lib", human_per_person=3)
    svc = Service(lib)
    svc.set_loop_settings({"review_random": 3, "review_low": 2, "engine": {"max_failures": 0, "min_labels": 2}})
    wrong = next(f for f in lib.face_ids() if f not in lib.labelled_face_ids())
    other = next(p for p in svc.people() if p["name"] != truth[wrong])
    svc.confirm(wrong, other["id"], "mallory")
    svc.run_round("admin")
    svc.run_round("admin")
    lib.close()
    at = page(app_test(monkeypatch, tmp_path / "lib"), "review")
    assert not at.exception
    t = texts(at)
    assert "Random sample" in t and "Lowest confidence" in t and "Suspicious human labels" in t
    oks = [b for b in at.button if b.key and b.key.startswith("rv_ok_")]
    nos = [b for b in at.button if b.key and b.key.startswith("rv_no_")]
    assert len(oks) == len(nos) == 5
    oks[0].click().run()
    [b for b in at.button if b.key and b.key.startswith("rv_no_")][0].click().run()
    assert not at.exception
    prec = next(m for m in at.metric if m.label.startswith("Auto-label precision"))
    assert prec.value == "50%"
    assert "95% interval" in texts(at)
    assert next(m for m in at.metric if m.label == "Flagged human labels").value == "1"
    at.button(key=f"flag_ok_{wrong}").click().run()
    assert next(m for m in at.metric if m.label == "Flagged human labels").value == "0"
    at.button(key="review_undo").click().run()
    assert "Undone" in texts(at)
    svc2 = Service(library_at(tmp_path / "lib"))
    assert [f["face_id"] for f in svc2.flagged_labels()] == [wrong]
    assert svc2.precision().n == 2  # undo took back the flag confirmation, not the reviews


def test_review_before_any_round(tmp_path, monkeypatch):
    build_synthetic(tmp_path / "lib")[0].close()
    at = page(app_test(monkeypatch, tmp_path / "lib"), "review")
    assert not at.exception and "No auto-labels waiting for review" in texts(at)


def test_a_conflict_is_decided_on_the_review_page(tmp_path, monkeypatch):
    lib, truth = build_synthetic(tmp_path / "lib", human_per_person=1)
    svc = Service(lib)
    face = svc.next_face("alice")
    lid = svc.confirm(face, lib.person_id(truth[face]), "alice")
    assert svc.not_face(face, "bob") is False
    lib.close()
    at = page(app_test(monkeypatch, tmp_path / "lib", annotator="carol"), "review")
    assert "bob** says it is not a face" in texts(at) and f"labelled it **{truth[face]}**" in texts(at)
    (cid,) = [b.key[len("cf_nf_"):] for b in at.button if b.key and b.key.startswith("cf_nf_")]
    at.button(key=f"cf_nf_{cid}").click().run()
    assert not at.exception and "Conflict decided" in texts(at)
    lib = library_at(tmp_path / "lib")
    assert lib.face(face)["status"] == "not_face" and lib.label(lid)["revoked"] == 1
    assert lib.conflict(int(cid))["resolved_by"] == "carol"


@pytest.fixture
def reviewed(tmp_path, monkeypatch):
    lib, truth = build_synthetic(tmp_path / "lib", human_per_person=2)
    svc = Service(lib)
    svc.set_loop_settings({"review_random": 3, "review_low": 2})
    svc.run_round("admin")
    lib.close()
    return page(app_test(monkeypatch, tmp_path / "lib"), "review")


def test_review_keys_act_on_the_face_in_focus(reviewed):
    at = reviewed
    keys, grid = key_map(at)
    assert grid == "rvtile_"
    assert {k: keys[k] for k in "ynpau"} == {"y": "@tile:rv_ok_", "n": "@tile:rv_no_", "p": "@tile:rv_ctx_",
                                              "a": "rv_accept_all", "u": "review_undo"}
    assert keys["j"] == keys["arrowright"] == "@move:1" and keys["arrowup"] == "@move:-6"
    # every tile (the element the focus moves over) holds the three buttons the keys press
    for b in [b for b in at.button if b.key and b.key.startswith("rv_ok_")]:
        ids = b.key[len("rv_ok_"):]
        assert at.button(key=f"rv_no_{ids}") and at.button(key=f"rv_ctx_{ids}")
    assert "Y yes, N no, P the photo" in texts(at)


def test_photo_context_shows_and_closes(reviewed):
    at = reviewed
    first = next(b for b in at.button if b.key and b.key.startswith("rv_ctx_"))
    face = int(first.key.split("_")[2])
    first.click().run()
    assert not at.exception
    captions = [img.proto.imgs[0].caption for img in at.image]
    assert f"Face #{face} in its photo" in captions
    assert key_map(at)[0]["escape"] == "rv_ctx_close"
    at.button(key="rv_ctx_close").click().run()
    assert f"Face #{face} in its photo" not in [img.proto.imgs[0].caption for img in at.image]
    assert "escape" not in key_map(at)[0]


def test_accept_all_shown_and_one_undo(reviewed):
    at = reviewed
    n = len([b for b in at.button if b.key and b.key.startswith("rv_ok_")])
    assert at.button(key="rv_accept_all").label == f"**A** · Accept all {n} shown"
    at.button(key="rv_accept_all").click().run()
    assert not at.exception and f"Accepted {n} auto-label(s)" in texts(at)
    lib = Library(os.environ["ASPL_DB"])
    assert len(lib.label_rows(("human",), annotator="alice")) == n
    at.button(key="review_undo").click().run()
    assert "Undone: accepted" in texts(at)
    assert not lib.label_rows(("human",), annotator="alice")


def test_flagged_label_moved_to_a_prefix_name_asks_first(tmp_path, monkeypatch):
    lib, truth = build_synthetic(tmp_path / "lib", human_per_person=3)
    svc = Service(lib)
    svc.set_loop_settings({"engine": {"max_failures": 0, "min_labels": 2}})
    wrong = next(f for f in lib.face_ids() if f not in lib.labelled_face_ids())
    other = next(p for p in svc.people() if p["name"] != truth[wrong])
    svc.confirm(wrong, other["id"], "mallory")
    svc.run_round("admin")
    svc.run_round("admin")
    lib.close()
    allow_typed_names(monkeypatch)
    at = page(app_test(monkeypatch, tmp_path / "lib"), "review")
    typed = truth[wrong].split()[0].lower()  # e.g. "grace" for Grace Hopper
    at.selectbox(key=f"flag_move_{wrong}").set_value(typed).run()
    assert not at.exception
    assert f"**{typed}** is nobody yet, but it begins **{truth[wrong]}**" in texts(at)
    assert key_map(at)[0]["c"] == "kb_nameq_new"
    at.button(key="kb_nameq_0").click().run()
    assert f"Face #{wrong} moved to {truth[wrong]}" in texts(at)
    lib = library_at(tmp_path / "lib")
    assert lib.face_persons([wrong]) == {wrong: lib.person_id(truth[wrong])}
    assert typed not in {p["name"] for p in lib.people()}
