"""Annotating one face at a time: the next face under a lease, suggestions, and the four answers.

Answers are confirm (an existing person), new person, not a face and skip; each
is one transaction that records an undoable action (see :mod:`.undo`).
"""
from __future__ import annotations

import contextlib
import functools
from typing import Any

import numpy as np

from storage import Library, NotFoundError

from .errors import FaceClosedError, ServiceError
from .settings import SCOPE_ANNOTATE
from .undo import restore_auto, restore_labels, undoable
from .views import FaceView, Suggestion


def open_face(lib: Library, face_id: int) -> None:
    """Raise :class:`FaceClosedError` unless ``face_id`` can take a label (status ``ok``)."""
    f = lib.face(face_id)
    if f["status"] != "ok":
        raise FaceClosedError(f"face {face_id} is marked '{f['status']}'; undo that first")


def label_face(lib: Library, face_id: int, person_id: int, annotator: str,
               confidence: float = 1.0) -> dict[str, Any]:
    """Human label (auto-labels on the face revoked, a rejection of that person lifted); the undo payload."""
    open_face(lib, face_id)
    lib.person_name(person_id)
    removed_rej = lib.remove_rejection(face_id, person_id, annotator)
    revoked = lib.revoke_face_labels(face_id, ("auto",), annotator)
    lid = lib.add_label(face_id, person_id, "human", confidence=confidence, round=lib.last_round_id(),
                        annotator=annotator)
    return {"face_id": face_id, "person_id": person_id, "label_id": lid, "revoked_auto": revoked,
            "removed_rejection": removed_rej}


MARKS = ("not_face", "stranger")
SUGGEST_TEMPERATURE = 0.1  # softmax temperature of the SVM scores (as CEAL's probabilities in the engine)
SUGGEST_NEIGHBOURS = 32


@functools.cache
def _blas_controller() -> Any:
    """threadpoolctl's view of the loaded BLAS libraries, inspected once (each inspection costs ~1 ms)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _one_blas_thread() -> Any:
    """A context limiting BLAS to one thread. A one-row product gains nothing from a second thread, and
    OpenBLAS's idle workers spin for a while after each call: a key press cost twice its wall time in CPU."""
    return _blas_controller().limit(limits=1, user_api="blas")


def neighbour_votes(order: list[int], human: dict[int, int], auto: dict[int, int]
                    ) -> tuple[dict[int, float], dict[int, int]]:
    """``(votes, nearest)`` of a face's labelled neighbours ``order`` (nearest first): each labelled
    neighbour votes for its person with weight 1 (human or seed label) or 0.5 (auto-label), divided by
    1 + its rank among the labelled ones; ``nearest`` is each voted person's nearest such face."""
    votes: dict[int, float] = {}
    near: dict[int, int] = {}
    rank = 0
    for n in order:
        p, w = (human[n], 1.0) if n in human else (auto[n], 0.5) if n in auto else (None, 0.0)
        if p is None:
            continue
        votes[p] = votes.get(p, 0.0) + w / (1.0 + rank)
        near.setdefault(p, n)
        rank += 1
    return votes, near


def merge_evidence(clf: dict[int, float], votes: dict[int, float]) -> dict[int, float]:
    """One probability per person from the classifiers' softmax ``clf`` and neighbour ``votes`` (any
    non-negative weights; normalised here): their mean where both exist, else the one that does."""
    total = sum(votes.values())
    nn = {p: v / total for p, v in votes.items()} if total > 0 else {}
    if not clf or not nn:
        return dict(clf or nn)
    return {p: 0.5 * clf.get(p, 0.0) + 0.5 * nn.get(p, 0.0) for p in set(clf) | set(nn)}  # face statuses an annotator can set (both undoable)


