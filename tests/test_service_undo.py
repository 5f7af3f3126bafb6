"""The undo registry: every action kind the service records has a registered undo and description."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from apphelpers import synthetic_service
from aspl.service import UNDO, ServiceError
from aspl.service.undo import undoable

SERVICE = Path(__file__).resolve().parents[1] / "aspl" / "service"


def _recorded_kinds() -> set[str]:
    """Kinds passed to ``add_action(actor, scope, "<kind>", ...)`` anywhere in the service package."""
    kinds = set()
    for f in SERVICE.glob("*.py"):
        kinds |= set(re.findall(r'add_action\([^,]+,\s*[^,]+,\s*"([a-z_]+)"', f.read_text()))
    return kinds


def test_every_recorded_action_kind_has_an_undo():
    kinds = _recorded_kinds()
    assert len(kinds) >= 10  # the scan finds the service's actions (label, batch, merge, ...)
    assert kinds <= set(UNDO), f"actions without an undo: {sorted(kinds - set(UNDO))}"


def test_describe_uses_the_registry_and_unknown_kinds_are_a_clear_error():
    svc, truth = synthetic_service(None, human_per_person=1)
    face = svc.next_face("alice")
    pid = svc.library.person_id(next(iter(set(truth.values()))))
    svc.confirm(face, pid, "alice")
    act = svc.last_action("alice")
    assert svc.describe(act) == f"labelled face {face} as {svc.person_name(pid)}"
    svc.library.add_action("alice", "annotate", "teleport", {"face_id": face})
    with pytest.raises(ServiceError, match="'teleport' cannot be undone; undoable kinds: batch"):
        svc.undo("alice")
    assert svc.describe({"kind": "teleport", "payload": {}}) == "teleport"


def test_a_kind_cannot_be_registered_twice():
    with pytest.raises(ValueError, match="'label' already has an undo"):
        undoable("label", lambda p: "")(lambda *a: None)
