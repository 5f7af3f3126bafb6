"""Admin page (AppTest): password on first start, run a round with progress, settings, history, export."""
import os

import pytest

from apphelpers import app_test, build_synthetic, login, page, texts
from storage import Library


def service():
    from app_pages.common import _service

    return _service(os.environ["ASPL_DB"])


@pytest.fixture
def root(tmp_path):
    build_synthetic(tmp_path / "lib", human_per_person=1)[0].close()
    return tmp_path / "lib"


def test_first_start_sets_the_password(root, monkeypatch):
    at = page(app_test(monkeypatch, root, password=None), "admin")
    assert "No admin password is set yet" in texts(at)
    pw = [t for t in at.text_input if t.label in ("New admin password", "Repeat it")]
    pw[0].set_value("brand new pass")
    pw[1].set_value("brand new pass")
    next(b for b in at.button if b.label == "Set password").click().run()
    assert not at.exception and "Run a round" in texts(at)
    assert service().check_admin_password("brand new pass")
    rec = Library(root).get_setting("admin_password")
    assert "brand new pass" not in str(rec)


def test_round_history_settings_and_export(root, monkeypatch):
    at = login(page(app_test(monkeypatch, root), "admin"))
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