def mark_face(lib: Library, face_id: int, status: str, actor: str) -> dict[str, Any]:
    """Set the face's status to ``status`` (one of :data:`MARKS`) and revoke its live labels; returns the
    undo payload."""
    if status not in MARKS:
        raise ValueError(f"unknown mark {status!r}; valid choices: {', '.join(MARKS)}")
    prev = lib.set_face_status(face_id, status, actor)
    revoked = [r["id"] for r in lib.label_rows(face_id=face_id)]
    for lid in revoked:
        lib.revoke_label(lid, actor)
    return {"face_id": face_id, "previous": prev, "revoked": revoked, "status": status}


def mark_not_face(lib: Library, face_id: int, actor: str) -> dict[str, Any]:
    """:func:`mark_face` with ``not_face``."""
    return mark_face(lib, face_id, "not_face", actor)


def unmark_not_face(lib: Library, p: dict, actor: str) -> None:
    """Undo :func:`mark_face` (any mark) from its payload."""
    lib.set_face_status(p["face_id"], p["previous"], actor)
    restore_labels(lib, p.get("revoked", []), actor)


@undoable("label", lambda p: f"labelled face {p['face_id']} as {p.get('name', p['person_id'])}")
def undo_label(svc: Any, lib: Library, p: dict, annotator: str) -> None:
    """Revoke the human label, bring back the round's auto-labels, restore a lifted rejection."""
    with contextlib.suppress(NotFoundError):
        lib.revoke_label(p["label_id"], annotator)
    restore_auto(lib, p.get("revoked_auto", []), annotator)
    if p.get("removed_rejection"):
        lib.add_rejection(p["face_id"], p["person_id"], annotator)


@undoable("not_face", lambda p: f"marked face {p['face_id']} as not a face")
def _undo_not_face(svc: Any, lib: Library, p: dict, annotator: str) -> None:
    unmark_not_face(lib, p, annotator)


@undoable("stranger", lambda p: f"marked face {p['face_id']} as a stranger")
def _undo_stranger(svc: Any, lib: Library, p: dict, annotator: str) -> None:
    unmark_not_face(lib, p, annotator)


@undoable("conflict", lambda p: f"sent face {p['face_id']} to review as {p.get('kind', 'not_face').replace('_', ' ')}")
def _undo_conflict(svc: Any, lib: Library, p: dict, annotator: str) -> None:
    if lib.conflict(p["conflict"])["resolved_at"] is not None:
        raise ServiceError(f"a reviewer already decided the conflict on face {p['face_id']}")
    lib.withdraw_conflict(p["conflict"])


@undoable("skip", lambda p: f"skipped face {p['face_id']}")
def _undo_skip(svc: Any, lib: Library, p: dict, annotator: str) -> None:
    lib.remove_skip(p["face_id"], annotator)


