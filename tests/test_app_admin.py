"""Admin page (AppTest): password on first start, run a round with progress, settings, history, export."""
import os

import pytest

from pgserver import library_at
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
    assert "brand new pass" not in str(library_at(root).user("root"))


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
    next(n for n in at.number_input if n.label == "lambda_start").set_value(0.2)  # under "Advanced"
    at.number_input(key="loop_query_size").set_value(7)
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


def test_loop_settings_have_plain_labels_help_and_keep_what_is_not_changed(root, monkeypatch):
    at = page(app_test(monkeypatch, root), "admin")
    svc = service()
    svc.set_loop_settings({**svc.loop_settings().as_dict(), "queue_low": 9}, "admin")
    at.run()
    labels = {n.key: (n.label, n.proto.help) for n in at.number_input if n.key and n.key.startswith("loop_")}
    assert labels["loop_round_every"][0] == "Start a round after this many answers"
    assert "0 = only by hand" in labels["loop_round_every"][1]
    assert labels["loop_auto_trust"][0] == "Never ask about auto-labels above this confidence"
    assert labels["loop_query_size"][0] == "Questions per round" and labels["loop_min_labels"][1]
    for key in ("loop_lease", "loop_queue_low", "loop_review_random", "loop_review_low", "loop_batch_size",
                "loop_cluster_similarity", "loop_support_similarity"):
        assert labels[key][1], key  # every named setting explains itself
    assert at.selectbox(key="loop_method").value == "aspl-guarded"
    assert any(o.startswith("aspl-guarded: ") and o.endswith("(default)")
               for o in at.selectbox(key="loop_method").options)  # methods say what they do
    at.number_input(key="loop_round_every").set_value(0)
    at.number_input(key="loop_auto_trust").set_value(0.95)
    at.number_input(key="loop_cluster_similarity").set_value(0.9)
    next(b for b in at.button if b.label == "Save settings").click().run()
    assert not at.exception and "Settings saved." in texts(at)
    loop = svc.loop_settings()
    assert (loop.round_every, loop.auto_trust, loop.cluster_similarity) == (0, 0.95, 0.9)
    assert loop.queue_low == 9 and loop.method == "aspl-guarded"  # untouched settings are kept
    assert "rounds start only by hand" in texts(at)
    at.selectbox(key="loop_method").set_value("ceal").run()
    assert next(n for n in at.number_input if n.label == "temperature")  # CEAL's own settings under Advanced
    assert at.number_input(key="loop_query_size").value == loop.engine.get("query_size", 20)
    next(b for b in at.button if b.label == "Save settings").click().run()
    assert service().loop_settings().method == "ceal"


def test_face_quality_previews_and_applies_the_thresholds(root, monkeypatch):
    at = page(app_test(monkeypatch, root), "admin")
    svc = service()
    assert at.button(key="quality_apply").label == "Apply: hide 0 face(s)"
    assert "Now: **0** face(s) hidden" in texts(at)
    assert "shorter side" in at.number_input(key="quality_min_px").proto.help
    at.number_input(key="quality_min_px").set_value(100.0).run()  # synthetic faces are 60 px
    assert at.button(key="quality_apply").label == "Apply: hide 32 face(s)" and not svc.hidden_faces()
    at.button(key="quality_apply").click().run()
    assert not at.exception and "Thresholds applied: 32 face(s) hidden now." in texts(at)
    assert "Now: **32** face(s) hidden (stored thresholds: 100 px, probability 0, 0 of the largest face)." in texts(at)
    assert len(svc.hidden_faces()) == 32 and svc.face_quality()["min_px"] == 100
    at.run()
    assert "Every face is named, a stranger or hidden." in texts(at)  # the loop's line (drawn above the form)
    assert at.number_input(key="quality_min_px").value == 100.0
    at.number_input(key="quality_min_px").set_value(0.0).run()
    at.number_input(key="quality_min_prob").set_value(0.5).run()
    at.button(key="quality_apply").click().run()
    assert "Thresholds applied: 0 face(s) hidden now." in texts(at) and not svc.hidden_faces()


def test_swap_to_an_untrained_backbone_warns_and_needs_swap_anyway(root, monkeypatch):
    at = app_test(monkeypatch, root)
    page(at, "admin")
    at.selectbox(key="swap_to").set_value("lrcn-small").run()
    assert "has no pretrained weights here" in texts(at)
    at.button(key="swap").click().run()
    assert "swap anyway" in texts(at) and service().jobs.latest("backbone") is None
    assert service().backbone == "synthetic"


def test_index_structure_is_set_from_the_backbone_tab(root, monkeypatch):
    at = page(app_test(monkeypatch, root), "admin")
    assert at.text_input(key="index_factory").value == "auto"
    at.text_input(key="index_factory").set_value("IVF8,PQ5").run()
    at.button(key="index_rebuild").click().run()
    assert "PQ m must divide" in texts(at) and service().index_info()["factory"] == "auto"
    at.text_input(key="index_factory").set_value("IVF4,PQ4x4").run()
    at.button(key="index_rebuild").click().run()
    job = service().jobs.latest("index")
    assert job is not None and job.wait(60).status == "done", job and job.error
    at.run()
    assert not at.exception and "open now: `IVF4,PQ4x4`" in texts(at)


def test_saving_another_method_leaves_its_optional_guard_off_and_the_guard_can_be_set(root, monkeypatch):
    at = page(app_test(monkeypatch, root), "admin")
    at.selectbox(key="loop_method").set_value("aspl-margin").run()
    guard = next(n for n in at.number_input if n.label == "support_similarity")
    assert guard.value is None  # off for the paper's rule
    next(b for b in at.button if b.label == "Save settings").click().run()
    assert not at.exception
    loop = service().loop_settings()
    assert loop.method == "aspl-margin" and "support_similarity" not in loop.engine
    next(n for n in at.number_input if n.label == "support_similarity").set_value(0.65)
    next(b for b in at.button if b.label == "Save settings").click().run()
    assert not at.exception and service().loop_settings().engine["support_similarity"] == 0.65
