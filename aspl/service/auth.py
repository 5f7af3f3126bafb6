"""The admin password: a salted scrypt hash in a private setting, optionally from ``ASPL_ADMIN_PASSWORD``."""
from __future__ import annotations

import hashlib
import hmac
import os

from .errors import ServiceError

MIN_PASSWORD_LENGTH = 8
_SCRYPT = {"n": 2 ** 14, "r": 8, "p": 1, "dklen": 32}


class AuthMixin:
    """``admin_password_is_set``, ``set_admin_password``, ``check_admin_password``, ``apply_env_password``."""

    def admin_password_is_set(self) -> bool:
        """Whether an admin password is stored."""
        return bool(self.library.get_setting("admin_password"))

    def set_admin_password(self, password: str, actor: str = "admin") -> None:
        """Store the admin password as a salted scrypt hash."""
        if len(password or "") < MIN_PASSWORD_LENGTH:
            raise ValueError(f"the admin password needs at least {MIN_PASSWORD_LENGTH} characters")
        salt = os.urandom(16)
        digest = hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)
        self.library.set_private_setting("admin_password", {"algo": "scrypt", **_SCRYPT, "salt": salt.hex(),
                                                            "hash": digest.hex()}, actor)

    def check_admin_password(self, password: str) -> bool:
        """True if ``password`` is the stored admin password (constant-time comparison)."""
        rec = self.library.get_setting("admin_password")
        if not rec or not password:
            return False
        if rec.get("algo") != "scrypt":
            raise ServiceError(f"unsupported password hash {rec.get('algo')!r}; valid choices: scrypt")
        digest = hashlib.scrypt(password.encode(), salt=bytes.fromhex(rec["salt"]),
                                **{k: rec[k] for k in ("n", "r", "p", "dklen")})
        return hmac.compare_digest(digest.hex(), rec["hash"])

    def apply_env_password(self, env: dict[str, str] | None = None) -> bool:
        """Set the admin password from ``ASPL_ADMIN_PASSWORD`` if given and different; True if changed."""
        pw = (env if env is not None else os.environ).get("ASPL_ADMIN_PASSWORD")
        if not pw or self.check_admin_password(pw):
            return False
        self.set_admin_password(pw, actor="env")
        return True
