"""People (with merges), the labels that name faces, and "this face is not that person" rejections."""
from __future__ import annotations

from typing import Any, Sequence

from ._common import INTEGRITY_ERRORS, LABEL_SOURCES, _Host, _now
from .errors import LabelConflictError, NameConflictError, NotFoundError, PersonInUseError


class PeopleMixin(_Host):
    """Owns the ``people``, ``labels`` and ``rejections`` tables."""

    # ---------------------------------------------------------------- people
    def person_id(self, name: str, create: bool = False, actor: str | None = None) -> int:
        """Id of the person called ``name`` (case-insensitive), following merges."""
        name = " ".join(str(name).split())
        if not name:
            raise ValueError("a person's name cannot be empty")
        with self.transaction():
            row = self.db.execute("SELECT id, merged_into FROM people WHERE name = ?", [name]).fetchone()
            if row:
                return self._resolve(row[0])
            if not create:
                raise NotFoundError(f"no person named {name!r}")
            pid = self._insert("people", {"name": name, "created_at": _now()})
            self.log_event("person_created", actor, person_id=pid, name=name)
            return pid

    def _resolve(self, person_id: int) -> int:
        seen = set()
        pid = person_id
        while True:
            nxt = self._one("SELECT merged_into FROM people WHERE id = ?", [pid])
            if nxt is None or pid in seen:
                return int(pid)
            seen.add(pid)
            pid = nxt

    def resolve_person(self, person_id: int) -> int:
        """The live person a (possibly merged) person id stands for."""
        return self._resolve(person_id)

    def _merge_map(self) -> dict[int, int]:
        """Merged person id -> the live person id it stands for (merges followed), from one query over the
        merged people only; a person not in the map stands for itself (use ``m.get(p, p)``)."""
        parent = dict(self.db.execute("SELECT id, merged_into FROM people WHERE merged_into IS NOT NULL").fetchall())
        out = {}
        for pid in parent:
            seen, p = set(), pid
            while parent.get(p) is not None and p not in seen:
                seen.add(p)
                p = parent[p]
            out[pid] = p
        return out

    def people(self) -> list[dict]:
        """Live (not merged) people with their label counts by source."""
        return self._rows(
            "SELECT p.id, p.name, "
            "SUM(CASE WHEN l.source IN ('human','seed') THEN 1 ELSE 0 END) AS human, "
            "SUM(CASE WHEN l.source = 'auto' THEN 1 ELSE 0 END) AS auto "
            "FROM people p LEFT JOIN labels l ON l.person_id = p.id AND l.revoked = 0 "
            "WHERE p.merged_into IS NULL GROUP BY p.id ORDER BY p.name")

    def names_of_people(self, ids: Sequence[int] | None = None) -> dict[int, str]:
        """``id -> name`` of live (not merged) people, all or only ``ids`` (no label counts: cheap)."""
        if ids is None:
            rows = self.db.execute("SELECT id, name FROM people WHERE merged_into IS NULL").fetchall()
        else:
            ids = [int(i) for i in ids]
            rows = []
            for i in range(0, len(ids), 500):
                part = ids[i:i + 500]
                rows += self.db.execute(f"SELECT id, name FROM people WHERE merged_into IS NULL AND id IN "
                                        f"({','.join('?' * len(part))})", part).fetchall()
        return {int(i): n for i, n in rows}

    def person(self, person_id: int) -> dict:
        rows = self._rows("SELECT * FROM people WHERE id = ?", [person_id])
        if not rows:
            raise NotFoundError(f"person {person_id} not found")
        return rows[0]

    def person_name(self, person_id: int) -> str:
        name = self._one("SELECT name FROM people WHERE id = ?", [person_id])
        if name is None:
            raise NotFoundError(f"person {person_id} not found")
        return name

    def rename_person(self, person_id: int, name: str, actor: str | None = None) -> str:
        """Rename a person; returns the old name. :class:`NameConflictError` if another person has ``name``."""
        name = " ".join(str(name).split())
        if not name:
            raise ValueError("a person's name cannot be empty")
        with self.transaction():
            old = self.person_name(person_id)
            other = self._one("SELECT id FROM people WHERE name = ? AND id != ?", [name, person_id])
            if other is not None:
                raise NameConflictError(f"another person is already called {name!r} (id {other}); merge instead")
            self.db.execute("UPDATE people SET name = ? WHERE id = ?", [name, person_id])
            self.log_event("person_renamed", actor, person_id=person_id, old=old, new=name)
            return old

    def set_merged_into(self, person_id: int, target: int | None, actor: str | None = None) -> None:
        """Mark ``person_id`` as merged into ``target`` (None: unmerge)."""
        with self.transaction():
            self.person_name(person_id)
            if target is not None:
                self.person_name(target)
                if self._resolve(target) == person_id:
                    raise ValueError(f"cannot merge person {person_id} into {target}: that would make a cycle")
            self.db.execute("UPDATE people SET merged_into = ? WHERE id = ?", [target, person_id])
            self.log_event("person_merged" if target is not None else "person_unmerged", actor,
                           person_id=person_id, into=target)

    def delete_person(self, person_id: int, actor: str | None = None) -> dict[str, Any]:
        """Delete a person no face is labelled as: it leaves every list of people and its name is free again,
        while the rows that still name it (revoked labels, rejections, reviews) keep their ids for the undo
        history. Stored as a person merged into itself, renamed ``<name> (deleted #<id>)``. Returns
        ``{"person_id", "name"}`` for :meth:`restore_person`; :class:`PersonInUseError` when live labels name
        it or it is part of a merge."""
        with self.transaction():
            person = self.person(person_id)
            who = f"person {person_id} ({person['name']!r})"
            live = self._one("SELECT COUNT(*) FROM labels WHERE person_id = ? AND revoked = 0", [person_id])
            if live:
                raise PersonInUseError(f"{who} still names {live} face(s); move or remove those labels first")
            merged = [r[0] for r in self.db.execute(
                "SELECT name FROM people WHERE merged_into = ? AND id != ?", [person_id, person_id])]
            if merged or person["merged_into"] is not None:
                raise PersonInUseError(f"{who} is part of a merge ({', '.join(merged) or 'merged into another'}"
                                       "); undo the merge first")
            self.db.execute("UPDATE people SET merged_into = id, name = ? WHERE id = ?",
                            [f"{person['name']} (deleted #{person_id})", person_id])
            self.log_event("person_deleted", actor, person_id=person_id, name=person["name"])
            return {"person_id": person_id, "name": person["name"]}

    def person_deleted(self, person_id: int) -> bool:
        """Whether ``person_id`` was deleted (:meth:`delete_person`)."""
        return self._one("SELECT merged_into FROM people WHERE id = ?", [person_id]) == person_id

    def restore_person(self, deleted: dict[str, Any], actor: str | None = None) -> None:
        """Bring back a person removed by :meth:`delete_person` (its return value), under its name."""
        pid, name = int(deleted["person_id"]), deleted["name"]
        with self.transaction():
            if not self.person_deleted(pid):
                raise NotFoundError(f"person {pid} ({name!r}) is not deleted")
            other = self._one("SELECT id FROM people WHERE name = ?", [name])
            if other is not None:
                raise NameConflictError(f"cannot bring back person {pid}: person {other} is called {name!r} "
                                        "now; rename or merge it first")
            self.db.execute("UPDATE people SET merged_into = NULL, name = ? WHERE id = ?", [name, pid])
            self.log_event("person_restored", actor, person_id=pid, name=name)

    # ---------------------------------------------------------------- labels
    def add_label(self, face_id: int, person_id: int, source: str, confidence: float | None = None,
                  round: int | None = None, annotator: str | None = None) -> int:
        """Label a face. A second live human/seed label on one face raises :class:`LabelConflictError`."""
        if source not in LABEL_SOURCES:
            raise ValueError(f"label source {source!r} is not one of {', '.join(LABEL_SOURCES)}")
        with self.transaction():
            if self._one("SELECT 1 FROM faces WHERE id = ?", [face_id]) is None:
                raise NotFoundError(f"face {face_id} not found")
            try:
                with self.savepoint():
                    lid = self._insert("labels", {"face_id": face_id, "person_id": person_id, "source": source,
                                                  "confidence": confidence, "round": round, "annotator": annotator,
                                                  "created_at": _now()})
            except INTEGRITY_ERRORS as e:
                if "labels_one_human" in str(e) or "UNIQUE" in str(e).upper():
                    raise LabelConflictError(f"face {face_id} already has a human label") from e
                raise
            self.log_event("label_added", annotator, label_id=lid, face_id=face_id,
                           person_id=person_id, source=source)
            return lid

    def revoke_label(self, label_id: int, actor: str | None = None) -> None:
        with self.transaction():
            n = self.db.execute("UPDATE labels SET revoked = 1, revoked_at = ?, revoked_by = ? "
                                "WHERE id = ? AND revoked = 0", [_now(), actor, label_id]).rowcount
            if n == 0:
                raise NotFoundError(f"no live label {label_id}")
            self.log_event("label_revoked", actor, label_id=label_id)

    def labels(self, sources: Sequence[str] = LABEL_SOURCES, live: bool = True) -> list[dict]:
        """Labels of the given sources (person ids resolved through merges)."""
        bad = [s for s in sources if s not in LABEL_SOURCES]
        if bad:
            raise ValueError(f"label sources {bad} not among {', '.join(LABEL_SOURCES)}")
        marks = ",".join("?" * len(sources))
        rows = self._rows(f"SELECT * FROM labels WHERE source IN ({marks})" + (" AND revoked = 0" if live else "")
                          + " ORDER BY id", list(sources))
        for r in rows:
            r["person_id"] = self._resolve(r["person_id"])
        return rows

    def label_rows(self, sources: Sequence[str] = LABEL_SOURCES, face_id: int | None = None,
                   person_id: int | None = None, annotator: str | None = None) -> list[dict]:
        """Live labels (person ids resolved through merges), in one query; optional filters."""
        bad = [s for s in sources if s not in LABEL_SOURCES]
        if bad:
            raise ValueError(f"label sources {bad} not among {', '.join(LABEL_SOURCES)}")
        sql = f"SELECT * FROM labels WHERE revoked = 0 AND source IN ({','.join('?' * len(sources))})"
        params: list[Any] = list(sources)
        if face_id is not None:
            sql += " AND face_id = ?"
            params.append(face_id)
        if annotator is not None:
            sql += " AND annotator = ?"
            params.append(annotator)
        rows = self._rows(sql + " ORDER BY id", params)
        m = self._merge_map()
        for r in rows:
            r["person_id"] = m.get(r["person_id"], r["person_id"])
        if person_id is not None:
            rows = [r for r in rows if r["person_id"] == person_id]
        return rows

    def auto_label_counts(self) -> dict[int, int]:
        """Live auto-labels per person (ids resolved through merges), from one aggregate query."""
        m = self._merge_map()
        out: dict[int, int] = {}
        for pid, n in self.db.execute("SELECT person_id, COUNT(*) FROM labels WHERE revoked = 0 AND source = 'auto' "
                                      "GROUP BY person_id").fetchall():
            p = m.get(pid, pid)
            out[p] = out.get(p, 0) + int(n)
        return out

    def top_auto_labels(self, person_id: int, limit: int, exclude: Sequence[int] = ()) -> list[dict]:
        """A person's live auto-labels (those of people merged into them too), most confident first (then by
        face id), at most ``limit``, without the faces in ``exclude``; ``person_id`` as given."""
        m = self._merge_map()
        ids = [int(person_id)] + [k for k, v in m.items() if v == person_id]
        skip = {int(f) for f in exclude}
        rows = self._rows(f"SELECT * FROM labels WHERE revoked = 0 AND source = 'auto' AND person_id IN "
                          f"({','.join('?' * len(ids))}) ORDER BY COALESCE(confidence, 0) DESC, face_id LIMIT ?",
                          [*ids, int(limit) + len(skip)])
        rows = [r for r in rows if r["face_id"] not in skip][:limit]
        for r in rows:
            r["person_id"] = int(person_id)
        return rows

    def label(self, label_id: int) -> dict:
        rows = self._rows("SELECT * FROM labels WHERE id = ?", [label_id])
        if not rows:
            raise NotFoundError(f"label {label_id} not found")
        return rows[0]

    def labelled_face_ids(self, sources: Sequence[str] = ("human", "seed")) -> set[int]:
        """Faces with a live label of one of ``sources``."""
        marks = ",".join("?" * len(sources))
        return {r[0] for r in self.db.execute(
            f"SELECT DISTINCT face_id FROM labels WHERE revoked = 0 AND source IN ({marks})", list(sources))}

    def revoke_face_labels(self, face_id: int, sources: Sequence[str] = ("auto",), actor: str | None = None
                           ) -> list[int]:
        """Revoke the live labels of ``sources`` on a face; returns their ids."""
        with self.transaction():
            ids = [r["id"] for r in self.label_rows(sources, face_id=face_id)]
            for lid in ids:
                self.revoke_label(lid, actor)
            return ids

    def unrevoke_label(self, label_id: int, actor: str | None = None) -> None:
        """Make a revoked label live again (undo); :class:`LabelConflictError` if the face has another human label."""
        with self.transaction():
            if self._one("SELECT revoked FROM labels WHERE id = ?", [label_id]) is None:
                raise NotFoundError(f"label {label_id} not found")
            try:
                with self.savepoint():
                    self.db.execute("UPDATE labels SET revoked = 0, revoked_at = NULL, revoked_by = NULL "
                                    "WHERE id = ?", [label_id])
            except INTEGRITY_ERRORS as e:
                raise LabelConflictError(
                    f"label {label_id} cannot be restored: its face has another human label") from e
            self.log_event("label_restored", actor, label_id=label_id)

    def move_labels(self, label_ids: Sequence[int], person_id: int, actor: str | None = None) -> None:
        """Point labels at another person (merges, and their undo)."""
        with self.transaction():
            self.person_name(person_id)
            for lid in label_ids:
                self.db.execute("UPDATE labels SET person_id = ? WHERE id = ?", [person_id, int(lid)])
            self.log_event("labels_moved", actor, label_ids=list(map(int, label_ids)), person_id=person_id)

    def person_label_ids(self, person_id: int) -> list[int]:
        """Ids of the live labels stored with exactly this person id."""
        return [r[0] for r in self.db.execute(
            "SELECT id FROM labels WHERE person_id = ? AND revoked = 0 ORDER BY id", [person_id])]

    def replace_auto_labels(self, round: int, labels: Sequence[tuple[int, int, float]]) -> int:
        """Revoke all live auto-labels and write this round's ``(face, person, confidence)`` set."""
        with self.transaction():
            # replaced, not revoked: the table holds the latest round's auto-labels only (a round's history
            # is its counts in ``rounds.metrics``), so it does not grow by n rows per round
            self.db.execute("DELETE FROM labels WHERE source = 'auto'")
            t = _now()
            self.db.table("labels").insert_all(
                {"face_id": int(f), "person_id": int(p), "source": "auto", "confidence": float(c), "round": round,
                 "annotator": "engine", "created_at": t} for f, p, c in labels)
            self.log_event("auto_labels_replaced", "engine", round=round, count=len(labels))
            return len(labels)

    def face_persons(self, face_ids: Sequence[int], sources: Sequence[str] = ("human", "seed")) -> dict[int, int]:
        """Face id -> person id (resolved) of the live labels of ``sources`` on ``face_ids``."""
        ids = [int(f) for f in face_ids]
        if not ids:
            return {}
        m = self._merge_map()
        out: dict[int, int] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            rows = self.db.execute(
                "SELECT face_id, person_id FROM labels WHERE revoked = 0 "
                f"AND source IN ({','.join('?' * len(sources))}) "
                f"AND face_id IN ({','.join('?' * len(chunk))}) ORDER BY id", list(sources) + chunk).fetchall()
            for f, p in rows:
                out[int(f)] = int(m.get(p, p))
        return out

    def person_faces(self, person_id: int, sources: Sequence[str] = LABEL_SOURCES, limit: int | None = None
                     ) -> list[dict]:
        """Live labels of a person (including people merged into it): human/seed first, then by confidence."""
        m = self._merge_map()
        raw = [person_id] + [p for p, r in m.items() if r == person_id and p != person_id]
        sql = (f"SELECT * FROM labels WHERE revoked = 0 AND source IN ({','.join('?' * len(sources))}) "
               f"AND person_id IN ({','.join('?' * len(raw))}) "
               "ORDER BY CASE WHEN source = 'auto' THEN 1 ELSE 0 END, confidence DESC, id")
        rows = self._rows(sql + (f" LIMIT {int(limit)}" if limit else ""), list(sources) + raw)
        for r in rows:
            r["person_id"] = person_id
        return rows

    # ----------------------------------------------------------- rejections
    def add_rejection(self, face_id: int, person_id: int, annotator: str | None = None) -> bool:
        """Record that a face is not ``person_id``; False when already recorded."""
        with self.transaction():
            # raw SQL: the answer depends on the statement's rowcount (OR IGNORE)
            n = self.db.execute("INSERT OR IGNORE INTO rejections (face_id, person_id, annotator, created_at) "
                                "VALUES (?, ?, ?, ?)", [face_id, person_id, annotator, _now()]).rowcount
            if n:
                self.log_event("rejection_added", annotator, face_id=face_id, person_id=person_id)
            return bool(n)

    def remove_rejection(self, face_id: int, person_id: int, actor: str | None = None) -> bool:
        with self.transaction():
            n = self.db.execute("DELETE FROM rejections WHERE face_id = ? AND person_id = ?",
                                [face_id, person_id]).rowcount
            if n:
                self.log_event("rejection_removed", actor, face_id=face_id, person_id=person_id)
            return bool(n)

    def rejections(self, face_id: int | None = None) -> set[tuple[int, int]]:
        """``(face_id, person_id)`` pairs (person ids resolved through merges)."""
        sql, params = "SELECT face_id, person_id FROM rejections", []
        if face_id is not None:
            sql, params = sql + " WHERE face_id = ?", [face_id]
        m = self._merge_map()
        return {(int(f), int(m.get(p, p))) for f, p in self.db.execute(sql, params).fetchall()}

    def person_rejections(self, person_id: int) -> list[int]:
        """Faces rejected for exactly this person id."""
        return [r[0] for r in self.db.execute("SELECT face_id FROM rejections WHERE person_id = ?", [person_id])]
