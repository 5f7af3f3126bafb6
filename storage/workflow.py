"""The labelling workflow's bookkeeping: face leases, the query queue, skips, undoable actions, reviews."""
from __future__ import annotations

import json
import time
from typing import Sequence

from ._common import _Host, _now, equal_filters, where_sql
from .errors import NotFoundError


class WorkflowMixin(_Host):
    """Owns the ``leases``, ``queue``, ``skips``, ``actions`` and ``reviews`` tables."""

    # ---------------------------------------------------------------- leases
    def take_lease(self, annotator: str, candidates: Sequence[int], seconds: float,
                   now: float | None = None) -> int | None:
        """Lease the first of ``candidates`` not leased by someone else; the annotator's own live lease
        on a candidate wins (a reload shows the same face). Expired leases are free; the annotator's
        leases on faces no longer among ``candidates`` are dropped. Returns the face id or None."""
        now = time.time() if now is None else now
        with self.transaction():
            self.db.execute("DELETE FROM leases WHERE expires_at <= ?", [now])
            cand = set(int(c) for c in candidates)
            mine = [r[0] for r in self.db.execute(
                "SELECT face_id FROM leases WHERE annotator = ? ORDER BY expires_at DESC", [annotator])]
            stale = [f for f in mine if f not in cand]
            for f in stale:
                self.db.execute("DELETE FROM leases WHERE face_id = ?", [f])
            mine = [f for f in mine if f in cand]
            if mine:
                face = mine[0]
            else:
                others = {r[0] for r in self.db.execute("SELECT face_id FROM leases WHERE annotator != ?", [annotator])}
                face = next((int(c) for c in candidates if int(c) not in others), None)
                if face is None:
                    return None
            self._insert("leases", {"face_id": face, "annotator": annotator, "expires_at": now + seconds},
                         replace=True)
            return face

    def lease(self, face_id: int, annotator: str, seconds: float, now: float | None = None) -> None:
        """Lease a face to ``annotator`` (replacing any lease on it)."""
        now = time.time() if now is None else now
        with self.transaction():
            self._insert("leases", {"face_id": face_id, "annotator": annotator, "expires_at": now + seconds},
                         replace=True)

    def release_leases(self, annotator: str, face_ids: Sequence[int] | None = None) -> None:
        with self.transaction():
            if face_ids is None:
                self.db.execute("DELETE FROM leases WHERE annotator = ?", [annotator])
            else:
                for f in face_ids:
                    self.db.execute("DELETE FROM leases WHERE annotator = ? AND face_id = ?", [annotator, int(f)])

    def clear_leases(self) -> int:
        """Drop every lease (a new round re-ranks the faces to ask); returns how many."""
        with self.transaction():
            return int(self.db.execute("DELETE FROM leases").rowcount)

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
