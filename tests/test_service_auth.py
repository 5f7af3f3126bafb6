"""The admin password: salted scrypt hash, set on first start or from ASPL_ADMIN_PASSWORD."""
import json

import pytest

from apphelpers import synthetic_service


def test_password_is_stored_hashed_and_salted():
    svc, _ = synthetic_service(None)
    assert not svc.admin_password_is_set() and not svc.check_admin_password("anything goes")
    svc.set_admin_password("s3cret-enough")
    rec = svc.library.get_setting("admin_password")
    assert rec["algo"] == "scrypt" and "s3cret" not in json.dumps(rec)
    assert svc.check_admin_password("s3cret-enough") and not svc.check_admin_password("s3cret-enougH")
    salt = rec["salt"]
    svc.set_admin_password("s3cret-enough")
    assert svc.library.get_setting("admin_password")["salt"] != salt
    ev = [e for e in svc.events() if e["kind"] == "setting_changed" and e["payload"]["key"] == "admin_password"]
    assert len(ev) == 2 and all(e["payload"]["value"] == "(hidden)" for e in ev)


def test_short_password_refused():
    svc, _ = synthetic_service(None)
    with pytest.raises(ValueError, match="at least 8 characters"):
        svc.set_admin_password("short")


def test_env_password_applies_once():
    svc, _ = synthetic_service(None)
    assert svc.apply_env_password({"ASPL_ADMIN_PASSWORD": "from-the-env"})
    assert not svc.apply_env_password({"ASPL_ADMIN_PASSWORD": "from-the-env"})
    assert svc.check_admin_password("from-the-env")
    assert not svc.apply_env_password({})
