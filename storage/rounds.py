"""Learning rounds (settings, metrics, unclear/flagged faces) and each backbone's saved loop state."""
from __future__ import annotations

import json
from typing import Any, Sequence

from ._common import _Host, _now
from .errors import NotFoundError
from .state import pack_state, unpack_state


class RoundsMixin(_Host):
    """Owns the ``rounds`` and ``loop_state`` tables."""

    # ---------------------------------------------------------------- rounds
    def start_round(self, backbone: str, method: str, actor: str | None, settings: dict) -> int:
        with self.transaction():
            rid = self._insert("rounds", {"backbone": backbone, "method": method, "actor": actor,
                                          "started_at": _now(), "settings": json.dumps(settings, sort_keys=True)})
            self.log_event("round_started", actor, round=rid, backbone=backbone, method=method)
            return rid

    def finish_round(self, round_id: int, metrics: dict, unclear: Sequence[int] = (),
                     flagged: Sequence[int] = ()) -> None:
        with self.transaction():
            self.db.execute("UPDATE rounds SET finished_at = ?, metrics = ?, unclear = ?, flagged = ? WHERE id = ?",
                            [_now(), json.dumps(metrics, default=float, sort_keys=True),
                             json.dumps([int(f) for f in unclear]), json.dumps([int(f) for f in flagged]),
                             round_id])
            self.log_event("round_finished", "engine", round=round_id, **{
                k: v for k, v in metrics.items() if isinstance(v, (int, float, str)) or v is None})

    def update_round_metrics(self, round_id: int, updates: dict[str, Any]) -> None:
        """Merge ``updates`` into a finished round's metrics (work that ran after the round, e.g. fine-tuning)."""
        with self.transaction():
            raw = self._one("SELECT metrics FROM rounds WHERE id = ?", [round_id])
            if raw is None:
                raise NotFoundError(f"round {round_id} has no metrics (not found or not finished)")
            metrics = {**json.loads(raw), **updates}
            self.db.execute("UPDATE rounds SET metrics = ? WHERE id = ?",
                            [json.dumps(metrics, default=float, sort_keys=True), round_id])

    def set_round_flagged(self, round_id: int, flagged: Sequence[int]) -> None:
        with self.transaction():
            self.db.execute("UPDATE rounds SET flagged = ? WHERE id = ?",
                            [json.dumps([int(f) for f in flagged]), round_id])

    def rounds(self, finished_only: bool = True, limit: int | None = None) -> list[dict]:
        """Rounds oldest first (JSON fields decoded)."""
        sql = "SELECT * FROM rounds" + (" WHERE finished_at IS NOT NULL" if finished_only else "") + " ORDER BY id"
        rows = self._rows(sql)
        if limit is not None:
            rows = rows[-limit:]
        for r in rows:
            for k in ("settings", "metrics", "unclear", "flagged"):
                r[k] = json.loads(r[k])
        return rows

    def last_round(self) -> dict | None:
        """The latest finished round, or None."""
        rows = self._rows("SELECT * FROM rounds WHERE finished_at IS NOT NULL ORDER BY id DESC LIMIT 1")
        if not rows:
            return None
        r = rows[0]
        for k in ("settings", "metrics", "unclear", "flagged"):
            r[k] = json.loads(r[k])
        return r

    def last_round_brief(self) -> dict | None:
        """``{id, started_at, queries}`` of the latest finished round without decoding its lists (cheap on
        every key press at any library size), or None."""
        row = self.db.execute("SELECT id, started_at, metrics FROM rounds "  # metrics: a small JSON object
                              "WHERE finished_at IS NOT NULL ORDER BY id DESC LIMIT 1").fetchone()
        return None if row is None else {"id": row[0], "started_at": row[1],
                                         "queries": int(json.loads(row[2] or "{}").get("queries") or 0)}

    def round_count(self) -> int:
        """Finished rounds."""
        return int(self._one("SELECT COUNT(*) FROM rounds WHERE finished_at IS NOT NULL") or 0)

    def last_round_id(self) -> int | None:
        return self._one("SELECT MAX(id) FROM rounds WHERE finished_at IS NOT NULL")

    # ---------------------------------------------------------- loop state
    def save_loop_state(self, backbone: str, state: dict[str, Any], round_id: int | None) -> None:
        """Store ``state`` (an :meth:`aspl.engine.ActiveLoop.state_dict`) for ``backbone`` as JSON + npz."""
        meta, blob = pack_state(state)
        with self.transaction():
            self._insert("loop_state", {"backbone": backbone, "meta": meta, "arrays": blob, "round": round_id,
                                        "updated_at": _now()}, replace=True)

    def loop_state(self, backbone: str) -> dict[str, Any] | None:
        """The stored state of ``backbone`` (None if none); damaged bytes raise :class:`StateFormatError`.

        Arrays are read with ``allow_pickle=False``: nothing stored here can run code.
        """
        row = self.db.execute("SELECT meta, arrays FROM loop_state WHERE backbone = ?", [backbone]).fetchone()
        return None if row is None else unpack_state(row[0], row[1])

    def drop_loop_state(self, backbone: str) -> None:
        with self.transaction():
            self.db.execute("DELETE FROM loop_state WHERE backbone = ?", [backbone])
