"""Annotate page (AppTest): one face with suggestions, new person, not a face, skip, undo, batch mode."""
import json
import os
import re
import shutil
import subprocess

import pytest

from apphelpers import app_test, build_synthetic, texts
from keyhelpers import allow_typed_names, key_map

pytestmark = pytest.mark.usefixtures("person_pages")


@pytest.fixture
def at(tmp_path, monkeypatch):
    lib, truth = build_synthetic(tmp_path / "lib", human_per_person=1)
    lib.close()
    at = app_test(monkeypatch, tmp_path / "lib")
    at.truth = truth
    return at


def shown(at) -> int:
    m = re.search(r"data-face='(\d+)'", texts(at))
    assert m, texts(at)
    return int(m.group(1))


def service(at):
    from app_pages.common import _service

    return _service(os.environ["ASPL_DB"])


def test_login_is_asked_first_and_the_name_comes_from_the_account(tmp_path, monkeypatch):
    lib, _ = build_synthetic(tmp_path / "lib")
    lib.close()
    at = app_test(monkeypatch, tmp_path / "lib", annotator=None)
    assert "Log in" in texts(at) and not at.exception
    assert not [b for b in at.button if b.key and b.key.startswith("kb_")]  # no labelling before a login
    at = app_test(monkeypatch, tmp_path / "lib", annotator="dora", role="annotator")
    assert "Signed in as **dora** (annotator)" in texts(at) and at.button(key="kb_x")


def test_confirm_a_suggestion_shows_the_next_face(at):
    f = shown(at)
    first = at.button(key="kb_1")
    assert at.truth[f] in first.label and "%" in first.label and "Enter" in first.label
    assert key_map(at)[0]["enter"] == "kb_1"  # Enter confirms the top suggestion
    assert len(at.image) >= 3  # crop, photo with box, suggestion thumbnails
    first.click().run()
    assert not at.exception
    g = shown(at)
    assert g != f
    svc = service(at)
    lab = svc.library.label_rows(("human",), face_id=f)[0]
    assert lab["annotator"] == "alice" and svc.library.person_name(lab["person_id"]) == at.truth[f]


def test_new_person_not_a_face_skip_and_undo(at):
    f = shown(at)
    # AppTest's selectbox only takes listed options; typing a new name is covered by the browser test
    at.selectbox(key="kb_new").set_value("Grace Hopper").run()
    g = shown(at)
    assert g != f
    svc = service(at)
    assert svc.library.face_persons([f]) == {f: svc.library.person_id("Grace Hopper")}
    assert at.selectbox(key="kb_new").value is None  # the name box is cleared for the next face
    at.button(key="kb_x").click().run()
    assert svc.library.face(g)["status"] == "not_face"
    h = shown(at)
    at.button(key="kb_s").click().run()
    assert shown(at) not in (f, g, h)
    at.button(key="kb_u").click().run()  # undo the skip
    assert shown(at) == h
    at.button(key="kb_u").click().run()  # undo not-a-face
    assert shown(at) == g and svc.library.face(g)["status"] == "ok"
    assert "Undone" in texts(at)


def test_keyboard_snippet_is_on_the_page(at):
    html = [e for e in at.main if getattr(e, "type", "") == "html"] or at.get("html")
    body = " ".join(str(getattr(h, "proto", h)) for h in html)
    assert "kb_new" in body and "keydown" in body


def test_batch_mode_accepts_a_group(at):
    svc = service(at)
    svc.run_round("admin")
    at.segmented_control(key="ann_mode").set_value("Batch").run()
    assert not at.exception
    group = at.selectbox(key="batch_group")
    assert "auto-labelled" in group.options[0]
    boxes = [c for c in at.checkbox if c.key and c.key.startswith("bsel_")]
    assert len(boxes) >= 2
    boxes[-1].uncheck().run()
    at.button(key="batch_accept").click().run()
    assert not at.exception
    assert "Labelled" in texts(at)
    assert len(svc.library.label_rows(("human",))) >= 4 + len(boxes) - 1
    assert len(svc.library.rejections()) == 1


