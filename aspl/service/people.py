"""People: rename, merge, move a face, remove a label, delete an empty person; each one undoable and logged.
Also the name box's resolution of a typed name to an existing person (:func:`name_matches`)."""
from __future__ import annotations

from typing import Any, Iterable

from storage import Library, NotFoundError

from .annotate import label_face, undo_label
from .errors import ServiceError
from .settings import SCOPE_PEOPLE
from .undo import restore_labels, undoable


def _norm(text: str) -> str:
    return " ".join(str(text).split()).casefold()


def same_name(a: str, b: str) -> bool:
    """Whether two names are the same person's name (case and spacing aside, as the library compares them)."""
    return _norm(a) == _norm(b)


def name_matches(text: str, names: Iterable[str]) -> list[str]:
    """The existing ``names`` a typed ``text`` may stand for: the one equal to it (case and spacing aside)
    alone, else every name it begins, ignoring case, in the order given; [] for a blank text."""
    t = _norm(text)
    if not t:
        return []
    names = list(names)
    exact = [n for n in names if _norm(n) == t]
    return exact[:1] if exact else [n for n in names if _norm(n).startswith(t)]


def resolve_name(text: str, names: Iterable[str]) -> str | None:
    """The existing name ``text`` stands for: equal to it (case and spacing aside), or the only name it
    begins ("angel" -> "Angelina Jolie"); None when it matches none or begins several."""
    m = name_matches(text, names)
    return m[0] if len(m) == 1 else None


def person_for(lib: Library, person: int | str, actor: str) -> tuple[int, bool]:
    """The live person id of ``person`` (an id, or a name: created if new) and whether it was created now."""
    if isinstance(person, str):
        try:
            return lib.person_id(person), False
        except NotFoundError:
            return lib.person_id(person, create=True, actor=actor), True
    lib.person_name(int(person))  # NotFoundError for an unknown id
    pid = lib.resolve_person(int(person))
    if lib.person_deleted(pid):
        raise NotFoundError(f"person {pid} ({lib.person_name(pid)}) was deleted; undo that on the People page")
    return pid, False


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
    restore_labels(lib, p.get("revoked_human", []), annotator)
    if p.get("rejected_person") is not None:
        lib.remove_rejection(p["face_id"], p["rejected_person"], annotator)


@undoable("delete_person", lambda p: f"deleted person {p['name']!r}")
def _undo_delete_person(svc: Any, lib: Library, p: dict, annotator: str) -> None:
    lib.restore_person(p, annotator)


@undoable("remove_label", lambda p: f"removed the label of face {p['face_id']}")
def _undo_remove_label(svc: Any, lib: Library, p: dict, annotator: str) -> None:
    for pid in p.get("rejected", []):
        lib.remove_rejection(p["face_id"], pid, annotator)
    restore_labels(lib, p["label_ids"], annotator)


class PeopleMixin:
    """``people``, ``person_faces``, ``rename_person``, ``merge_people``, ``move_face``, ``remove_label``,
    ``delete_person``, and the name box's ``name_matches`` / ``resolve_name``."""

    def name_matches(self, text: str) -> list[str]:
        """Existing people's names a typed ``text`` may stand for (see :func:`name_matches`)."""
        return name_matches(text, self.person_names())

    def resolve_name(self, text: str) -> str | None:
        """The existing person's name ``text`` stands for, or None (see :func:`resolve_name`)."""
        return resolve_name(text, self.person_names())

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
            gone = [p for p in (src, dst) if lib.person_deleted(p)]
            if gone:
                raise ServiceError(f"cannot merge: person {gone[0]} ({lib.person_name(gone[0])}) was deleted")
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
            pid, created = person_for(lib, to, actor)
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
                            "rejected_person": old["person_id"] if rejected and old else None,
                            "created_person": pid if created else None})
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

    def delete_person(self, person_id: int, actor: str) -> str:
        """Delete a person no face is labelled as (e.g. one left empty by moves); undoable on the People page.
        Returns its name; a person still in use is an error saying why."""
        actor = self._check_annotator(actor)
        with self._lock, self.library.transaction():
            snap = self.library.delete_person(int(person_id), actor)
            self.library.add_action(actor, SCOPE_PEOPLE, "delete_person", snap)
            return snap["name"]
