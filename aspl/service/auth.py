"""Accounts and sessions: annotator, reviewer and admin accounts (salted scrypt), throttled logins, signed
session tokens (the app keeps one in a cookie so a reload keeps you logged in), and a one-time setup token
for the first admin.

Roles are ordered: an admin can do what a reviewer can, a reviewer what an annotator can. The annotator's
name on every label is the account name, never typed text.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from typing import Any

from storage.users import ROLES

from .errors import ServiceError

log = logging.getLogger("aspl.service")

MIN_PASSWORD_LENGTH = 8
ROLE_RANK = {r: i for i, r in enumerate(ROLES)}
_SCRYPT = {"n": 2 ** 14, "r": 8, "p": 1, "dklen": 32}
#: Failed logins in a row before each further attempt waits; the wait doubles up to the maximum.
FREE_FAILURES, LOCK_BASE_S, LOCK_MAX_S = 3, 2.0, 900.0
SESSION_SECONDS = 7 * 24 * 3600
_NAME_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ._@+-")


class AuthError(ServiceError):
    """Wrong account name or password (the message never says which)."""


class ThrottledError(AuthError):
    """Too many failed logins for this name: try again after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float):
        super().__init__(message)
        self.retry_after = retry_after


def hash_password(password: str) -> dict[str, Any]:
    """A salted scrypt record of ``password`` (ValueError if shorter than :data:`MIN_PASSWORD_LENGTH`)."""
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise ValueError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)
    return {"algo": "scrypt", **_SCRYPT, "salt": salt.hex(), "hash": digest.hex()}


def verify_password(password: str, rec: dict[str, Any]) -> bool:
    """Whether ``password`` matches the scrypt record ``rec`` (constant-time comparison)."""
    if rec.get("algo") != "scrypt":
        raise ServiceError(f"unsupported password hash {rec.get('algo')!r}; valid choices: scrypt")
    digest = hashlib.scrypt((password or "").encode(), salt=bytes.fromhex(rec["salt"]),
                            **{k: rec[k] for k in ("n", "r", "p", "dklen")})
    return hmac.compare_digest(digest.hex(), rec["hash"])


_DUMMY = {"algo": "scrypt", **_SCRYPT, "salt": "00" * 16, "hash": "00" * 32}


def check_name(name: str) -> str:
    """An account name: 1-64 letters, digits, spaces or ``._@+-`` (ValueError naming the bad one)."""
    name = " ".join(str(name or "").split())
    if not name or len(name) > 64 or not set(name) <= _NAME_OK:
        raise ValueError(f"bad account name {name[:70]!r}: use 1-64 letters, digits, spaces or . _ @ + -")
    return name


def lock_seconds(failures: int) -> float:
    """How long a name is locked after ``failures`` failed logins in a row."""
    if failures < FREE_FAILURES:
        return 0.0
    return min(LOCK_MAX_S, LOCK_BASE_S * 2 ** (failures - FREE_FAILURES))


def _pw_tag(user: dict[str, Any]) -> str:
    """A short tag of the account's current password record (its salt): a new password ends old sessions."""
    return hashlib.sha256(str(user["password"].get("salt", "")).encode()).hexdigest()[:16]


def _b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