def test_empty_library_points_to_import(tmp_path, monkeypatch):
    at = app_test(monkeypatch, tmp_path / "empty")
    assert not at.exception and "import photos on the Import page" in texts(at)


def test_explain_is_offered_only_for_torch_backbones(at):
    # The synthetic library's vectors come from no registered network: nothing to explain.
    assert "LinearScope explains torch ReLU networks" in texts(at)
    assert not [b for b in at.button if b.key and b.key.startswith("explain_")]


def test_explain_draws_a_linearscope_heatmap(tmp_path, monkeypatch):
    lib, _ = build_synthetic(tmp_path / "lib", human_per_person=2)
    lib.set_setting("backbone", "simplenet-v1-050")
    lib.close()
    at = app_test(monkeypatch, tmp_path / "lib")
    f = shown(at)
    at.button(key=f"explain_{f}").click().run()
    assert not at.exception
    captions = [img.proto.imgs[0].caption for img in at.image]
    assert any(c.startswith("red supports") for c in captions), captions


# ------------------------------------------------------------------ keyboard and the name box
def test_keyboard_snippet_survives_the_html_sanitizer_and_checks_actions():
    from app_pages.common import _KEYS_JS, keyboard

    script = _KEYS_JS.split("<script>")[1].split("</script>")[0]
    assert not re.search(r"<[/\w]", script)  # Streamlit's DOMPurify drops a script with "<" before a letter
    with pytest.raises(ValueError, match=r"unknown key actions for \['x'\]; valid choices: an element key"):
        keyboard({"x": "@fly"})


# The keyboard snippet's Enter in a name box, run by node on a stand-in DOM: the typed text, the list's options
# (data-key, text) and the option highlighted (aria-activedescendant; None: none yet).
_ENTER_HARNESS = """
let listener = null, lists = {};
const doc = {addEventListener: (type, fn) => { if (type === "keydown") listener = fn; },
             getElementById: id => lists[id] || null, querySelectorAll: () => [], querySelector: () => null,
             activeElement: null};
new Function("window", "document", SCRIPT)({parent: {document: doc}}, doc);
const enter = ([value, options, active, before]) => {
  const picked = [];
  const els = options.map(([key, text]) => ({id: "L-" + key, key, textContent: text, click: () => picked.push(text)}));
  const creatable = o => o.key === "__creatable__";
  lists = {L: {querySelector: sel => els.find(o => sel.includes(":not(") ? !creatable(o) : creatable(o)) || null}};
  const attrs = {"aria-controls": "L", "role": "combobox", "aria-activedescendant": active && "L-" + active};
  const t = {tagName: "INPUT", type: "text", value, blur() {}, getAttribute: n => attrs[n] || null};
  let stopped = false;
  for (const key of [...before, "Enter"])
    listener({key, target: t, preventDefault() { stopped = stopped || key === "Enter"; }, stopPropagation() {}});
  return [picked, stopped];
};
console.log(JSON.stringify(CASES.map(enter)));
"""


