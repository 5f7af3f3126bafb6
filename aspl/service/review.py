"""Re-certifying auto-labels (random and lowest-confidence samples) and flagged human labels."""
from __future__ import annotations

import zlib
from typing import Any, Callable, Sequence

import numpy as np

from storage import Library, NotFoundError

from .annotate import label_face, mark_face, undo_label, unmark_not_face
from .autoround import answer
from .core import library_backbone, load_loop
from .errors import ServiceError
from .rounds import review_precision
from .settings import REVIEW_SAMPLES, SCOPE_REVIEW
from .undo import restore_auto, undoable
from .views import ReviewItem


def live_auto(lib: Library, face_id: int, person_id: int) -> dict:
    """The live auto-label of ``face_id`` as ``person_id`` (NotFoundError if a round replaced it)."""
    for r in lib.label_rows(("auto",), face_id=face_id):
        if r["person_id"] == person_id:
            return r
    raise NotFoundError(f"face {face_id} has no live auto-label for person {person_id} (a new round replaced it?)")


def engine_recert(lib: Library, face_id: int, action: str) -> None:
    """Tell the stored loop that a flagged human label was confirmed (``confirm``) or un-confirmed (``reset``)."""
    backbone = library_backbone(lib)
    active = load_loop(lib, backbone)
    if active is None or face_id not in set(active.face_ids_.tolist()):
        return
    if action == "confirm":
        active.confirm([face_id])
    else:
        row = int(np.flatnonzero(active.face_ids_ == face_id)[0])
        recert = getattr(active.engine_, "recert_", None)
        if recert is None:
            return
        recert.reset([row])
    lib.save_loop_state(backbone, active.state_dict(), lib.last_round_id())


def _check_sample(sample: str) -> None:
    if sample not in REVIEW_SAMPLES:
        raise ValueError(f"unknown review sample {sample!r}; valid choices: {', '.join(REVIEW_SAMPLES)}")


@undoable("review_accept", lambda p: f"accepted the auto-label of face {p['face_id']}")
def _undo_review_accept(svc: Any, lib: Library, p: dict, annotator: str) -> None:
    undo_label(svc, lib, p, annotator)
    lib.withdraw_review(p["review_id"])


@undoable("review_accept_all", lambda p: f"accepted {len(p['items'])} auto-labels")
def _undo_review_accept_all(svc: Any, lib: Library, p: dict, annotator: str) -> None:
    for item in p["items"]:
        _undo_review_accept(svc, lib, item, annotator)


@undoable("review_reject", lambda p: f"rejected the auto-label of face {p['face_id']}")
def _undo_review_reject(svc: Any, lib: Library, p: dict, annotator: str) -> None:
    if p.get("rejection_added"):
        lib.remove_rejection(p["face_id"], p["person_id"], annotator)
    restore_auto(lib, [p["label_id"]], annotator)
    lib.withdraw_review(p["review_id"])


@undoable("confirm_flag", lambda p: f"confirmed the flagged label of face {p['face_id']}")
def _undo_confirm_flag(svc: Any, lib: Library, p: dict, annotator: str) -> None:
    last = lib.last_round()
    if last is not None and last["id"] == p["round"] and p["face_id"] not in last["flagged"]:
        lib.set_round_flagged(last["id"], last["flagged"] + [p["face_id"]])
    engine_recert(lib, p["face_id"], "reset")


CONFLICT_DECISIONS = ("keep_label", "not_face", "stranger")


@undoable("resolve_conflict", lambda p: f"decided the conflict on face {p['face_id']}: {p['decision']}")
def _undo_resolve_conflict(svc: Any, lib: Library, p: dict, annotator: str) -> None:
    if p.get("marked"):
        unmark_not_face(lib, p["marked"], annotator)
    lib.resolve_conflict(p["conflict"], None, annotator)


