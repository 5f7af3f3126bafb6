"""Hidden faces on request: a preview count of what thresholds would hide, showing one face anyway (it becomes
the annotator's next face, undoable), and applying the thresholds again."""
import pytest

from apphelpers import synthetic_service
from storage import NotFoundError


def test_preview_count_changes_nothing():
    svc, truth = synthetic_service(None)
    assert svc.faces_below_quality(100, 0) == len(truth)  # synthetic boxes are 60 px
    assert svc.faces_below_quality(50, 0) == 0 and svc.faces_below_quality(0, 0.995) == len(truth)
    assert not svc.hidden_faces() and svc.face_quality() == {"min_px": 0.0, "min_prob": 0.0, "min_rel": 0.0}
    svc.stranger(next(iter(truth)), "alice")
    assert svc.faces_below_quality(100, 0) == len(truth) - 1  # strangers are not counted


def test_unhide_makes_the_face_the_next_one_and_undo_hides_it_again():
    svc, truth = synthetic_service(None, human_per_person=1)
    lib = svc.library
    assert svc.set_face_quality(100, 0, "admin") == len(truth)
    assert svc.remaining() == 0 and svc.loop_state()["done"] and svc.next_face("alice") is None
    named = {r["face_id"] for r in lib.label_rows(("human",))}
    f = next(x for x in svc.hidden_faces() if x not in named)
    assert svc.unhide_face(f, "alice") is True
    assert lib.face(f)["hidden"] == 0 and f not in svc.hidden_faces()
    assert svc.remaining() == 1 and not svc.loop_state()["done"]
    assert svc.next_face("alice") == f  # leased to the annotator who asked for it
    assert svc.next_face("bob") is None  # nobody else gets it meanwhile
    assert svc.unhide_face(f, "alice") is False  # not hidden any more: nothing recorded
    act = svc.undo("alice")
    assert act["kind"] == "unhide" and svc.describe(act) == f"showed hidden face {f}"
    assert lib.face(f)["hidden"] == 1 and svc.remaining() == 0 and svc.next_face("alice") is None
    svc.unhide_face(f, "alice")
    svc.confirm(f, lib.person_id(truth[f]), "alice")
    assert svc.loop_state()["done"] and lib.face(f)["hidden"] == 0
    assert svc.set_face_quality(100, 0, "admin") == len(truth)  # applying the thresholds again re-hides it
    with pytest.raises(NotFoundError, match="face 999 not found"):
        svc.unhide_face(999, "alice")
