"""Strangers, hidden (low-quality) faces, trusted auto-labels, skipping through, and rounds that start by
themselves: what an annotator on a real collection meets."""
from __future__ import annotations

import numpy as np
import pytest

from apphelpers import build_synthetic, synthetic_service
from aspl.service import AUTO_ACTOR, Service
from storage.db import NewFace


def _add_face(lib, k: int, size: float, prob: float, vec: np.ndarray) -> int:
    crop = np.full((48, 48, 3), 90, np.uint8)
    _, (fid,) = lib.add_image(f"extra/{k}.jpg", f"extra-{k}", 10, 400, 400, [NewFace(
        (10.0, 10.0, 10.0 + size, 10.0 + size), np.zeros((5, 2), np.float32), prob, crop, {"synthetic": vec})])
    return fid


def test_a_stranger_leaves_queue_training_and_remaining_and_undo_brings_it_back():
    svc, truth = synthetic_service(None, human_per_person=1)
    lib = svc.library
    before = svc.remaining()
    f = svc.next_face("alice")
    assert svc.stranger(f, "alice") is True
    assert lib.face(f)["status"] == "stranger" and svc.remaining() == before - 1
    assert f not in {svc.next_face(a) for a in ("alice", "bob", "carol")}
    svc.run_round("admin")
    assert f not in {r["face_id"] for r in lib.label_rows()}  # never auto-labelled: out of the loop
    assert f not in lib.queue()
    assert lib.stats()["strangers"] == 1
    act = svc.undo("alice")
    assert act["kind"] == "stranger" and "stranger" in svc.describe(act)
    assert lib.face(f)["status"] == "ok"


def test_stranger_on_another_annotators_label_goes_to_review_and_can_be_decided_stranger():
    svc, truth = synthetic_service(None, human_per_person=1)
    lib = svc.library
    f = svc.next_face("alice")
    lid = svc.new_person(f, truth[f], "alice")
    assert svc.stranger(f, "bob") is False and lib.label(lid)["revoked"] == 0
    (c,) = svc.open_conflicts()
    assert c["kind"] == "stranger"
    svc.resolve_conflict(c["id"], "stranger", "carol")
    assert lib.face(f)["status"] == "stranger" and lib.label(lid)["revoked"] == 1
    svc.undo("carol", "review")
    assert lib.face(f)["status"] == "ok" and lib.label(lid)["revoked"] == 0


def test_quality_thresholds_hide_small_or_unsure_faces_and_apply_to_new_imports():
    svc, truth = synthetic_service(None, human_per_person=1)
    lib = svc.library
    rng = np.random.default_rng(1)
    vec = rng.normal(size=32).astype(np.float32)
    vec /= np.linalg.norm(vec)
    tiny = _add_face(lib, 1, 12.0, 0.99, vec)
    unsure = _add_face(lib, 2, 80.0, 0.80, vec)
    fine = _add_face(lib, 3, 80.0, 0.99, vec)
    n = svc.remaining()
    assert svc.set_face_quality(min_px=20, min_prob=0.9, actor="admin") == 2
    assert svc.remaining() == n - 2
    assert set(svc.hidden_faces()) == {tiny, unsure}
    asked = set()
    while (g := svc.next_face("alice")) is not None and g not in asked:  # skips cycle: stop at a repeat
        asked.add(g)
        svc.skip(g, "alice")
    assert fine in asked and not {tiny, unsure} & asked
    svc.run_round("admin")
    labelled = {r["face_id"] for r in lib.label_rows()}
    assert not {tiny, unsure} & labelled  # hidden faces are not trained on or auto-labelled
    later = _add_face(lib, 4, 10.0, 0.99, vec)  # an import after the setting: hidden at once
    assert lib.face(later)["hidden"] == 1
    assert svc.set_face_quality(0, 0, actor="admin") == 0 and not svc.hidden_faces()
    with pytest.raises(ValueError, match="min_prob must be in"):
        svc.set_face_quality(0, 1.5, actor="admin")


def test_skipping_every_face_cycles_through_them_instead_of_repeating_one():
    svc, truth = synthetic_service(None, n_people=2, per_person=3, human_per_person=1)
    seen = []
    for _ in range(8):
        f = svc.next_face("alice")
        seen.append(f)
        svc.skip(f, "alice")
    open_faces = set(svc.library.face_ids("ok")) - svc.library.labelled_face_ids()
    assert len(open_faces) == 4
    assert set(seen[:4]) == open_faces and seen[4:] == seen[:4]  # round-robin, oldest skip first


def test_confident_auto_labels_are_not_asked_and_the_library_is_done():
    svc, truth = synthetic_service(None, human_per_person=2)
    svc.set_loop_settings({"round_every": 0})
    svc.run_round("admin")
    lib = svc.library
    trusted = {r["face_id"] for r in lib.label_rows(("auto",)) if r["confidence"] > 0.9}
    assert trusted and not trusted & set(lib.queue())
    assert lib.last_round()["metrics"]["trusted_not_asked"] > 0
    asked = []
    while (f := svc.next_face("alice")) is not None:
        asked.append(f)
        svc.new_person(f, truth[f], "alice")
    assert not trusted & set(asked)
    assert svc.remaining() == 0 and svc.loop_state()["done"]
    svc.set_loop_settings({"auto_trust": 1.0})
    svc.run_round("admin")
    assert lib.queue() and svc.next_face("alice") is not None  # with no trust, auto-labels are asked again


