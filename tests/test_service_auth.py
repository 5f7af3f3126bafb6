"""Accounts: salted scrypt hashes, roles, throttled logins, signed sessions, the first admin from a one-time
setup token, and the admin from ASPL_ADMIN_PASSWORD."""
import json

import pytest

from apphelpers import synthetic_service
from aspl.service import AuthError, ServiceError, ThrottledError
from aspl.service.auth import FREE_FAILURES, lock_seconds
from storage import Library
from storage.errors import NameConflictError


def test_passwords_are_stored_salted_and_never_logged():
    svc, _ = synthetic_service(None)
    svc.add_user("alice", "s3cret-enough", "annotator")
    svc.add_user("bob", "s3cret-enough", "reviewer")
    a, b = svc.library.user("alice")["password"], svc.library.user("bob")["password"]
    assert a["algo"] == "scrypt" and a["salt"] != b["salt"] and a["hash"] != b["hash"]
    assert "s3cret" not in json.dumps([a, b]) + json.dumps(svc.events())
    assert svc.authenticate("alice", "s3cret-enough") == {"name": "alice", "role": "annotator"}
    assert svc.authenticate("ALICE", "s3cret-enough")["name"] == "alice"  # names are case-insensitive
    with pytest.raises(AuthError, match="wrong name or password"):
        svc.authenticate("alice", "s3cret-enougH")
    with pytest.raises(AuthError, match="wrong name or password"):  # an unknown name reads the same
        svc.authenticate("mallory", "s3cret-enough")
    with pytest.raises(NameConflictError, match="already exists"):
        svc.add_user("Alice", "another-password", "admin")
    with pytest.raises(ValueError, match="at least 8 characters"):
        svc.add_user("carol", "short")
    with pytest.raises(ValueError, match="valid choices: annotator, reviewer, admin"):
        svc.add_user("carol", "long enough", "owner")
    with pytest.raises(ValueError, match="bad account name"):
        svc.add_user("<script>", "long enough")


def test_failed_logins_back_off_and_a_success_resets():
    svc, _ = synthetic_service(None)
    svc.add_user("alice", "right password")
    t = 1000.0
    for _ in range(FREE_FAILURES):
        with pytest.raises(AuthError):
            svc.authenticate("alice", "wrong password", now=t)
    with pytest.raises(ThrottledError) as e:  # locked: even the right password waits
        svc.authenticate("alice", "right password", now=t + 0.5)
    assert e.value.retry_after == pytest.approx(lock_seconds(FREE_FAILURES) - 0.5)
    t += lock_seconds(FREE_FAILURES) + 0.01
    with pytest.raises(AuthError):
        svc.authenticate("alice", "wrong again", now=t)
    with pytest.raises(ThrottledError) as e:  # the wait doubles
        svc.authenticate("alice", "right password", now=t + 1)
    assert e.value.retry_after == pytest.approx(2 * lock_seconds(FREE_FAILURES) - 1)
    t += 2 * lock_seconds(FREE_FAILURES) + 0.01
    assert svc.authenticate("alice", "right password", now=t)["name"] == "alice"
    assert svc.library.login_failures("alice") == (0, 0.0)
    assert lock_seconds(100) == 900.0  # capped


def test_session_tokens_are_signed_expire_and_follow_the_account():
    svc, _ = synthetic_service(None)
    svc.add_user("alice", "right password", "reviewer")
    svc.add_user("root", "right password", "admin")
    tok = svc.session_token("alice", now=0, seconds=100)
    assert svc.user_from_token(tok, now=50) == {"name": "alice", "role": "reviewer"}
    assert svc.user_from_token(tok, now=101) is None  # expired
    body, sig = tok.split(".")
    forged = svc.session_token("root", now=0, seconds=100).split(".")[0] + "." + sig
    assert svc.user_from_token(forged, now=50) is None  # another body with alice's signature
    assert svc.user_from_token("garbage", now=50) is None and svc.user_from_token(None) is None
    svc.set_role("alice", "annotator", "root")
    assert svc.user_from_token(tok, now=50)["role"] == "annotator"  # the role is read now, not from the token
    svc.set_password("alice", "a new password", "alice")  # a stolen session ends with a new password
    assert svc.user_from_token(tok, now=50) is None
    tok = svc.session_token("alice", now=0, seconds=100)
    svc.disable_user("alice", "root")
    assert svc.user_from_token(tok, now=50) is None
    with pytest.raises(ServiceError, match="last admin"):
        svc.set_role("root", "annotator", "root")
    with pytest.raises(ServiceError, match="last admin"):
        svc.disable_user("root", "root")


def test_first_admin_needs_the_one_time_setup_token(tmp_path):
    svc, _ = synthetic_service(tmp_path / "lib")
    assert not svc.has_admin()
    token = svc.setup_token()
    assert token and token not in json.dumps(svc.library.get_setting("setup_token"))
    with pytest.raises(AuthError, match="wrong setup token"):
        svc.create_first_admin("guess", "eve", "long password")
    assert svc.create_first_admin(token, "root", "long password") == "root"
    assert svc.authenticate("root", "long password")["role"] == "admin"
    with pytest.raises(AuthError, match="no pending setup"):  # the token is void now
        svc.create_first_admin(token, "eve", "long password")
    assert svc.setup_token() is None


def test_env_admin_is_created_once_and_reset_when_changed():
    svc, _ = synthetic_service(None)
    env = {"ASPL_ADMIN_PASSWORD": "from-the-env", "ASPL_ADMIN_USER": "boss"}
    assert svc.apply_env_admin(env) and not svc.apply_env_admin(env)
    assert svc.authenticate("boss", "from-the-env")["role"] == "admin"
    assert svc.apply_env_admin({**env, "ASPL_ADMIN_PASSWORD": "changed-in-env"})
    assert svc.authenticate("boss", "changed-in-env")["role"] == "admin"
    assert not svc.apply_env_admin({})


def test_an_old_admin_password_becomes_the_admin_account(tmp_path):
    import sqlite3

    from aspl.service.auth import hash_password

    lib = Library(tmp_path / "lib")
    lib.close()
    con = sqlite3.connect(tmp_path / "lib" / "library.db")
    with con:  # a library from before accounts: one admin password setting
        con.execute("DROP TABLE users")
        con.execute("DROP TABLE login_failures")
        con.execute("DELETE FROM _migrations WHERE name = 'm009_accounts'")
        con.execute("INSERT INTO settings VALUES ('admin_password', ?)", [json.dumps(hash_password("old password"))])
    con.close()
    from aspl.service import Service

    svc = Service(Library(tmp_path / "lib"))
    assert svc.authenticate("admin", "old password") == {"name": "admin", "role": "admin"}
    assert svc.library.get_setting("admin_password") is None
