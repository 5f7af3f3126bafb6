"""The labelling workflow's bookkeeping: face leases, the query queue, skips, undoable actions, reviews."""
from __future__ import annotations

import json
import time
from typing import Sequence

from ._common import _Host, _now, equal_filters, where_sql
from .errors import NotFoundError


class WorkflowMixin(_Host):
    """Owns the ``leases``, ``queue``, ``skips``, ``actions``, ``reviews`` and ``conflicts`` tables."""

    # ---------------------------------------------------------------- leases
    def take_next_face(self, annotator: str, seconds: float, round_id: int | None,
                       now: float | None = None) -> int | None:
        """Choose and lease the face to show ``annotator`` next, in one write transaction (so two
        annotators, in one process or several, never get the same face). Returns None when none is left.

        Order: the annotator's own live lease (a reload shows the same face); the round's queue by rank;
        faces without any label by id; last, faces this annotator skipped in round ``round_id``, the one
        skipped longest ago first (so skipping again moves on). Never: faces with a human/seed label,
        strangers, faces marked not a face, hidden faces (below the quality thresholds), faces leased by
        someone else, and auto-labelled faces the round did not queue. The annotator's other leases are
        released (one face at a time).
        """
        now = time.time() if now is None else now
        p = {"a": annotator, "r": round_id}
        open_ = ("f.status = 'ok' AND f.human = 0 AND f.hidden = 0 AND NOT EXISTS (SELECT 1 FROM leases o "
                 "WHERE o.face_id = f.id AND o.annotator != :a)")  # human: trigger-kept (m011)
        fresh = "NOT EXISTS (SELECT 1 FROM skips s WHERE s.face_id = f.id AND s.annotator = :a AND s.round IS :r)"
        unqueued = "NOT EXISTS (SELECT 1 FROM queue q WHERE q.face_id = f.id)"
        tiers = (  # each an index seek (partial index faces_open), whatever the library's size
            f"SELECT f.id FROM leases m CROSS JOIN faces f ON f.id = m.face_id WHERE m.annotator = :a AND {open_} "
            f"AND {fresh} ORDER BY m.expires_at DESC LIMIT 1",
            f"SELECT f.id FROM queue q CROSS JOIN faces f ON f.id = q.face_id WHERE {open_} AND {fresh} "
            f"ORDER BY q.rank LIMIT 1",
            f"SELECT f.id FROM faces f INDEXED BY faces_open WHERE {open_} AND f.auto = 0 AND {fresh} AND {unqueued} "
            f"ORDER BY f.auto, f.id LIMIT 1",
            f"SELECT f.id FROM skips s CROSS JOIN faces f ON f.id = s.face_id WHERE s.annotator = :a AND s.round IS :r "
            f"AND {open_} AND (f.auto = 0 OR EXISTS (SELECT 1 FROM queue q WHERE q.face_id = f.id)) "
            f"ORDER BY s.rowid LIMIT 1",  # a re-skip re-inserts the row: oldest skip first
        )
        with self.transaction():
            self.db.execute("DELETE FROM leases WHERE expires_at <= ?", [now])
            face = None
            for sql in tiers:
                row = self.db.execute(sql, p).fetchone()
                if row is not None:
                    face = int(row[0])
                    break
            self.db.execute("DELETE FROM leases WHERE annotator = ? AND face_id IS NOT ?", [annotator, face])
            if face is not None:
                self.db.execute("INSERT INTO leases (face_id, annotator, expires_at) VALUES (?, ?, ?) "
                                "ON CONFLICT(face_id) DO UPDATE SET expires_at = excluded.expires_at",
                                [face, annotator, now + seconds])
            return face

    def lease(self, face_id: int, annotator: str, seconds: float, now: float | None = None) -> bool:
        """Lease a face to ``annotator`` unless someone else holds a live lease on it (a lease is never
        stolen). Returns whether ``annotator`` holds it now."""
        now = time.time() if now is None else now
        with self.transaction():
            self.db.execute("INSERT INTO leases (face_id, annotator, expires_at) VALUES (?, ?, ?) "
                            "ON CONFLICT(face_id) DO UPDATE SET annotator = excluded.annotator, "
                            "expires_at = excluded.expires_at "
                            "WHERE leases.annotator = excluded.annotator OR leases.expires_at <= ?",
                            [face_id, annotator, now + seconds, now])
            return self._one("SELECT annotator FROM leases WHERE face_id = ?", [face_id]) == annotator

    def release_leases(self, annotator: str, face_ids: Sequence[int] | None = None) -> None:
        with self.transaction():
            if face_ids is None:
                self.db.execute("DELETE FROM leases WHERE annotator = ?", [annotator])
            else:
                for f in face_ids:
                    self.db.execute("DELETE FROM leases WHERE annotator = ? AND face_id = ?", [annotator, int(f)])

    def leased_faces(self, exclude_annotator: str | None = None, now: float | None = None) -> dict[int, str]:
        """Live leases: face id -> annotator (optionally without one annotator's)."""
        now = time.time() if now is None else now
        return {int(f): a for f, a in self.db.execute(
            "SELECT face_id, annotator FROM leases WHERE expires_at > ?", [now]).fetchall()
            if a != exclude_annotator}

    # ----------------------------------------------------------------- queue
    def set_queue(self, round_id: int, face_ids: Sequence[int]) -> None:
        """Replace the query queue with ``face_ids`` (most useful first)."""
        with self.transaction():
            self.db.execute("DELETE FROM queue")
            self.db.table("queue").insert_all(
                ({"face_id": int(f), "rank": i, "round": round_id} for i, f in enumerate(face_ids)), ignore=True)

    def open_queue_count(self) -> int:
        """Questions of the round's queue still open: status ok, no human label, not hidden."""
        return int(self._one("SELECT COUNT(*) FROM queue q JOIN faces f ON f.id = q.face_id "
                             "WHERE f.status = 'ok' AND f.human = 0 AND f.hidden = 0") or 0)

    def queue(self) -> list[int]:
        return [r[0] for r in self.db.execute("SELECT face_id FROM queue ORDER BY rank")]

    # ----------------------------------------------------------------- skips
    def add_skip(self, face_id: int, annotator: str, round_id: int | None) -> None:
        with self.transaction():
            self._insert("skips", {"face_id": face_id, "annotator": annotator, "round": round_id,
                                   "created_at": _now()}, replace=True)

    def remove_skip(self, face_id: int, annotator: str) -> None:
        with self.transaction():
            self.db.execute("DELETE FROM skips WHERE face_id = ? AND annotator = ?", [face_id, annotator])

    def skipped_face_ids(self, annotator: str, round_id: int | None) -> set[int]:
        """Faces ``annotator`` skipped during round ``round_id`` (None: before any round)."""
        if round_id is None:
            rows = self.db.execute("SELECT face_id FROM skips WHERE annotator = ? AND round IS NULL", [annotator])
        else:
            rows = self.db.execute("SELECT face_id FROM skips WHERE annotator = ? AND round = ?", [annotator, round_id])
        return {r[0] for r in rows}

    # --------------------------------------------------------------- actions
    def add_action(self, actor: str, scope: str, kind: str, payload: dict) -> int:
        """Record an undoable action (with what is needed to undo it)."""
        with self.transaction():
            return self._insert("actions", {"actor": actor, "scope": scope, "kind": kind,
                                            "payload": json.dumps(payload, default=int, sort_keys=True),
                                            "created_at": _now()})

    def count_actions_since(self, since: str | None) -> int:
        """Live (not undone) actions recorded after the ISO time ``since`` (None: all of them)."""
        return int(self._one("SELECT COUNT(*) FROM actions WHERE created_at > ? AND undone_at IS NULL",
                             [since or ""]) or 0)

    def actions(self, actor: str | None = None, scope: str | None = None, live: bool = True,
                limit: int = 50) -> list[dict]:
        """Most recent actions first (``live``: not undone)."""
        where, params = equal_filters(actor=actor, scope=scope)
        if live:
            where.append("undone_at IS NULL")
        sql = "SELECT * FROM actions" + where_sql(where) + " ORDER BY id DESC LIMIT ?"
        rows = self._rows(sql, params + [limit])
        for r in rows:
            r["payload"] = json.loads(r["payload"])
        return rows

    def mark_action_undone(self, action_id: int, actor: str | None = None) -> None:
        with self.transaction():
            n = self.db.execute("UPDATE actions SET undone_at = ? WHERE id = ? AND undone_at IS NULL",
                                [_now(), action_id]).rowcount
            if not n:
                raise NotFoundError(f"no live action {action_id}")
            self.log_event("undo", actor, action_id=action_id)

    # --------------------------------------------------------------- reviews
    def add_review(self, face_id: int, person_id: int, round_id: int | None, sample: str, correct: bool,
                   annotator: str | None) -> int:
        with self.transaction():
            rid = self._insert("reviews", {"face_id": face_id, "person_id": person_id, "round": round_id,
                                           "sample": sample, "correct": int(bool(correct)), "annotator": annotator,
                                           "created_at": _now()})
            self.log_event("auto_label_reviewed", annotator, face_id=face_id, person_id=person_id,
                           sample=sample, correct=bool(correct))
            return rid

    def withdraw_review(self, review_id: int) -> None:
        with self.transaction():
            self.db.execute("UPDATE reviews SET withdrawn = 1 WHERE id = ?", [review_id])

    def reviews(self, sample: str | None = None, round_id: int | None = None) -> list[dict]:
        where, params = equal_filters(sample=sample, round=round_id)
        return self._rows("SELECT * FROM reviews" + where_sql(["withdrawn = 0", *where]) + " ORDER BY id", params)

    # ------------------------------------------------------------- conflicts
    def add_conflict(self, face_id: int, kind: str, label_id: int | None, raised_by: str) -> int:
        """Record a conflict on ``face_id`` for a reviewer (an open one of the same kind is reused)."""
        with self.transaction():
            cur = self._one("SELECT id FROM conflicts WHERE face_id = ? AND kind = ? AND resolved_at IS NULL",
                            [face_id, kind])
            if cur is not None:
                return int(cur)
            cid = self._insert("conflicts", {"face_id": face_id, "kind": kind, "label_id": label_id,
                                             "raised_by": raised_by, "created_at": _now()})
            self.log_event("conflict_raised", raised_by, conflict=cid, face_id=face_id, conflict_kind=kind)
            return cid

    def conflicts(self, open_only: bool = True) -> list[dict]:
        """Conflicts, oldest first (``open_only``: not resolved yet)."""
        where = ["resolved_at IS NULL"] if open_only else []
        return self._rows("SELECT * FROM conflicts" + where_sql(where) + " ORDER BY id")

    def conflict(self, conflict_id: int) -> dict:
        rows = self._rows("SELECT * FROM conflicts WHERE id = ?", [conflict_id])
        if not rows:
            raise NotFoundError(f"conflict {conflict_id} not found")
        return rows[0]

    def resolve_conflict(self, conflict_id: int, resolution: str | None, actor: str | None) -> None:
        """Mark a conflict resolved with ``resolution`` (None: open it again, e.g. on undo)."""
        with self.transaction():
            if resolution is None:
                self.db.execute("UPDATE conflicts SET resolved_at = NULL, resolved_by = NULL, resolution = NULL "
                                "WHERE id = ?", [conflict_id])
            else:
                n = self.db.execute("UPDATE conflicts SET resolved_at = ?, resolved_by = ?, resolution = ? "
                                    "WHERE id = ? AND resolved_at IS NULL",
                                    [_now(), actor, resolution, conflict_id]).rowcount
                if not n:
                    raise NotFoundError(f"no open conflict {conflict_id}")
            self.log_event("conflict_resolved", actor, conflict=conflict_id, resolution=resolution)

    def withdraw_conflict(self, conflict_id: int) -> None:
        """Delete a conflict that was raised by mistake (its raiser undid it)."""
        with self.transaction():
            self.db.execute("DELETE FROM conflicts WHERE id = ?", [conflict_id])