def _unb64(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


class AuthMixin:
    """Accounts, logins, sessions, first-admin setup."""

    # ------------------------------------------------------------ accounts
    def add_user(self, name: str, password: str, role: str = "annotator", actor: str = "admin") -> str:
        """Create an account; returns its (cleaned) name."""
        name = check_name(name)
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; valid choices: {', '.join(ROLES)}")
        self.library.add_user(name, role, hash_password(password), actor)
        return name

    def users(self) -> list[dict]:
        """Every account (name, role, disabled), without hashes."""
        return self.library.users()

    def account(self, name: str) -> dict[str, str] | None:
        """``{"name", "role"}`` of the enabled account ``name``, or None."""
        user = self.library.user(" ".join(str(name or "").split()))
        return None if user is None or user["disabled"] else {"name": user["name"], "role": user["role"]}

    def has_admin(self) -> bool:
        """Whether an enabled admin account exists."""
        return self.library.count_users("admin") > 0

    def set_password(self, name: str, password: str, actor: str) -> None:
        """Give ``name`` a new password."""
        self.library.update_user(name, actor, password_hash=hash_password(password))

    def _keep_an_admin(self, name: str) -> None:
        u = self.library.user(name)
        if u is not None and u["role"] == "admin" and not u["disabled"] and self.library.count_users("admin") <= 1:
            raise ServiceError(f"{name} is the last admin; make another admin first")

    def set_role(self, name: str, role: str, actor: str) -> None:
        """Change an account's role (the last admin cannot be demoted)."""
        if role != "admin":
            self._keep_an_admin(name)
        self.library.update_user(name, actor, role=role)

    def disable_user(self, name: str, actor: str, disabled: bool = True) -> None:
        """Disable (or re-enable) an account; its sessions stop working (the last admin cannot be disabled)."""
        if disabled:
            self._keep_an_admin(name)
        self.library.update_user(name, actor, disabled=disabled)

    # -------------------------------------------------------------- logins
    def authenticate(self, name: str, password: str, now: float | None = None) -> dict[str, str]:
        """``{"name", "role"}`` of the account, or :class:`AuthError`; after :data:`FREE_FAILURES` failures in
        a row each attempt must wait (doubling), else :class:`ThrottledError` (checked before the password)."""
        now = time.time() if now is None else now
        key = " ".join(str(name or "").split())[:64]
        failures, until = self.library.login_failures(key)
        if until > now:
            raise ThrottledError(f"too many failed logins for {key!r}: try again in {until - now:.0f} s",
                                 until - now)
        user = self.library.user(key) if key else None
        ok = verify_password(password, user["password"] if user else _DUMMY) and user is not None \
            and not user["disabled"]
        if not ok:
            self.library.record_login(key, False, lock_seconds(failures + 1), now)
            raise AuthError("wrong name or password")
        self.library.record_login(user["name"], True, now=now)
        return {"name": user["name"], "role": user["role"]}

    def _session_key(self) -> bytes:
        key = self.library.get_setting("session_secret")
        if not key:
            key = secrets.token_hex(32)
            self.library.set_private_setting("session_secret", key, "system")
        return bytes.fromhex(key)

    def session_token(self, name: str, now: float | None = None, seconds: float = SESSION_SECONDS) -> str:
        """A signed token for ``name``, valid ``seconds`` (HMAC-SHA256 with the library's secret); it names the
        account's current password record, so a password change ends the sessions made before it."""
        now = time.time() if now is None else now
        user = self.library.user(name)
        if user is None:
            raise AuthError(f"no account named {name!r}")
        body = _b64(json.dumps({"u": user["name"], "exp": int(now + seconds), "pw": _pw_tag(user)}).encode())
        sig = _b64(hmac.new(self._session_key(), body.encode(), hashlib.sha256).digest())
        return f"{body}.{sig}"

    def user_from_token(self, token: str | None, now: float | None = None) -> dict[str, str] | None:
        """The account a session token names (role read from the database now), or None if the token is
        forged, expired, or the account is gone or disabled."""
        now = time.time() if now is None else now
        try:
            body, sig = str(token or "").split(".")
            want = _b64(hmac.new(self._session_key(), body.encode(), hashlib.sha256).digest())
            if not hmac.compare_digest(sig, want):
                return None
            data = json.loads(_unb64(body))
        except (ValueError, TypeError):
            return None
        if not isinstance(data, dict) or float(data.get("exp", 0)) < now:
            return None
        user = self.library.user(str(data.get("u", "")))
        if user is None or user["disabled"] or not hmac.compare_digest(str(data.get("pw", "")), _pw_tag(user)):
            return None  # gone, disabled, or its password changed since: every session of it ends
        return {"name": user["name"], "role": user["role"]}

    @staticmethod
    def allows(role: str | None, needed: str) -> bool:
        """Whether ``role`` may do what ``needed`` may (admin > reviewer > annotator)."""
        return role in ROLE_RANK and ROLE_RANK[role] >= ROLE_RANK[needed]

    # --------------------------------------------------------- first admin
    def setup_token(self) -> str | None:
        """With no admin account yet: a new one-time token (only its hash is stored; the server prints it
        to its log). None once an admin exists."""
        if self.has_admin():
            return None
        token = secrets.token_urlsafe(24)
        self.library.set_private_setting("setup_token", hashlib.sha256(token.encode()).hexdigest(), "system")
        return token

    def create_first_admin(self, token: str, name: str, password: str) -> str:
        """Create the first admin with the setup token from the server log (then the token is void)."""
        stored = self.library.get_setting("setup_token")
        if self.has_admin() or not stored:
            raise AuthError("there is no pending setup: an admin exists already")
        if not hmac.compare_digest(hashlib.sha256(str(token or "").strip().encode()).hexdigest(), stored):
            raise AuthError("wrong setup token: copy it from the server's log")
        name = self.add_user(name, password, "admin", actor="setup")
        self.library.set_private_setting("setup_token", None, "setup")
        return name

    def apply_env_admin(self, env: dict[str, str] | None = None) -> bool:
        """``ASPL_ADMIN_PASSWORD`` (and ``ASPL_ADMIN_USER``, default ``admin``): create that admin account or
        reset its password and role. Returns True if anything changed."""
        env = os.environ if env is None else env
        pw = env.get("ASPL_ADMIN_PASSWORD")
        if not pw:
            return False
        name = check_name(env.get("ASPL_ADMIN_USER") or "admin")
        user = self.library.user(name)
        if user is None:
            self.add_user(name, pw, "admin", actor="env")
            return True
        if verify_password(pw, user["password"]) and user["role"] == "admin" and not user["disabled"]:
            return False
        self.library.update_user(name, "env", role="admin", disabled=False, password_hash=hash_password(pw))
        return True


__all__ = ["AuthError", "ThrottledError", "AuthMixin", "hash_password", "verify_password", "MIN_PASSWORD_LENGTH",
           "ROLES", "lock_seconds", "check_name"]
