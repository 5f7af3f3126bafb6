"""Accounts (name, role, password hash) and failed-login bookkeeping for throttling."""
from __future__ import annotations

import json
import time
from typing import Any

from ._common import _Host, _now
from .errors import NameConflictError, NotFoundError

ROLES = ("annotator", "reviewer", "admin")


class UsersMixin(_Host):
    """Owns the ``users`` and ``login_failures`` tables. Hashes are made by the caller (never stored plain)."""

    def add_user(self, name: str, role: str, password_hash: dict[str, Any], actor: str | None) -> None:
        """Create an account (:class:`NameConflictError` if the name is taken, case-insensitively)."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; valid choices: {', '.join(ROLES)}")
        with self.transaction():
            if self._one("SELECT 1 FROM users WHERE name = ?", [name]):
                raise NameConflictError(f"an account named {name!r} already exists")
            self._insert("users", {"name": name, "role": role, "password": json.dumps(password_hash),
                                   "created_at": _now(), "created_by": actor, "disabled": 0})
            self.log_event("user_added", actor, name=name, role=role)

    def user(self, name: str) -> dict | None:
        """The account ``name`` (case-insensitive) with its hash decoded, or None."""
        rows = self._rows("SELECT * FROM users WHERE name = ?", [name])
        if not rows:
            return None
        rows[0]["password"] = json.loads(rows[0]["password"])
        return rows[0]

    def users(self) -> list[dict]:
        """Every account (without hashes), by name."""
        return self._rows("SELECT name, role, created_at, created_by, disabled FROM users ORDER BY name")

    def count_users(self, role: str | None = None, enabled: bool = True) -> int:
        sql, params = "SELECT COUNT(*) FROM users WHERE 1 = 1", []
        if role is not None:
            sql, params = sql + " AND role = ?", [role]
        if enabled:
            sql += " AND disabled = 0"
        return int(self._one(sql, params) or 0)

    def update_user(self, name: str, actor: str | None, *, role: str | None = None,
                    password_hash: dict[str, Any] | None = None, disabled: bool | None = None) -> None:
        """Change an account's role, password hash or disabled flag."""
        if role is not None and role not in ROLES:
            raise ValueError(f"unknown role {role!r}; valid choices: {', '.join(ROLES)}")
        sets: dict[str, Any] = {}
        if role is not None:
            sets["role"] = role
        if password_hash is not None:
            sets["password"] = json.dumps(password_hash)
        if disabled is not None:
            sets["disabled"] = int(disabled)
        with self.transaction():
            if not self._one("SELECT 1 FROM users WHERE name = ?", [name]):
                raise NotFoundError(f"no account named {name!r}")
            if sets:
                cols = ", ".join(f"{k} = ?" for k in sets)
                self.db.execute(f"UPDATE users SET {cols} WHERE name = ?", [*sets.values(), name])
            self.log_event("user_changed", actor, name=name, **{k: ("(hidden)" if k == "password" else v)
                                                               for k, v in sets.items()})

    # -------------------------------------------------------------- throttle
    def login_failures(self, name: str) -> tuple[int, float]:
        """``(failures in a row, locked until [epoch s])`` for a login name (any name, known or not)."""
        row = self.db.execute("SELECT failures, locked_until FROM login_failures WHERE name = ?",
                              [name.lower()]).fetchone()
        return (0, 0.0) if row is None else (int(row[0]), float(row[1]))

    def record_login(self, name: str, ok: bool, lock_seconds: float = 0.0, now: float | None = None) -> None:
        """A login attempt: success clears the record; a failure counts and locks for ``lock_seconds``."""
        now = time.time() if now is None else now
        with self.transaction():
            if ok:
                self.db.execute("DELETE FROM login_failures WHERE name = ?", [name.lower()])
                self.log_event("login", name)
                return
            self.db.execute("INSERT INTO login_failures (name, failures, locked_until) VALUES (?, 1, ?) "
                            "ON CONFLICT(name) DO UPDATE SET failures = login_failures.failures + 1, locked_until = ?",
                            [name.lower(), now + lock_seconds, now + lock_seconds])
            self.log_event("login_failed", None, name=name[:100])