@pytest.mark.skipif(not shutil.which("node"), reason="node is not installed")
def test_enter_in_a_name_box_picks_the_existing_name_also_when_typed_fast():
    """Enter right after the last letter (before the list highlights "Add: ...") picks the first existing name
    too; an existing name the list highlights, the arrows, a new name and a list not yet updated for the
    typed text leave Enter to the box."""
    from app_pages.common import _KEYS_JS

    script = (_KEYS_JS % ("{}", '""', "-none-", "t")).split("<script>")[1].split("</script>")[0]
    options = [["__creatable__", "Add: ada"], ["0", "Ada Lovelace"], ["1", "Adam Smith"]]
    cases = [["ada", options, None, []],  # typed fast: nothing highlighted yet
             ["ada", options, "__creatable__", []],  # "Add: ada" highlighted
             ["ada", options, "1", []],  # an existing name highlighted: the box takes it
             ["ada", options, "__creatable__", ["ArrowDown", "ArrowUp"]],  # the arrows chose "Add"
             ["Zora", [["__creatable__", "Add: Zora"]], None, []],  # a new name like no other
             ["al", [["__creatable__", "Add: a"], ["0", "Ada Lovelace"]], None, []]]  # the list is a letter behind
    js = _ENTER_HARNESS.replace("SCRIPT", json.dumps(script)).replace("CASES", json.dumps(cases))
    out = subprocess.run(["node"], input=js, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [[["Ada Lovelace"], True], [["Ada Lovelace"], True], [[], False], [[], False],
                                      [[], False], [[], False]]


def test_name_box_takes_an_existing_person_under_another_case(at, monkeypatch):
    allow_typed_names(monkeypatch)
    svc = service(at)
    f = shown(at)
    at.selectbox(key="kb_new").set_value("  grace HOPPER").run()
    assert not at.exception and shown(at) != f
    assert svc.library.face_persons([f]) == {f: svc.library.person_id("Grace Hopper")}
    assert len(svc.people()) == 4 and f"Face #{f}: Grace Hopper" in texts(at)


def test_name_box_asks_before_creating_a_name_that_begins_an_existing_one(at, monkeypatch):
    allow_typed_names(monkeypatch)
    svc = service(at)
    f = shown(at)
    at.selectbox(key="kb_new").set_value("grace").run()
    assert not at.exception and shown(at) == f and f not in svc.library.labelled_face_ids()
    assert "**grace** is nobody yet, but it begins **Grace Hopper**" in texts(at)
    keys, _ = key_map(at)
    assert (keys["enter"], keys["c"], keys["escape"]) == ("kb_nameq_0", "kb_nameq_new", "kb_nameq_cancel")
    assert keys["1"] == "kb_1" and keys["n"] == "kb_new"  # the face's own keys still work
    at.button(key="kb_nameq_cancel").click().run()  # Esc: nothing is labelled
    assert shown(at) == f and "is nobody yet" not in texts(at) and key_map(at)[0]["enter"] == "kb_1"
    at.selectbox(key="kb_new").set_value("grace").run()
    at.button(key="kb_nameq_0").click().run()  # Enter: the existing person
    assert svc.library.face_persons([f]) == {f: svc.library.person_id("Grace Hopper")}
    g = shown(at)
    assert g != f
    at.selectbox(key="kb_new").set_value("grace").run()
    at.button(key="kb_nameq_new").click().run()  # C: a new person after all
    assert not at.exception
    assert svc.library.face_persons([g]) == {g: svc.library.person_id("grace")}
    assert svc.library.person_id("grace") != svc.library.person_id("Grace Hopper")


def test_a_new_name_like_no_other_creates_the_person_at_once(at, monkeypatch):
    allow_typed_names(monkeypatch)
    svc = service(at)
    f = shown(at)
    at.selectbox(key="kb_new").set_value("Zora Neale Hurston").run()
    assert shown(at) != f
    assert svc.library.face_persons([f]) == {f: svc.library.person_id("Zora Neale Hurston")}


def test_batch_keys_move_tick_and_accept(at):
    service(at).run_round("admin")
    at.segmented_control(key="ann_mode").set_value("Batch").run()
    keys, grid = key_map(at)
    assert grid == "bface_"
    assert {k: keys[k] for k in ("a", "u", "space", "j", "k", "arrowright", "arrowleft", "arrowdown", "arrowup")} == {
        "a": "batch_accept", "u": "batch_undo", "space": "@toggle", "j": "@move:1", "k": "@move:-1",
        "arrowright": "@move:1", "arrowleft": "@move:-1", "arrowdown": "@move:8", "arrowup": "@move:-8"}
    assert "n" not in keys  # a person's group has no name box
    boxes = [c for c in at.checkbox if c.key and c.key.startswith("bsel_")]
    boxes[0].uncheck().run()  # A still accepts right after unticking (the key map is unchanged)
    assert key_map(at)[0]["a"] == "batch_accept" and not at.button(key="batch_accept").disabled


def test_batch_invert_then_accept_nothing_records_the_whole_group_as_not_this_person(at):
    svc = service(at)
    svc.run_round("admin")
    at.segmented_control(key="ann_mode").set_value("Batch").run()
    g = next(x for x in svc.batch_groups("alice") if x.key == at.selectbox(key="batch_group").value)
    assert g.kind == "person" and key_map(at)[0]["i"] == "batch_invert"
    at.button(key="batch_invert").click().run()
    assert not any(c.value for c in at.checkbox if c.key and c.key.startswith(f"bsel_{g.key}_"))
    name = svc.person_name(g.person_id)
    accept = at.button(key="batch_accept")
    assert not accept.disabled and accept.label.endswith(f"None of the {len(g.face_ids)} is {name}")
    accept.click().run()
    assert not at.exception and f"{len(g.face_ids)} recorded as not {name}" in texts(at)
    assert {(f, g.person_id) for f in g.face_ids} <= svc.library.rejections()
    assert not set(g.face_ids) & svc.library.labelled_face_ids(("human",))


def test_batch_keeps_the_chosen_group_until_it_is_accepted(at):
    svc = service(at)
    svc.run_round("admin")
    at.segmented_control(key="ann_mode").set_value("Batch").run()
    second = svc.batch_groups("alice")[1]
    at.selectbox(key="batch_group").set_value(second.key).run()
    boxes = [c for c in at.checkbox if c.key and c.key.startswith("bsel_")]
    assert all(c.key.startswith(f"bsel_{second.key}_") for c in boxes)
    boxes[-1].uncheck().run()
    assert at.selectbox(key="batch_group").value == second.key  # no jump to another group
    at.button(key="batch_accept").click().run()
    assert not at.exception
    assert at.selectbox(key="batch_group").value != second.key  # accepted: the first group left


def test_batch_name_box_asks_before_creating_and_names_the_group(at, monkeypatch):
    allow_typed_names(monkeypatch)
    svc = service(at)
    at.segmented_control(key="ann_mode").set_value("Batch").run()
    key = at.selectbox(key="batch_group").value
    assert key.startswith("cluster-")
    box = f"kb_bname_{key}"
    assert key_map(at)[0]["n"] == box
    faces = [int(c.key.rsplit("_", 1)[1]) for c in at.checkbox if c.key and c.key.startswith("bsel_")]
    name = at.truth[faces[0]]
    typed = name.split()[0].lower()
    at.selectbox(key=box).set_value(typed).run()
    assert not at.exception and at.button(key="batch_accept").disabled  # nobody is chosen yet
    assert f"**{typed}** is nobody yet, but it begins **{name}**" in texts(at)
    assert key_map(at)[0]["enter"] == "kb_nameq_0"
    at.button(key="kb_nameq_0").click().run()
    assert at.selectbox(key=box).value == name and "is nobody yet" not in texts(at)
    assert at.button(key="batch_accept").label.endswith(f"as {name}")
    at.button(key="batch_accept").click().run()
    assert not at.exception and f"Labelled {len(faces)} face(s) as {name}." in texts(at)
    named = svc.library.label_rows(("human",), person_id=svc.library.person_id(name))
    assert set(faces) <= {r["face_id"] for r in named}
    assert len(svc.people()) == 4


def test_batch_name_question_can_create_the_new_person_or_cancel(at, monkeypatch):
    allow_typed_names(monkeypatch)
    svc = service(at)
    at.segmented_control(key="ann_mode").set_value("Batch").run()
    key = at.selectbox(key="batch_group").value
    box = f"kb_bname_{key}"
    at.selectbox(key=box).set_value("ada").run()
    at.button(key="kb_nameq_cancel").click().run()  # Esc: the box is emptied
    assert at.selectbox(key=box).value is None and "is nobody yet" not in texts(at)
    at.selectbox(key=box).set_value("ada").run()
    at.button(key="kb_nameq_new").click().run()  # C: "ada" is a new person
    assert at.button(key="batch_accept").label.endswith("as ada") and not at.button(key="batch_accept").disabled
    at.button(key="batch_accept").click().run()
    assert not at.exception and svc.library.person_id("ada") != svc.library.person_id("Ada Lovelace")


# ------------------------------------------------------------------ strangers, the loop's states, hidden faces
def test_stranger_button_marks_the_face_and_undo_brings_it_back(at):
    svc = service(at)
    f = shown(at)
    g_button = at.button(key="kb_g")
    assert g_button.label == "**G** · Stranger" and "nobody needs named" in g_button.proto.help
    assert "no face here" in at.button(key="kb_x").proto.help  # the two answers explain their difference
    assert key_map(at)[0]["g"] == "kb_g"
    before = svc.remaining()
    t = texts(at)
    assert f"**{before}** face(s) still need a person: no name, auto-label, stranger or not-a-face mark" in t
    every = svc.loop_settings().round_every
    assert f"The next round starts by itself after {every} more answer(s)." in t  # no answer yet
    g_button.click().run()
    assert not at.exception and f"Face #{f} marked as a stranger" in texts(at)
    assert svc.library.face(f)["status"] == "stranger" and shown(at) != f
    assert svc.remaining() == before - 1 and f"**{before - 1}** face(s) still need a person" in texts(at)
    assert f"after {every - 1} more answer(s)" in texts(at)
    at.button(key="kb_u").click().run()
    assert shown(at) == f and svc.library.face(f)["status"] == "ok" and svc.remaining() == before


def test_done_state_names_what_the_faces_are(tmp_path, monkeypatch):
    lib, truth = build_synthetic(tmp_path / "lib", n_people=2, per_person=3, human_per_person=2)
    lib.close()
    at = app_test(monkeypatch, tmp_path / "lib")
    svc = service(at)
    open_ = [f for f in truth if f not in {r["face_id"] for r in svc.library.label_rows(("human",))}]
    svc.stranger(open_[0], "bob")
    svc.confirm(open_[1], svc.library.person_id(truth[open_[1]]), "bob")
    at.run()
    t = texts(at)
    assert not at.exception and "**Done: every face is named, a stranger or hidden.**" in t, t
    assert "6 face(s): 5 named by people, 0 auto-labelled, 1 stranger(s), 0 hidden; 2 people." in t
    assert not [b for b in at.button if b.key in ("kb_g", "kb_x", "ann_round")]


def test_a_running_round_then_no_free_face_offers_to_start_one(tmp_path, monkeypatch):
    import threading

    lib, truth = build_synthetic(tmp_path / "lib", n_people=2, per_person=3, human_per_person=1)
    named = {r["face_id"] for r in lib.label_rows(("human",))}
    for f in truth:  # another annotator holds every open face
        if f not in named:
            lib.lease(f, "bob", 600)
    lib.close()
    at = app_test(monkeypatch, tmp_path / "lib", role="annotator")
    svc = service(at)
    gate = threading.Event()
    job = svc.jobs.submit("round", "labelling round", lambda progress: gate.wait(30))
    try:
        at.run()
        t = texts(at)
        assert not at.exception and "**A round is running: new questions soon.** 4 face(s) still need a person" in t
        assert at.button(key="ann_check") and not [b for b in at.button if b.key == "ann_round"]
    finally:
        gate.set()
    job.wait(10)
    at.run()
    t = texts(at)
    assert "**4 face(s) still need a person, but none is free for you right now**" in t, t
    assert f"The next round starts by itself after {svc.loop_settings().round_every} more answer(s)." in t
    rounds = len(svc.rounds())
    at.button(key="ann_round").click().run()  # an annotator starts a round: no Admin page needed
    assert not at.exception and "Round started" in texts(at)
    svc.jobs.latest("round").wait(60)
    assert len(svc.rounds()) == rounds + 1


def test_hidden_faces_are_shown_on_request_and_one_can_be_named_anyway(tmp_path, monkeypatch):
    lib, truth = build_synthetic(tmp_path / "lib", human_per_person=1)
    lib.set_face_quality(100, 0)  # synthetic faces are 60 px: every face hidden
    lib.close()
    at = app_test(monkeypatch, tmp_path / "lib")
    svc = service(at)
    t = texts(at)
    assert "**Done: every face is named, a stranger or hidden.**" in t and "32 hidden" in t
    assert f"{len(truth)} face(s) are smaller or less sure than the library's thresholds" in t
    assert not [b for b in at.button if b.key and b.key.startswith("unhide_")]  # no crops until asked
    at.toggle(key="hidden_show").set_value(True).run()
    shown_ids = [int(b.key.split("_")[1]) for b in at.button if b.key and b.key.startswith("unhide_")]
    assert shown_ids == svc.hidden_faces(limit=24) and at.button(key="hidden_more").label == "Show more (8 not shown)"
    at.button(key="hidden_more").click().run()
    assert len([b for b in at.button if b.key and b.key.startswith("unhide_")]) == 32
    named = {r["face_id"] for r in svc.library.label_rows(("human",))}
    f = next(x for x in shown_ids if x not in named)
    at.button(key=f"unhide_{f}").click().run()
    assert not at.exception and shown(at) == f and f"Face #{f} is shown anyway: name it now" in texts(at)
    assert svc.library.face(f)["hidden"] == 0
    at.button(key="kb_u").click().run()  # undo: hidden again, done again
    assert svc.library.face(f)["hidden"] == 1 and "**Done: every face is named" in texts(at)
    at.button(key=f"unhide_{f}").click().run()
    at.button(key="kb_1").click().run()
    assert svc.library.face_persons([f]) == {f: svc.library.person_id(truth[f])}
    assert "**Done: every face is named" in texts(at)
    g = next(x for x in shown_ids if x in named)  # already named while hidden: it just joins the loop again
    at.button(key=f"unhide_{g}").click().run()
    assert f"it is named {truth[g]} already" in texts(at) and svc.library.face(g)["hidden"] == 0


def test_batch_best_guesses_show_each_faces_name_and_accept_each_as_its_own(at):
    svc = service(at)
    lib = svc.library
    rid = svc.run_round("admin")["round"]
    lib.replace_auto_labels(rid, [])  # every face open: what the classifiers say is a guess
    svc.set_loop_settings({"cluster_similarity": 0.999, "support_similarity": 0.999})
    (g,) = [x for x in svc.batch_groups("alice") if x.kind == "guesses"]
    at.segmented_control(key="ann_mode").set_value("Batch").run()
    at.selectbox(key="batch_group").set_value(g.key).run()
    assert not at.exception
    boxes = {c.key: c for c in at.checkbox if c.key and c.key.startswith(f"bsel_{g.key}_")}
    assert len(boxes) == len(g.face_ids)
    for f in g.face_ids:  # each face carries its own guessed name
        assert lib.person_name(g.persons[f]) in boxes[f"bsel_{g.key}_{f}"].label
    out = g.face_ids[-1]
    boxes[f"bsel_{g.key}_{out}"].uncheck().run()
    assert "their best guesses" in at.button(key="batch_accept").label
    at.button(key="batch_accept").click().run()
    assert not at.exception and "recorded as not the name shown" in texts(at)
    named = lib.face_persons(g.face_ids)
    assert set(named) == set(g.face_ids) - {out}
    assert all(named[f] == g.persons[f] for f in named)
    assert (out, g.persons[out]) in lib.rejections()


def test_batch_cluster_starts_a_lookalikes_faces_unticked_and_naming_it_rejects_them(at, monkeypatch):
    import numpy as np

    import aspl.service.batch as batch

    def last_two(S, gap, **kw):  # as if the split found a lookalike's two faces at the group's end
        m = np.zeros(S.shape[0], dtype=bool)
        m[-2:] = S.shape[0] >= 4
        return m

    monkeypatch.setattr(batch, "lookalike_subgroup", last_two)
    svc = service(at)
    at.segmented_control(key="ann_mode").set_value("Batch").run()
    key = at.selectbox(key="batch_group").value
    assert key.startswith("cluster-")
    g = next(x for x in svc.batch_groups("alice") if x.key == key)
    assert len(g.unticked) == 2 and g.face_ids[-2:] == g.unticked
    ticks = {int(c.key.rsplit("_", 1)[1]): c.value for c in at.checkbox if c.key and c.key.startswith(f"bsel_{key}_")}
    assert [f for f, v in ticks.items() if not v] == g.unticked
    assert "start unticked" in texts(at)
    name = at.truth[g.face_ids[0]]
    at.selectbox(key=f"kb_bname_{key}").set_value(name).run()
    at.button(key="batch_accept").click().run()
    assert not at.exception
    pid = svc.library.person_id(name)
    assert {(f, pid) for f in g.unticked} <= set(svc.library.rejections())
    named = {r["face_id"] for r in svc.library.label_rows(("human",), person_id=pid)}
    assert set(g.face_ids[:-2]) <= named and not set(g.unticked) & named


def test_batch_sweep_of_strangers_keeps_the_unticked_faces_out_of_the_next_sweep(at, monkeypatch):
    import aspl.service.batch as batch

    monkeypatch.setattr(batch, "OPEN_LIKENESS_MAX", 2.0)  # every open face may join the leftover grid
    svc = service(at)
    lib = svc.library
    svc.set_loop_settings({"cluster_similarity": 0.999})  # no clusters: the open faces are one leftover grid
    (g,) = [x for x in svc.batch_groups("alice") if x.kind == "open"]
    at.segmented_control(key="ann_mode").set_value("Batch").run()
    at.selectbox(key="batch_group").set_value(g.key).run()
    out = g.face_ids[-1]
    at.checkbox(key=f"bsel_{g.key}_{out}").uncheck().run()
    at.button(key="batch_strangers").click().run()
    assert not at.exception and "will be asked one by one" in texts(at)
    assert lib.not_strangers() == {out}
    assert all(lib.face(f)["status"] == "stranger" for f in g.face_ids if f != out)
    assert lib.face(out)["status"] == "ok"
    assert not any(out in x.face_ids for x in svc.batch_groups("alice") if x.kind == "open")


def test_batch_names_one_face_of_the_grid_on_its_own_and_keeps_the_other_ticks(at, monkeypatch):
    """E (the tile's pencil) asks who one face of a grid is: the name labels that face alone, it leaves
    the grid, and the ticks of the other faces stay as they were; Esc (cancel) names nobody."""
    allow_typed_names(monkeypatch)
    svc = service(at)
    lib = svc.library
    at.segmented_control(key="ann_mode").set_value("Batch").run()
    assert not at.exception
    key = at.selectbox(key="batch_group").value
    faces = [int(c.key.rsplit("_", 1)[1]) for c in at.checkbox if c.key and c.key.startswith(f"bsel_{key}_")]
    assert len(faces) >= 3
    other, last = faces[1], faces[-1]
    at.checkbox(key=f"bsel_{key}_{other}").uncheck().run()
    human = len(lib.label_rows(("human",)))
    assert key_map(at)[0]["e"] == "@tile:bnameit_"  # E presses the pencil of the tile in focus
    at.button(key=f"bnameit_{faces[-2]}").click().run()  # asked, then cancelled: nothing named
    assert f"Who is face #{faces[-2]}?" in at.selectbox(key="kb_fname").label
    keys = key_map(at)[0]
    assert keys["n"] == "kb_fname" and keys["escape"] == "grid_naming_cancel"  # N and Esc are its box's
    at.button(key="grid_naming_cancel").click().run()
    assert not [s for s in at.selectbox if s.key == "kb_fname"] and len(lib.label_rows(("human",))) == human
    at.button(key=f"bnameit_{last}").click().run()
    at.selectbox(key="kb_fname").set_value("Someone Else").run()
    assert not at.exception
    rows = lib.label_rows(("human",), face_id=last)
    assert [lib.person_name(r["person_id"]) for r in rows] == ["Someone Else"]
    assert len(lib.label_rows(("human",))) == human + 1  # that face only
    at.button(key=f"bnameit_{faces[-2]}").click().run()  # a suggestion with one key
    sugg = svc.suggestions(faces[-2], k=3)
    assert sugg and key_map(at)[0]["1"] == "kb_fs_1"
    at.button(key="kb_fs_1").click().run()
    assert [r["person_id"] for r in lib.label_rows(("human",), face_id=faces[-2])] == [sugg[0].person_id]
    last = faces[-2]
    human += 1
    assert at.selectbox(key="batch_group").value == key  # the same group, without the named face
    left = [int(c.key.rsplit("_", 1)[1]) for c in at.checkbox if c.key and c.key.startswith(f"bsel_{key}_")]
    assert last not in left and faces[-1] not in left and other in left
    assert at.checkbox(key=f"bsel_{key}_{other}").value is False  # the untick survived
    assert not [s for s in at.selectbox if s.key == "kb_fname"]