class AnnotateMixin:
    """``next_face``, ``remaining``, ``face_view``, ``suggestions`` and the answers."""

    def person_names(self) -> list[str]:
        """Names of the live people, case-insensitively sorted."""
        return sorted(self.library.names_of_people().values(), key=str.lower)

    def person_name(self, person_id: int) -> str:
        """The name of ``person_id`` (NotFoundError if there is no such person)."""
        return self.library.person_name(person_id)

    def has_faces(self) -> bool:
        """True once the library holds at least one detected face."""
        return self.library.has_faces()

    def next_face(self, annotator: str) -> int | None:
        """The face to show ``annotator`` now, leased to them (None when no face is left for them).

        Chosen and leased in one write transaction (see :meth:`storage.Library.take_next_face`), so two
        annotators, even on two processes, never get the same face.
        """
        annotator = self._check_annotator(annotator)
        with self._lock:
            lib = self.library
            return lib.take_next_face(annotator, self.loop_settings().lease_seconds, lib.last_round_id())

    def remaining(self) -> int:
        """Faces still without an answer: no live label of any kind (human, seed or auto), not a stranger,
        not marked not a face, not hidden by the quality thresholds. 0 means the library is done."""
        return self.library.counts()["faces:open"]  # trigger-kept (m012)

    def face_view(self, face_id: int) -> FaceView:
        """What the Annotate page shows about ``face_id``: box, status, live labels, queue rank."""
        with self._lock:
            lib = self.library
            f = lib.face(face_id)
            labels = lib.label_rows(face_id=face_id)
            human = next((r for r in labels if r["source"] in ("human", "seed")), None)
            auto = next((r for r in labels if r["source"] == "auto"), None)
            for r in (human, auto):
                if r is not None:
                    r["name"] = lib.person_name(r["person_id"])
            q = lib.queue()
            return FaceView(face_id, f["path"], (f["x1"], f["y1"], f["x2"], f["y2"]), f["prob"], f["status"],
                            human, auto, q.index(face_id) if face_id in q else None)

    def suggestions(self, face_id: int, k: int = 5) -> list[Suggestion]:
        """Top-``k`` people for a face, by one calibrated ranking (:func:`merge_evidence`): the classifiers'
        scores as a softmax over people, and the votes of the face's nearest labelled neighbours (human or
        seed labels count 1, auto-labels 0.5, nearer ones more), averaged where both exist. People with a
        single label, whom no classifier models yet, come in through their neighbours. Rejected people and
        merged-away people never. ``score`` is the merged probability (0-1)."""
        with self._lock:
            lib = self.library
            backbone = self.backbone
            x = lib.embedding(face_id, backbone)
            if x is None:
                return []
            rejected = {p for _, p in lib.rejections(face_id)}
            clf: dict[int, float] = {}
            model = self._model()
            probs = None
            if model is not None and len(getattr(model, "classes_", [])) and model.n_features_in_ == x.size:
                with _one_blas_thread():  # one row: BLAS threads would spin on the other core afterwards
                    sc = np.asarray(model.decision_function(x[None, :])[0], np.float64)
                z = np.exp((sc - sc.max()) / SUGGEST_TEMPERATURE)
                probs = z / z.sum()
                # only the most probable people can rank in the top k: with P people the other entries
                # would cost a dict, a merge and a name lookup each (10k people: 30 ms a key press)
                m = min(probs.size, k + len(rejected) + 1)
                top = np.argpartition(-probs, m - 1)[:m] if m < probs.size else np.arange(probs.size)
                clf = {int(model.classes_[i]): float(probs[i]) for i in top}
            votes: dict[int, float] = {}
            near: dict[int, int] = {}
            idx = self._index(backbone)
            if idx is not None and idx.ntotal > 1:
                _, nbrs = idx.search(x, min(SUGGEST_NEIGHBOURS, idx.ntotal))
                order = [int(n) for n in nbrs[0] if n >= 0 and n != face_id]
                human = lib.face_persons(order)
                auto = lib.face_persons([n for n in order if n not in human], ("auto",))
                votes, near = neighbour_votes(order, human, auto)
            if probs is not None:  # a voted person's own classifier probability, though not in the top
                cls = np.asarray(model.classes_)
                for i in np.flatnonzero(np.isin(cls, [p for p in votes if p not in clf])):
                    clf[int(cls[i])] = float(probs[i])

            def rank(clf: dict[int, float]) -> tuple[dict[int, float], dict[int, str], list[int]]:
                merged = merge_evidence(clf, votes)
                names = lib.names_of_people([p for p in merged if p not in rejected])
                return merged, names, sorted((p for p in merged if p in names), key=lambda p: -merged[p])[:k]

            merged, names, ranked = rank(clf)
            if len(ranked) < k and probs is not None and len(clf) < probs.size:
                # people merged away since the round filled the top: rank everyone (rare)
                clf = {int(c): float(v) for c, v in zip(model.classes_, probs)}
                merged, names, ranked = rank(clf)
            source = "classifier+neighbours" if clf and votes else "classifier" if clf else "neighbours"
            res = [Suggestion(p, names[p], merged[p], source, near.get(p)) for p in ranked]
            for sg in res:
                if sg.thumb_face_id is None:
                    sg.thumb_face_id = self.person_thumb(sg.person_id)
            return res

    def confirm(self, face_id: int, person_id: int, annotator: str, scope: str = SCOPE_ANNOTATE) -> int:
        """Label ``face_id`` as ``person_id`` (a human label); returns the label id."""
        lid = self._confirm(face_id, person_id, annotator, scope)
        self.after_answer(annotator)
        return lid

    def _confirm(self, face_id: int, person_id: int, annotator: str, scope: str,
                 extra: dict[str, Any] | None = None) -> int:
        annotator = self._check_annotator(annotator)
        with self._lock, self.library.transaction():
            lib = self.library
            payload = {**label_face(lib, face_id, lib.resolve_person(person_id), annotator), **(extra or {})}
            lib.release_leases(annotator, [face_id])
            payload["name"] = lib.person_name(payload["person_id"])
            lib.add_action(annotator, scope, "label", payload)
            return payload["label_id"]

    def new_person(self, face_id: int, name: str, annotator: str, scope: str = SCOPE_ANNOTATE) -> int:
        """Label a face with a person's name, creating the person if new; returns the label id."""
        annotator = self._check_annotator(annotator)
        with self._lock, self.library.transaction():
            lib = self.library
            try:
                pid, created = lib.person_id(name), False
            except NotFoundError:
                pid, created = lib.person_id(name, create=True, actor=annotator), True
            lid = self._confirm(face_id, pid, annotator, scope, {"created_person": pid if created else None})
        self.after_answer(annotator)
        return lid

    def not_face(self, face_id: int, annotator: str) -> bool:
        """Mark a detection as not a face (its labels revoked; never shown or auto-labelled again).

        If another annotator gave the face a human label, nothing is revoked: a conflict goes to the Review
        page for a reviewer to decide (see :meth:`resolve_conflict`). Returns True if the face was marked,
        False if a conflict was raised instead.
        """
        return self._mark(face_id, annotator, "not_face")

    def stranger(self, face_id: int, annotator: str) -> bool:
        """Mark a real face as a stranger: somebody nobody needs named (a bystander, a face in a crowd).

        Strangers leave the queue, the training set and "remaining"; unlike :meth:`not_face` they stay
        faces (exports list them). Another annotator's label raises a conflict, as with :meth:`not_face`.
        Returns True if the face was marked, False if a conflict was raised instead.
        """
        return self._mark(face_id, annotator, "stranger")

    def _mark(self, face_id: int, annotator: str, status: str) -> bool:
        annotator = self._check_annotator(annotator)
        with self._lock, self.library.transaction():
            lib = self.library
            theirs = [r for r in lib.label_rows(("human", "seed"), face_id=face_id)
                      if r["source"] == "human" and r["annotator"] != annotator]
            lib.release_leases(annotator, [face_id])
            if theirs:
                cid = lib.add_conflict(face_id, status, theirs[0]["id"], annotator)
                lib.add_action(annotator, SCOPE_ANNOTATE, "conflict", {"face_id": face_id, "conflict": cid,
                                                                        "label_id": theirs[0]["id"], "kind": status})
                marked = False
            else:
                lib.add_action(annotator, SCOPE_ANNOTATE, status, mark_face(lib, face_id, status, annotator))
                marked = True
        self.after_answer(annotator)
        return marked

    def skip(self, face_id: int, annotator: str) -> None:
        """Put a face aside for this annotator until the next round (others still get it)."""
        annotator = self._check_annotator(annotator)
        with self._lock, self.library.transaction():
            lib = self.library
            lib.face(face_id)
            lib.add_skip(face_id, annotator, lib.last_round_id())
            lib.release_leases(annotator, [face_id])
            lib.add_action(annotator, SCOPE_ANNOTATE, "skip", {"face_id": face_id})
            lib.log_event("face_skipped", annotator, face_id=face_id)