def test_a_round_starts_by_itself_after_enough_answers(tmp_path):
    lib, truth = build_synthetic(tmp_path / "lib", n_people=3, per_person=6, human_per_person=1)
    svc = Service(lib)
    svc.set_loop_settings({"round_every": 3, "auto_trust": 1.0})
    jobs = []
    for _ in range(3):
        f = svc.next_face("alice")
        svc.new_person(f, truth[f], "alice")
        jobs.append(svc.jobs.latest("round"))
    assert jobs[:2] == [None, None] and jobs[2] is not None
    jobs[2].wait(60)
    assert jobs[2].error is None
    (r,) = lib.rounds()
    assert r["actor"] == AUTO_ACTOR and r["metrics"]["human_labels"] == 3 + 3
    assert svc.round_due() is None  # no answers since
    svc.set_loop_settings({"round_every": 0})
    f = svc.next_face("alice")
    svc.new_person(f, truth[f], "alice")
    assert svc.jobs.latest("round") is jobs[2]  # off: no more rounds by themselves


def test_no_round_starts_by_itself_before_any_face_is_named():
    svc, truth = synthetic_service(None)
    svc.set_loop_settings({"round_every": 1})
    f = svc.next_face("alice")
    svc.not_face(f, "alice")
    assert svc.jobs.latest("round") is None


def test_a_cluster_of_strangers_is_marked_in_one_undoable_action():
    svc, truth = synthetic_service(None, human_per_person=1)
    lib = svc.library
    faces = [f for f in sorted(truth) if f not in lib.labelled_face_ids()][:5]
    labelled = next(iter(lib.labelled_face_ids()))
    assert svc.mark_batch(faces + [labelled], "stranger", "alice") == 5  # a named face is left alone
    assert all(lib.face(f)["status"] == "stranger" for f in faces) and lib.face(labelled)["status"] == "ok"
    act = svc.undo("alice")
    assert act["kind"] == "batch_mark" and "5 faces as strangers" in svc.describe(act)
    assert all(lib.face(f)["status"] == "ok" for f in faces)
    with pytest.raises(ValueError, match="unknown mark"):
        svc.mark_batch(faces, "blurry", "alice")


def test_a_relative_size_threshold_hides_bystanders_smaller_than_the_photos_main_face():
    svc, truth = synthetic_service(None, human_per_person=1)
    lib = svc.library
    v = np.ones(32, np.float32) / np.sqrt(32)
    crop = np.full((48, 48, 3), 90, np.uint8)

    def photo(k: int, sides: list[float]) -> list[int]:
        faces = [NewFace((10.0 * i, 0.0, 10.0 * i + s, s), np.zeros((5, 2), np.float32), 0.99, crop,
                         {"synthetic": v}) for i, s in enumerate(sides)]
        return lib.add_image(f"group/{k}.jpg", f"group-{k}", 10, 800, 800, faces)[1]

    main, bystander, friend = photo(1, [100.0, 40.0, 80.0])
    lone = photo(2, [30.0])[0]  # a small face alone in its photo is its photo's largest
    assert svc.faces_below_quality(0, 0, 0.5) == 1
    assert svc.set_face_quality(0, 0, "admin", min_rel=0.5) == 1 and svc.hidden_faces() == [bystander]
    later = photo(3, [120.0, 50.0])  # applied at import too
    assert lib.face(later[1])["hidden"] == 1 and lib.face(later[0])["hidden"] == 0
    assert lib.face(main)["hidden"] == lib.face(friend)["hidden"] == lib.face(lone)["hidden"] == 0
    assert svc.face_quality()["min_rel"] == 0.5
    # a face cut by the photo's right edge: its box (MTCNN's estimate of the whole face) reaches outside the
    # photo and is larger than the subject's, but only its visible part counts: the subject stays shown
    edge = [NewFace((300.0, 300.0, 400.0, 400.0), np.zeros((5, 2), np.float32), 0.99, crop, {"synthetic": v}),
            NewFace((767.0, 280.0, 927.0, 440.0), np.zeros((5, 2), np.float32), 0.99, crop, {"synthetic": v})]
    subject, cut = lib.add_image("group/edge.jpg", "group-edge", 10, 800, 800, edge)[1]
    assert lib.face(subject)["hidden"] == 0 and lib.face(cut)["hidden"] == 1  # at import: 33 px visible
    svc.set_face_quality(0, 0, "admin", min_rel=0.5)
    assert lib.face(subject)["hidden"] == 0 and lib.face(cut)["hidden"] == 1  # and when applied again
    assert svc.faces_below_quality(34, 0, 0) - svc.faces_below_quality(33, 0, 0) == 1  # min_px: 33 px too
    with pytest.raises(ValueError, match="min_rel must be in"):
        svc.set_face_quality(0, 0, "admin", min_rel=2)
