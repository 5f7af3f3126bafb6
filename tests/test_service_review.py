"""Review: auto-label sample (random + lowest confidence), accept / reject, precision, flagged human labels."""
import pytest

from apphelpers import synthetic_service
from aspl.engine import wilson_interval
from aspl.service import ServiceError
from storage import NotFoundError


@pytest.fixture
def svc_truth():
    svc, truth = synthetic_service(None, human_per_person=1)
    svc.set_loop_settings({"review_random": 4, "review_low": 3})
    svc.run_round("admin")
    return svc, truth


def test_sample_is_random_plus_lowest_confidence_and_stable(svc_truth):
    svc, _ = svc_truth
    items = svc.review_sample("alice")
    rnd = [i for i in items if i.sample == "random"]
    low = [i for i in items if i.sample == "low"]
    assert len(rnd) == 4 and len(low) == 3
    assert not {i.face_id for i in rnd} & {i.face_id for i in low}
    in_random = {i.face_id for i in rnd}
    others = [r["confidence"] for r in svc.library.label_rows(("auto",)) if r["face_id"] not in in_random]
    assert sorted(i.confidence for i in low) == sorted(others)[:3]
    assert svc.review_sample("alice") == items  # a rerun shows the same sample


def test_accept_makes_a_human_label_and_reject_a_rejection(svc_truth):
    svc, truth = svc_truth
    a, b = svc.review_sample("alice")[:2]
    lid = svc.accept_auto(a.face_id, a.person_id, "alice", a.sample)
    lab = svc.library.label(lid)
    assert lab["source"] == "human" and lab["annotator"] == "alice"
    svc.reject_auto(b.face_id, b.person_id, "alice", b.sample)
    assert (b.face_id, b.person_id) in svc.library.rejections()
    assert not svc.library.label_rows(("auto",), face_id=b.face_id)
    left = {i.face_id for i in svc.review_sample("alice")}
    assert a.face_id not in left and b.face_id not in left
    p = svc.precision("random")
    assert (p.correct, p.n) == (1, 2) and (p.low, p.high) == pytest.approx(wilson_interval(1, 2))
    svc.run_round("admin")  # the rejected pair never comes back
    assert (b.face_id, b.person_id) not in {(r["face_id"], r["person_id"]) for r in svc.library.label_rows(("auto",))}


def test_undo_review_withdraws_it(svc_truth):
    svc, _ = svc_truth
    a = svc.review_sample("alice")[0]
    svc.reject_auto(a.face_id, a.person_id, "alice", a.sample)
    svc.undo("alice", "review")
    assert svc.precision().n == 0
    assert (a.face_id, a.person_id) not in svc.library.rejections()
    assert svc.library.label_rows(("auto",), face_id=a.face_id)


def test_stale_review_is_refused(svc_truth):
    svc, _ = svc_truth
    a = svc.review_sample("alice")[0]
    svc.accept_auto(a.face_id, a.person_id, "alice", a.sample)
    with pytest.raises(NotFoundError, match="no live auto-label"):
        svc.reject_auto(a.face_id, a.person_id, "bob", a.sample)
    with pytest.raises(ValueError, match="unknown review sample"):
        svc.precision("sideways")


def test_wrong_human_label_gets_flagged_and_confirm_clears_it():
    svc, truth = synthetic_service(None, human_per_person=3)
    svc.set_loop_settings({"engine": {"max_failures": 0, "min_labels": 2}})
    lib = svc.library
    wrong = next(f for f in lib.face_ids() if f not in lib.labelled_face_ids())
    other = next(p for p in svc.people() if p["name"] != truth[wrong])
    svc.confirm(wrong, other["id"], "mallory")
    svc.run_round("admin")
    svc.run_round("admin")
    flagged = svc.flagged_labels()
    assert [f["face_id"] for f in flagged] == [wrong]
    assert flagged[0]["annotator"] == "mallory" and flagged[0]["name"] == other["name"]
    svc.confirm_flag(wrong, "alice")
    assert svc.flagged_labels() == []
    svc.undo("alice", "review")
    assert [f["face_id"] for f in svc.flagged_labels()] == [wrong]
    # correcting it (People page) clears the flag for good
    svc.move_face(wrong, truth[wrong], "alice")
    assert svc.flagged_labels() == []


def test_accept_all_shown_is_one_action(svc_truth):
    svc, _ = svc_truth
    items = svc.review_sample("alice")
    a = items[0]
    svc.reject_auto(a.face_id, a.person_id, "bob", a.sample)  # gone by the time alice accepts all
    shown = [(i.face_id, i.person_id, i.sample) for i in items]
    assert svc.accept_all_auto(shown, "alice") == len(items) - 1
    human = {r["face_id"] for r in svc.library.label_rows(("human",), annotator="alice")}
    assert human == {i.face_id for i in items[1:]}
    assert svc.precision("random").n + svc.precision("low").n == len(items)
    assert svc.describe(svc.last_action("alice", "review")) == f"accepted {len(items) - 1} auto-labels"
    svc.undo("alice", "review")
    assert not svc.library.label_rows(("human",), annotator="alice")
    assert svc.precision("random").n + svc.precision("low").n == 1  # only bob's rejection is left
    assert {r["face_id"] for r in svc.library.label_rows(("auto",))} >= {i.face_id for i in items[1:]}


def test_accept_all_refuses_stale_items_and_bad_samples(svc_truth):
    svc, _ = svc_truth
    a = svc.review_sample("alice")[0]
    svc.accept_auto(a.face_id, a.person_id, "bob", a.sample)
    with pytest.raises(ServiceError, match="none of the 1 auto-labels shown is still live"):
        svc.accept_all_auto([(a.face_id, a.person_id, a.sample)], "alice")
    with pytest.raises(ValueError, match="unknown review sample 'odd'; valid choices: random, low"):
        svc.accept_all_auto([(a.face_id, a.person_id, "odd")], "alice")
