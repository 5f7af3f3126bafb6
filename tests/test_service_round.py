"""Rounds: engine decisions applied to storage (auto-labels, queue, flags, metrics, engine state)."""
import numpy as np
import pytest

from apphelpers import synthetic_service
from aspl.service import ServiceError
from storage import Library


@pytest.fixture
def svc_truth():
    svc, truth = synthetic_service(None, human_per_person=1)
    svc.set_loop_settings({"auto_trust": 1.0})  # these faces are all sure: let the queue ask about them
    return svc, truth


def names(svc):
    return {p["id"]: p["name"] for p in svc.people()}


def test_round_writes_correct_auto_labels_queue_and_metrics(svc_truth):
    svc, truth = svc_truth
    m = svc.run_round("admin")
    autos = svc.library.label_rows(("auto",))
    assert m["round"] == 1 and m["auto_labels"] == len(autos) > 20
    nm = names(svc)
    assert all(truth[a["face_id"]] == nm[a["person_id"]] for a in autos)
    assert all(a["round"] == 1 and a["annotator"] == "engine" and 0 < a["confidence"] <= 1 for a in autos)
    human = svc.library.labelled_face_ids()
    assert not human & {a["face_id"] for a in autos}
    q = svc.library.queue()
    assert q and not set(q) & human and len(q) == m["queries"]
    (r,) = svc.rounds()
    assert r["metrics"]["human_labels"] == 4 and r["metrics"]["people_modelled"] == 4
    assert r["backbone"] == "synthetic" and r["method"] == "aspl-guarded"


def test_engine_state_carries_over_and_prequential_accuracy(svc_truth):
    svc, truth = svc_truth
    svc.run_round("admin")
    f = svc.next_face("alice")
    pid = svc.library.person_id(truth[f])
    svc.confirm(f, pid, "alice")
    m2 = svc.run_round("admin")
    assert m2["engine_round"] == 1  # the same engine, second step
    assert m2["prequential_n"] == 1 and m2["prequential_accuracy"] == 1.0
    # changing the loop settings starts a fresh engine
    svc.set_loop_settings({"engine": {"query_size": 10, "min_labels": 1}})
    m3 = svc.run_round("admin")
    assert m3["engine_round"] == 0 and m3["queries"] <= 10


def test_rejected_pairs_and_non_faces_get_no_auto_label(svc_truth):
    svc, truth = svc_truth
    svc.run_round("admin")
    a = svc.library.label_rows(("auto",))[0]
    svc.reject_auto(a["face_id"], a["person_id"], "alice")
    b = svc.library.label_rows(("auto",))[0]
    svc.not_face(b["face_id"], "alice")
    svc.run_round("admin")
    pairs = {(r["face_id"], r["person_id"]) for r in svc.library.label_rows(("auto",))}
    assert (a["face_id"], a["person_id"]) not in pairs
    assert b["face_id"] not in {f for f, _ in pairs}
    assert b["face_id"] not in svc.library.queue()


def test_round_without_embeddings_says_why():
    from aspl.service import Service

    lib = Library(":memory:")
    lib.set_setting("backbone", "synthetic")
    with pytest.raises(ServiceError, match="no faces are embedded with 'synthetic'"):
        Service(lib).run_round("admin")


def test_round_runs_as_a_background_job_with_progress(tmp_path):
    svc, _ = synthetic_service(tmp_path / "lib", human_per_person=1)
    job = svc.start_round("admin").wait(30)
    assert job.status == "done", job.error
    assert job.fraction == 1.0 and job.result["auto_labels"] > 0
    # the job wrote through its own connection; the app's connection sees it
    assert len(svc.library.label_rows(("auto",))) == job.result["auto_labels"]


def test_bad_loop_settings_name_the_value():
    svc, _ = synthetic_service(None)
    with pytest.raises(ValueError, match="unknown method 'nope'"):
        svc.set_loop_settings({"method": "nope"})
    with pytest.raises(ValueError, match="unknown setting"):
        svc.set_loop_settings({"engine": {"lambda_strat": 0.1}})
    with pytest.raises(ValueError, match="unknown loop setting"):
        svc.set_loop_settings({"leases": 3})
    with pytest.raises(ValueError, match="lease_seconds"):
        svc.set_loop_settings({"lease_seconds": 0})
    assert svc.loop_settings().method == "aspl-guarded"


def test_ceal_method_also_runs(svc_truth):
    svc, _ = svc_truth
    svc.set_loop_settings({"method": "ceal", "engine": {"query_size": 5, "min_labels": 1}})
    m = svc.run_round("admin")
    assert m["queries"] == 5 and np.isfinite(m["seconds"])


def test_round_needs_a_named_face():
    svc, _ = synthetic_service(None)
    with pytest.raises(ServiceError, match="at least one named face"):
        svc.run_round("admin")
    assert svc.rounds() == [] and svc.library.rounds(finished_only=False) == []
