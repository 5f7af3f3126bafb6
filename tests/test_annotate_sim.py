"""The scripted annotator of the effort benchmark: it drives the real service to a finished library, and its
counts add up."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from apphelpers import synthetic_service
from aspl.annotate_sim import AnnotatorSim, prominent_faces, unique_prefix
from aspl.cli import main


def _with_strangers(truth: dict[int, str], every: int = 5) -> dict[int, str | None]:
    return {f: (None if i % every == 0 else n) for i, (f, n) in enumerate(sorted(truth.items()))}


@pytest.mark.parametrize("method", ["aspl", "cluster"])
def test_the_simulated_annotator_finishes_the_library_with_no_wrong_label(method):
    svc, truth = synthetic_service(None, n_people=4, per_person=10)
    truth = _with_strangers(truth)
    if method == "cluster":
        svc.set_loop_settings({"round_every": 0})
    out = AnnotatorSim(svc, truth, method, cluster_distance=0.6).run()
    assert out["faces"] == 40 and out["remaining"] == 0 and out["wrong_labels_left"] == 0
    assert out["decisions"] == sum(out["decisions_by_kind"].values())
    assert 0 < out["decisions"] < out["faces"]  # batches and auto-labels save answers on clean clusters
    assert out["keystrokes"] >= out["decisions"]
    strangers = {f for f, t in truth.items() if t is None}
    assert {r["face_id"] for r in svc.library.faces_table("stranger")} == strangers
    if method == "aspl":
        assert out["auto_label_precision"] in (None, 1.0)
    else:
        assert out["rounds"] == 0 and out["auto_labels"] == 0


def test_small_grids_leave_faces_to_the_person_groups_which_offer_only_that_persons_faces():
    svc, truth = synthetic_service(None, n_people=4, per_person=10)
    svc.set_loop_settings({"batch_size": 4, "round_every": 3})  # clusters of 4 name a few faces per person
    out = AnnotatorSim(svc, dict(truth), "aspl").run()
    assert out["remaining"] == 0 and out["wrong_labels_left"] == 0
    shown = out["auto_labels_shown"] + out["probable_shown"]
    assert shown > 0 and out["decisions_by_kind"].get("batch_review", 0) > 0
    assert out["auto_labels_shown_precision"] in (None, 1.0) and out["probable_shown_precision"] in (None, 1.0)
    assert out["decisions"] < 40 / 2


def test_one_face_at_a_time_rounds_start_by_themselves_and_auto_label_the_rest():
    svc, truth = synthetic_service(None, n_people=4, per_person=10)
    out = AnnotatorSim(svc, dict(truth), "aspl", use_batches=False).run()  # (these strangers would be fake)
    assert out["rounds"] >= 1 and out["rounds_started_by_annotator"] == 0  # started by the answers
    assert out["auto_labels"] > 0 and out["auto_label_precision"] == 1.0 and out["remaining"] == 0
    assert out["decisions"] < 40 - out["auto_labels"] + 1


def test_a_decision_budget_stops_the_annotator():
    svc, truth = synthetic_service(None, n_people=4, per_person=10)
    out = AnnotatorSim(svc, _with_strangers(truth), "aspl", max_decisions=3, use_batches=False).run()
    assert out["decisions"] == 3 and out["remaining"] > 0


def test_helpers_pick_the_prominent_face_and_the_shortest_unique_prefix():
    faces = [{"face_id": 1, "x1": 0, "y1": 0, "x2": 40, "y2": 40, "width": 200, "height": 200},
             {"face_id": 2, "x1": 80, "y1": 80, "x2": 120, "y2": 120, "width": 200, "height": 200},
             {"face_id": 3, "x1": 150, "y1": 150, "x2": 160, "y2": 160, "width": 200, "height": 200}]
    assert prominent_faces(faces) == 2 and prominent_faces([]) is None
    # a face cut by the photo's edge: its box reaches outside (MTCNN's estimate of the whole face) and is
    # larger than the subject's, but little of it is in the photo (lfw-dev: Andre_Agassi_0001 and 6 more)
    cut = [{"face_id": 7, "x1": 50, "y1": 44, "x2": 99, "y2": 107, "width": 150, "height": 150},
           {"face_id": 8, "x1": -58, "y1": 39, "x2": 21, "y2": 123, "width": 150, "height": 150}]
    assert prominent_faces(cut) == 7
    assert unique_prefix("Angelina Jolie", ["Angelina Jolie", "Angela Merkel", "Bill Gates"]) == 6  # "angel" still begins "Angela"
    assert unique_prefix("Bill Gates", ["Angelina Jolie", "Bill Gates"]) == 1
    with pytest.raises(ValueError, match="valid choices: aspl, cluster"):
        AnnotatorSim(None, {}, "kmeans")


def test_cli_imports_real_photos_and_prints_one_json_report(tmp_path, capsys, lfw_dev):
    src = tmp_path / "photos"
    for person in ("Colin_Powell", "Tony_Blair"):
        (src / person).mkdir(parents=True)
        for f in sorted((lfw_dev / person).glob("*.jpg"))[:3]:
            shutil.copy2(f, src / person / f.name)
    assert main(["annotate-sim", str(src), "--db", str(tmp_path / "lib"), "-q", "--set", "round_every=2"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["faces"] >= 6 and out["people"] == 2 and out["remaining"] == 0
    assert out["wrong_labels_left"] == 0 and out["decisions"] <= out["faces"]
    assert {"decisions_by_kind", "keystrokes", "auto_labels", "auto_label_precision", "rounds",
            "seconds", "import_seconds"} <= set(out)


def test_truth_fixes_name_a_checked_face_in_someone_elses_photo(tmp_path):
    from aspl.annotate_sim import folder_truth, load_truth_fixes

    rows = [{"face_id": 1, "image_id": 1, "image_path": str(tmp_path / "Laura_Bush" / "Laura_Bush_0002.jpg"),
             "x1": 40, "y1": 40, "x2": 100, "y2": 110, "width": 150, "height": 150},
            {"face_id": 2, "image_id": 1, "image_path": str(tmp_path / "Laura_Bush" / "Laura_Bush_0002.jpg"),
             "x1": 119, "y1": 26, "x2": 179, "y2": 97, "width": 150, "height": 150}]

    class Lib:
        def faces_table(self, status=None):
            return rows

    assert folder_truth(Lib(), tmp_path) == {1: "Laura Bush", 2: None}
    fix = tmp_path / "fixes.json"
    fix.write_text(json.dumps({"faces": [
        {"photo": "Laura_Bush_0002.jpg", "box": [118, 27, 178, 96], "person": "George W Bush"},
        {"photo": "Laura_Bush_0002.jpg", "box": [0, 0, 10, 10], "person": "Nobody"},  # matches no face
        {"photo": "Other_0001.jpg", "box": [40, 40, 100, 110], "person": "Nobody"}]}))
    assert folder_truth(Lib(), tmp_path, load_truth_fixes(fix)) == {1: "Laura Bush", 2: "George W Bush"}
    assert load_truth_fixes(None) == []
    fix.write_text(json.dumps({"faces": [{"photo": "a.jpg", "person": "X"}]}))
    with pytest.raises(ValueError, match="needs photo, box"):
        load_truth_fixes(fix)
    # the fixes shipped for lfw-dev are well-formed
    shipped = load_truth_fixes(Path(__file__).resolve().parents[1] / "bench" / "lfw_dev_truth_fixes.json")
    assert len(shipped) == 15 and all(f["person"] for f in shipped)


def test_someone_elses_face_in_a_grid_is_named_on_its_own_not_unticked():
    """A face the truth gives to another person, sitting in a clean cluster of the first (its embedding is
    theirs): the page shows it ticked, so the annotator names it on its own (E, then a suggestion or the
    name) instead of unticking it now and answering it later; no untick is counted."""
    svc, truth = synthetic_service(None, n_people=4, per_person=10)
    truth = dict(truth)
    a, b = sorted(set(truth.values()))[:2]
    odd = sorted(f for f, t in truth.items() if t == a)[-1]
    truth[odd] = b
    out = AnnotatorSim(svc, truth, "aspl").run()
    kinds = out["decisions_by_kind"]
    assert out["remaining"] == 0 and out["wrong_labels_left"] == 0
    assert sum(v for k, v in kinds.items() if k.startswith("grid_") or k == "new_person") >= 1
    assert "batch_untick" not in kinds
    lib = svc.library
    assert [lib.person_name(r["person_id"]) for r in lib.label_rows(("human",), face_id=odd)] == [b]
