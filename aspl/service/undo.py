"""Undo: an explicit registry ``kind -> (describe, undo)`` for every action the service records.

Each module that records an action kind registers it here with :func:`undoable`;
:class:`UndoMixin` looks the kind up in :data:`UNDO` (never by method name), so
an action without a registered undo is a clear error, and a test can check that
every recorded kind has one.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from storage import LabelConflictError, Library, NotFoundError
from storage.errors import PersonInUseError

from .errors import NothingToUndoError, ServiceError
from .settings import SCOPE_ANNOTATE, SCOPES

#: ``undo(service, library, payload, annotator)``: reverts one action inside the caller's transaction.
UndoFn = Callable[[Any, Library, dict, str], None]


@dataclass(frozen=True)
class Undoable:
    """How to show and how to revert one kind of action."""

    describe: Callable[[dict], str]
    undo: UndoFn


UNDO: dict[str, Undoable] = {}


def undoable(kind: str, describe: Callable[[dict], str]) -> Callable[[UndoFn], UndoFn]:
    """Register ``fn`` as the undo of action ``kind`` (described by ``describe(payload)``)."""
    def register(fn: UndoFn) -> UndoFn:
        if kind in UNDO:
            raise ValueError(f"action kind {kind!r} already has an undo ({UNDO[kind].undo.__qualname__})")
        UNDO[kind] = Undoable(describe, fn)
        return fn
    return register


def current_auto_ids(lib: Library, label_ids: Sequence[int]) -> list[int]:
    """Those of ``label_ids`` written by the latest round (older ones were replaced since)."""
    last = lib.last_round_id()
    out = []
    for i in label_ids:
        with contextlib.suppress(NotFoundError):  # replaced by a later round
            if lib.label(i)["round"] == last:
                out.append(i)
    return out


def restore_auto(lib: Library, label_ids: Sequence[int], annotator: str) -> None:
    """Bring back revoked auto-labels that the latest round still stands behind."""
    for lid in current_auto_ids(lib, label_ids):
        with contextlib.suppress(LabelConflictError):
            lib.unrevoke_label(lid, annotator)


def restore_labels(lib: Library, label_ids: Sequence[int], annotator: str) -> None:
    """Un-revoke labels: human ones always, auto ones only if the latest round wrote them; a label of a
    person deleted since is an error naming it."""
    for lid in label_ids:
        lab = lib.label(lid)
        if lib.person_deleted(lab["person_id"]):
            raise ServiceError(f"label {lid} names a deleted person ({lib.person_name(lab['person_id'])}); "
                               "undo that deletion on the People page first")
        if lab["source"] == "auto":
            restore_auto(lib, [lid], annotator)
        else:
            lib.unrevoke_label(lid, annotator)


def drop_created_person(lib: Library, p: dict, annotator: str) -> None:
    """After undoing an action that created its person (``p['created_person']``), delete that person
    unless faces are labelled as it since (no orphan people left behind by an undo)."""
    pid = p.get("created_person")
    if pid is not None:
        with contextlib.suppress(NotFoundError, PersonInUseError):
            lib.delete_person(int(pid), annotator)


class UndoMixin:
    """``last_action``, ``describe`` and ``undo`` over the registry."""

    def last_action(self, annotator: str, scope: str = SCOPE_ANNOTATE) -> dict | None:
        """``annotator``'s latest action in ``scope`` that is not undone yet (None if none)."""
        acts = self.library.actions(actor=annotator, scope=scope, limit=1)
        return acts[0] if acts else None

    @staticmethod
    def describe(action: dict) -> str:
        """A short human-readable line for an action."""
        entry = UNDO.get(action["kind"])
        return action["kind"] if entry is None else entry.describe(action["payload"])

    def undo(self, annotator: str, scope: str = SCOPE_ANNOTATE) -> dict:
        """Undo ``annotator``'s latest action in ``scope``; returns that action. On the Annotate page the
        face comes back as the next one."""
        annotator = self._check_annotator(annotator)
        if scope not in SCOPES:
            raise ValueError(f"unknown undo scope {scope!r}; valid choices: {', '.join(SCOPES)}")
        with self._lock, self.library.transaction():
            lib = self.library
            act = self.last_action(annotator, scope)
            if act is None:
                raise NothingToUndoError(f"{annotator} has nothing to undo on the {scope} page")
            entry = UNDO.get(act["kind"])
            if entry is None:
                raise ServiceError(f"action kind {act['kind']!r} cannot be undone; undoable kinds: "
                                   f"{', '.join(sorted(UNDO))}")
            p = act["payload"]
            entry.undo(self, lib, p, annotator)
            drop_created_person(lib, p, annotator)
            lib.mark_action_undone(act["id"], annotator)
            if scope == SCOPE_ANNOTATE and "face_id" in p:
                lib.lease(p["face_id"], annotator, self.loop_settings().lease_seconds)
            self._forget_model()
            return act