class ReviewMixin:
    """``review_sample``, ``accept_auto`` / ``reject_auto``, ``precision``, flagged labels."""

    def review_sample(self, annotator: str) -> list[ReviewItem]:
        """Auto-labels to re-certify: a random sample (stable for this annotator and round) and the
        lowest-confidence ones, minus those already reviewed."""
        annotator = self._check_annotator(annotator)
        with self._lock:
            lib = self.library
            loop = self.loop_settings()
            autos = sorted(lib.label_rows(("auto",)), key=lambda r: r["face_id"])
            done = {(r["face_id"], r["person_id"]) for r in lib.reviews()}
            names = lib.names_of_people()
            rng = np.random.default_rng(zlib.crc32(f"{lib.last_round_id()}:{annotator}".encode()))
            items: list[ReviewItem] = []
            taken: set[int] = set()
            for i in rng.permutation(len(autos)):
                if len(items) >= loop.review_random:
                    break
                r = autos[int(i)]
                if (r["face_id"], r["person_id"]) in done:
                    continue
                items.append(ReviewItem(r["face_id"], r["person_id"], names.get(r["person_id"], "?"),
                                        float(r["confidence"] or 0), "random", r["id"], r["round"]))
                taken.add(r["face_id"])
            low = [r for r in sorted(autos, key=lambda r: (r["confidence"] or 0, r["face_id"]))
                   if r["face_id"] not in taken and (r["face_id"], r["person_id"]) not in done]
            for r in low[:loop.review_low]:
                items.append(ReviewItem(r["face_id"], r["person_id"], names.get(r["person_id"], "?"),
                                        float(r["confidence"] or 0), "low", r["id"], r["round"]))
            return items

    def _review(self, face_id: int, person_id: int, annotator: str, sample: str, correct: bool,
                apply: Callable[[Library, dict, int, str], Any]) -> Any:
        """Record the review of the live auto-label ``face_id -> person_id``, then ``apply`` the verdict
        (one transaction)."""
        annotator = self._check_annotator(annotator)
        _check_sample(sample)
        with self._lock, self.library.transaction():
            lib = self.library
            auto = live_auto(lib, face_id, person_id)
            rid = lib.add_review(face_id, person_id, auto["round"], sample, correct, annotator)
            return apply(lib, auto, rid, annotator)

    @answer
    def accept_auto(self, face_id: int, person_id: int, annotator: str, sample: str = "random") -> int:
        """The auto-label is right: it becomes a human label; counted for the precision estimate."""
        def accept(lib: Library, auto: dict, rid: int, who: str) -> int:
            payload = label_face(lib, face_id, person_id, who, confidence=1.0)
            payload["review_id"] = rid
            lib.add_action(who, SCOPE_REVIEW, "review_accept", payload)
            return payload["label_id"]

        return self._review(face_id, person_id, annotator, sample, True, accept)

    @answer
    def accept_all_auto(self, items: Sequence[tuple[int, int, str]], annotator: str) -> int:
        """Accept every shown auto-label ``(face_id, person_id, sample)`` in one action (one undo); those a
        new round replaced meanwhile are left out. Returns how many were accepted."""
        annotator = self._check_annotator(annotator)
        for _, _, sample in items:
            _check_sample(sample)
        with self._lock, self.library.transaction():
            lib = self.library
            done = []
            for face_id, person_id, sample in items:
                try:
                    auto = live_auto(lib, int(face_id), int(person_id))
                except NotFoundError:
                    continue
                rid = lib.add_review(auto["face_id"], auto["person_id"], auto["round"], sample, True, annotator)
                payload = label_face(lib, auto["face_id"], auto["person_id"], annotator, confidence=1.0)
                payload["review_id"] = rid
                done.append(payload)
            if not done:
                raise ServiceError(f"none of the {len(items)} auto-labels shown is still live (a new round "
                                   "replaced them); reload the page")
            lib.add_action(annotator, SCOPE_REVIEW, "review_accept_all", {"items": done})
            return len(done)

    @answer
    def reject_auto(self, face_id: int, person_id: int, annotator: str, sample: str = "random") -> None:
        """The auto-label is wrong: revoked, and the face is never auto-labelled or suggested as that person."""
        def reject(lib: Library, auto: dict, rid: int, who: str) -> None:
            lib.revoke_label(auto["id"], who)
            added = lib.add_rejection(face_id, person_id, who)
            lib.add_action(who, SCOPE_REVIEW, "review_reject", {
                "face_id": face_id, "person_id": person_id, "label_id": auto["id"], "review_id": rid,
                "rejection_added": added})

        self._review(face_id, person_id, annotator, sample, False, reject)

    def precision(self, sample: str = "random", confidence: float = 0.95) -> Any:
        """Auto-label precision from the reviewed ``sample`` (Wilson interval; random sample: unbiased)."""
        _check_sample(sample)
        return review_precision(self.library, sample, confidence)

    def flagged_labels(self) -> list[dict]:
        """Human labels the last round flagged as suspicious (re-certification failed repeatedly)."""
        with self._lock:
            lib = self.library
            last = lib.last_round()
            if last is None:
                return []
            out = []
            for f in last["flagged"]:
                rows = lib.label_rows(("human", "seed"), face_id=f)
                if rows and rows[0]["created_at"] <= last["started_at"]:  # newer labels: a correction
                    r = rows[0]
                    out.append({"face_id": f, "person_id": r["person_id"], "name": lib.person_name(r["person_id"]),
                                "annotator": r["annotator"], "source": r["source"], "label_id": r["id"]})
            return out

    def confirm_flag(self, face_id: int, annotator: str) -> None:
        """The flagged human label is right: it stops being flagged and is trained on again."""
        annotator = self._check_annotator(annotator)
        if self.jobs.running("round"):
            raise ServiceError("a round is running; confirm flagged labels after it finishes")
        with self._lock, self.library.transaction():
            lib = self.library
            last = lib.last_round()
            if last is None or face_id not in last["flagged"]:
                raise NotFoundError(f"face {face_id} is not flagged")
            engine_recert(lib, face_id, "confirm")
            lib.set_round_flagged(last["id"], [f for f in last["flagged"] if f != face_id])
            lib.log_event("flag_confirmed", annotator, face_id=face_id)
            lib.add_action(annotator, SCOPE_REVIEW, "confirm_flag", {"face_id": face_id, "round": last["id"]})

    def open_conflicts(self) -> list[dict]:
        """Undecided conflicts: the face, the label in question (person, who gave it) and who objected."""
        with self._lock:
            lib = self.library
            out = []
            for c in lib.conflicts():
                lab = lib.label(c["label_id"]) if c["label_id"] is not None else None
                out.append({**c, "person_id": lab["person_id"] if lab else None,
                            "name": lib.person_name(lab["person_id"]) if lab else None,
                            "labelled_by": lab["annotator"] if lab else None,
                            "label_live": bool(lab) and not lab["revoked"]})
            return out

    def resolve_conflict(self, conflict_id: int, decision: str, reviewer: str) -> None:
        """Decide a conflict: ``keep_label`` (the face stays labelled), ``not_face`` or ``stranger`` (marked
        so, labels revoked). Undoable on the Review page."""
        reviewer = self._check_annotator(reviewer)
        if decision not in CONFLICT_DECISIONS:
            raise ValueError(f"unknown decision {decision!r}; valid choices: {', '.join(CONFLICT_DECISIONS)}")
        with self._lock, self.library.transaction():
            lib = self.library
            c = lib.conflict(conflict_id)
            marked = None if decision == "keep_label" else mark_face(lib, c["face_id"], decision, reviewer)
            lib.resolve_conflict(conflict_id, decision, reviewer)
            lib.add_action(reviewer, SCOPE_REVIEW, "resolve_conflict", {
                "face_id": c["face_id"], "conflict": conflict_id, "decision": decision, "marked": marked})
