"""Admin page (AppTest): password on first start, run a round with progress, settings, history, export."""
import os

import pytest

from apphelpers import app_test, build_synthetic, page, texts
from storage import Library


def service():
    from app_pages.common import _service

    return _service(os.environ["ASPL_DB"])


@pytest.fixture
def root(tmp_path):
    build_synthetic(tmp_path / "lib", human_per_person=1)[0].close()
    return tmp_path / "lib"


def test_first_admin_is_made_with_the_setup_token_only(root, monkeypatch):
    at = app_test(monkeypatch, root, annotator=None, password=None)
    assert "no admin account yet" in texts(at) and "setup token" in texts(at)
    token = service().setup_token()  # what the server prints to its log

    def create(tok: str) -> None:
        for key, value in (("setup_token", tok), ("setup_name", "root"), ("setup_pw1", "brand new pass"),
                           ("setup_pw2", "brand new pass")):
            at.text_input(key=key).set_value(value)
        next(b for b in at.button if b.label == "Create the admin account").click().run()

    create("a guess")
    assert "wrong setup token" in texts(at) and not service().has_admin()
    create(token)
    assert not at.exception and "Signed in as **root** (admin)" in texts(at)
    page(at, "admin")
    assert "Run a round" in texts(at)
    assert service().authenticate("root", "brand new pass")["role"] == "admin"
    assert "brand new pass" not in str(Library(root).user("root"))


def test_a_reload_keeps_the_login_through_the_session_cookie(root, monkeypatch):
    at = app_test(monkeypatch, root, annotator="alice", role="reviewer")
    assert "Signed in as **alice** (reviewer)" in texts(at)
    token = at.session_state["_token"]
    import app_pages.common as common

    monkeypatch.setattr(common, "_cookie_token", lambda: token)  # the browser sends the cookie back
    again = app_test(monkeypatch, root, annotator=None)  # a new session, nobody typed anything
    assert "Signed in as **alice** (reviewer)" in texts(again)
    monkeypatch.setattr(common, "_cookie_token", lambda: token[:-2] + "xx")  # a tampered cookie
    assert "Signed in as" not in texts(app_test(monkeypatch, root, annotator=None))


def test_round_history_settings_and_export(root, monkeypatch):
    at = page(app_test(monkeypatch, root), "admin")
    at.button(key="run_round").click().run()
    assert not at.exception
    service().jobs.latest("round").wait(60)
    at.run()
    t = texts(at)
    assert "Round 1:" in t and "auto-labels" in t
    assert at.dataframe  # round history table (and backbone pool)
    # settings: a bad value is refused with its name, a good one saved
    next(n for n in at.number_input if n.label == "lambda_start").set_value(0.0)
    next(b for b in at.button if b.label == "Save settings").click().run()
    assert "pace needs 0 < start" in texts(at)
    next(n for n in at.number_input if n.label == "lambda_start").set_value(0.2)
    next(n for n in at.number_input if n.label == "query_size").set_value(7)
    next(b for b in at.button if b.label == "Save settings").click().run()
    assert not at.exception
    loop = service().loop_settings()
    assert loop.engine["lambda_start"] == 0.2 and loop.engine["query_size"] == 7
    at.button(key="export").click().run()
    assert not at.exception
    n = len(service().export_rows())
    assert n > 0 and f"{n} faces of 4 people written" in texts(at)
    import pandas as pd

    (csv_path,) = list((root / "exports").glob("*/faces.csv"))
    assert len(pd.read_csv(csv_path)) == n == len(pd.read_parquet(csv_path.with_suffix(".parquet")))
    at.button(key="logout").click().run()
    assert "Log in" in texts(at)
