"""People: rename, merge, move a face, remove a label; each one undoable and logged."""
from __future__ import annotations

from typing import Any

from storage import Library, NotFoundError

from .annotate import label_face, undo_label
from .errors import ServiceError
from .settings import SCOPE_PEOPLE
from .undo import restore_labels, undoable


def resolve(lib: Library, person: int | str, actor: str, create: bool = True) -> int:
    """The live person id of ``person`` (an id, or a name: created if new and ``create``)."""
    if isinstance(person, str):
        return lib.person_id(person, create=create, actor=actor)
    lib.person_name(int(person))
    return lib.resolve_person(int(person))


@undoable("rename", lambda p: f"renamed {p['old']!r} to {p['new']!r}")
def _undo_rename(svc: Any, lib: Library, p: dict, annotator: str) -> None:
    lib.rename_person(p["person_id"], p["old"], annotator)


@undoable("merge", lambda p: f"merged {p['src_name']!r} into {p['dst_name']!r}")
def _undo_merge(svc: Any, lib: Library, p: dict, annotator: str) -> None:
    lib.set_merged_into(p["src"], None, annotator)
    lib.move_labels(p["label_ids"], p["src"], annotator)
    for f in p.get("rejections_copied", []):
        lib.remove_rejection(f, p["dst"], annotator)


@undoable("move", lambda p: f"moved face {p['face_id']} to {p.get('name', p['person_id'])}")
def _undo_move(svc: Any, lib: Library, p: dict, annotator: str) -> None:
    undo_label(svc, lib, p, annotator)
    for lid in p.get("revoked_human", []):
        lib.unrevoke_label(lid, annotator)
    if p.get("rejected_person") is not None:
        lib.remove_rejection(p["face_id"], p["rejected_person"], annotator)


@undoable("remove_label", lambda p: f"removed the label of face {p['face_id']}")
def _undo_remove_label(svc: Any, lib: Library, p: dict, annotator: str) -> None:
    for pid in p.get("rejected", []):
        lib.remove_rejection(p["face_id"], pid, annotator)
    restore_labels(lib, p["label_ids"], annotator)


class PeopleMixin:
    """``people``, ``person_faces``, ``rename_person``, ``merge_people``, ``move_face``, ``remove_label``."""

    def people(self) -> list[dict]:
        """Live people with counts of human and auto labels."""
        return self.library.people()

    def person_faces(self, person_id: int, limit: int | None = None) -> list[dict]:
        """Faces labelled as ``person_id`` (human labels first, then auto-labels by confidence)."""
        return self.library.person_faces(person_id, limit=limit)

    def rename_person(self, person_id: int, name: str, actor: str) -> None:
        """Rename a person (a name already taken is an error naming it)."""
        actor = self._check_annotator(actor)
        with self._lock, self.library.transaction():
            old = self.library.rename_person(person_id, name, actor)
            new = self.library.person_name(person_id)
            self.library.add_action(actor, SCOPE_PEOPLE, "rename", {"person_id": person_id, "old": old, "new": new})

    def merge_people(self, src: int, dst: int, actor: str) -> int:
        """Merge person ``src`` into ``dst`` (labels and rejections move); returns the labels moved."""
        actor = self._check_annotator(actor)
        with self._lock, self.library.transaction():
            lib = self.library
            src, dst = lib.resolve_person(int(src)), lib.resolve_person(int(dst))
            if src == dst:
                raise ServiceError(f"cannot merge person {src} into itself")
            src_name, dst_name = lib.person_name(src), lib.person_name(dst)
            moved = lib.person_label_ids(src)
            lib.move_labels(moved, dst, actor)
            copied = [f for f in lib.person_rejections(src) if lib.add_rejection(f, dst, actor)]
            lib.set_merged_into(src, dst, actor)
            lib.add_action(actor, SCOPE_PEOPLE, "merge", {"src": src, "dst": dst, "src_name": src_name,
                                                          "dst_name": dst_name, "label_ids": moved,
                                                          "rejections_copied": copied})
            self._forget_model()
            return len(moved)

    def move_face(self, face_id: int, to: int | str, actor: str) -> int:
        """Re-label a face as another person (id, or a name: created if new); the old person is rejected
        for it. Returns the new label id."""
        actor = self._check_annotator(actor)
        with self._lock, self.library.transaction():
            lib = self.library
            pid = resolve(lib, to, actor)
            live = lib.label_rows(face_id=face_id)
            old = next((r for r in live if r["source"] in ("human", "seed")), None) or \
                next((r for r in live if r["source"] == "auto"), None)
            if old is not None and old["person_id"] == pid:
                raise ServiceError(f"face {face_id} is already labelled as {lib.person_name(pid)}")
            revoked = []
            rejected = False
            if old is not None:
                if old["source"] != "auto":
                    lib.revoke_label(old["id"], actor)
                    revoked.append(old["id"])
                rejected = lib.add_rejection(face_id, old["person_id"], actor)
            payload = label_face(lib, face_id, pid, actor)
            payload.update({"name": lib.person_name(pid), "revoked_human": revoked,
                            "rejected_person": old["person_id"] if rejected and old else None})
            lib.add_action(actor, SCOPE_PEOPLE, "move", payload)
            return payload["label_id"]

    def remove_label(self, face_id: int, actor: str, person_id: int | None = None) -> int:
        """Remove a wrong label (human or auto) from a face; the person is rejected for it. Returns labels removed."""
        actor = self._check_annotator(actor)
        with self._lock, self.library.transaction():
            lib = self.library
            rows = [r for r in lib.label_rows(face_id=face_id) if person_id is None or r["person_id"] == person_id]
            if not rows:
                who = f" for person {person_id}" if person_id else ""
                raise NotFoundError(f"face {face_id} has no live label{who}")
            rejected = []
            for r in rows:
                lib.revoke_label(r["id"], actor)
                if lib.add_rejection(face_id, r["person_id"], actor):
                    rejected.append(r["person_id"])
            lib.add_action(actor, SCOPE_PEOPLE, "remove_label",
                           {"face_id": face_id, "label_ids": [r["id"] for r in rows], "rejected": rejected})
            return len(rows)
