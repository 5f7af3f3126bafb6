"""Annotate: the next queried face with top-5 suggestions, keyboard shortcuts, and a batch mode."""
from __future__ import annotations

from typing import Callable

import streamlit as st

from app_pages import common, loopview, namebox
from aspl.service import PERSON_KINDS, SCOPE_ANNOTATE

svc = common.service()
who = common.require_annotator()

st.title("Annotate")
common.show_flashes()
mode = st.segmented_control("Mode", ["One face", "Batch"], default="One face", key="ann_mode",
                            label_visibility="collapsed") or "One face"


# --------------------------------------------------------------- callbacks
def _confirm(face_id: int, person_id: int, name: str) -> None:
    common.guarded(svc.confirm, face_id, person_id, who, ok=f"Face #{face_id}: {name}")


def _typed_name(box: str, ctx: str, face_id: int, on_name: Callable[[str, int], None]) -> None:
    """A name box's answer for one face: an existing person's name (any case) names the face
    (``on_name``); a new name that begins existing ones is asked about first (B1, question ``ctx``); any
    other new name creates the person. The box is emptied."""
    typed = st.session_state.get(box)
    st.session_state[box] = None
    name, matches = namebox.check(typed)
    if matches:
        namebox.ask_later(ctx, typed, matches, face_id)
    elif name:
        on_name(name, face_id)


def _new_person(face_id: int) -> None:
    """The one-face page's name box (:func:`_typed_name`)."""
    _typed_name("kb_new", f"kb_new:{face_id}", face_id, _name_face)


def _name_face(name: str, face_id: int) -> None:
    common.guarded(svc.new_person, face_id, name, who, ok=f"Face #{face_id}: {name}")


def _not_face(face_id: int) -> None:
    marked = common.guarded(svc.not_face, face_id, who)
    if marked:
        common.flash("success", f"Face #{face_id} marked as not a face")
    elif marked is False:
        common.flash("info", f"Face #{face_id} has another annotator's label: sent to Review for a decision")


def _stranger(face_id: int) -> None:
    marked = common.guarded(svc.stranger, face_id, who)
    if marked:
        common.flash("success", f"Face #{face_id} marked as a stranger")
    elif marked is False:
        common.flash("info", f"Face #{face_id} has another annotator's label: sent to Review for a decision")


def _skip(face_id: int) -> None:
    common.guarded(svc.skip, face_id, who)


def _undo() -> None:
    act = common.guarded(svc.undo, who, SCOPE_ANNOTATE)
    if act is not None:
        common.flash("info", f"Undone: {svc.describe(act)}")


def _undo_button(key: str = "kb_u") -> None:
    last = svc.last_action(who, SCOPE_ANNOTATE)
    st.button("**U** · Undo", key=key, on_click=_undo, disabled=last is None, width="stretch",
              help=("Undo: " + svc.describe(last)) if last else "Nothing to undo")


# ------------------------------------------------------------ explain
def _explain(face_id: int) -> None:
    """LinearScope heatmap of what drives the suggested identity (on demand: it re-embeds a few faces)."""
    with st.expander("Why this suggestion? (LinearScope)"):
        backbone = svc.backbone
        if not common.is_torch_backbone(backbone):
            st.caption(f"LinearScope explains torch ReLU networks; this library embeds with {backbone}. "
                       "Swap to a torch backbone in Admin, or run `python -m aspl explain FACE_ID --backbone NAME "
                       "--weights W.pt` with a pretrained one.")
            return
        if not st.button("Explain this face", key=f"explain_{face_id}"):
            return
        from models.linearscope import overlay

        try:
            with st.spinner("Computing the linear interpreter…"):
                ex = svc.explain(face_id)
        except ValueError as e:
            st.warning(str(e))
            return
        who_ = ex.person_name or "its own embedding"
        st.image(overlay(ex.crop, ex.heatmap), width=220,
                 caption=f"red supports {who_} (similarity {ex.similarity:.2f}), blue opposes")


# ------------------------------------------------------------ one face
def one_face() -> None:
    face_id = svc.next_face(who)
    if face_id is None:
        if not svc.has_faces():
            st.info("The library has no faces yet: import photos on the Import page.")
        else:
            loopview.nothing_to_ask(svc, who)
        _undo_button()
        loopview.hidden_faces_panel(svc, who)
        common.keyboard({"u": "kb_u"}, "done")
        return
    st.session_state["_shown_face"] = face_id
    view = svc.face_view(face_id)
    sugg = svc.suggestions(face_id, k=5)
    left, right = st.columns([3, 2], gap="large")
    with left:
        st.markdown(f"<span id='aspl-face' data-face='{face_id}'>Face #{face_id}</span>"
                    + (f" · query rank {view.queue_rank + 1}" if view.queue_rank is not None else ""),
                    unsafe_allow_html=True)
        c1, c2 = st.columns([1, 2])
        c1.image(common.crop(face_id), caption="aligned crop", width="stretch")
        photo = svc.photo_with_box(face_id)
        if photo is not None:
            c2.image(photo, caption=view.path, width="stretch", output_format="JPEG")
        else:
            c2.caption(f"photo not available: {view.path}")
        if view.auto:
            st.caption(f"auto-label: {view.auto['name']} (confidence {view.auto['confidence']:.2f}, "
                       f"round {view.auto['round']})")
        _explain(face_id)
    with right:
        st.markdown("#### Who is this?")
        if not sugg:
            st.caption("No suggestions yet: name the first faces with **N**.")
        for i, s in enumerate(sugg, 1):
            t, b = st.columns([1, 5], vertical_alignment="center")
            if s.thumb_face_id is not None:
                t.image(common.crop(s.thumb_face_id), width=56)
            b.button(f"**{i}** · {s.name} — {s.score:.0%}" + (" (**Enter**)" if i == 1 else ""), key=f"kb_{i}",
                     on_click=_confirm, args=(face_id, s.person_id, s.name), width="stretch",
                     help=f"match {s.score:.1%}, from {s.source.replace('+', ' and ')}")
        st.selectbox("**N** · new person or another name", options=svc.person_names(), index=None,
                     key="kb_new", accept_new_options=True, placeholder="type a name and press Enter",
                     on_change=_new_person, args=(face_id,))
        asked = namebox.pending(f"kb_new:{face_id}", _name_face)
        c1, c2, c3, c4 = st.columns(4)
        c1.button("**G** · Stranger", key="kb_g", on_click=_stranger, args=(face_id,), width="stretch",
                  help="A real face that nobody needs named: a bystander, a face in the crowd or on a poster. "
                       "It stays a face (exports list it) but is never asked again or trained on.")
        c2.button("**X** · Not a face", key="kb_x", on_click=_not_face, args=(face_id,), width="stretch",
                  help="The detector was wrong: no face here (a pattern, a hand, an object). It leaves the faces.")
        c3.button("**S** · Skip", key="kb_s", on_click=_skip, args=(face_id,), width="stretch",
                  help="Not sure: put it aside until the next round (others may still get it).")
        with c4:
            _undo_button()
        st.caption(loopview.progress_caption(svc) + " Keys: Enter or 1 confirms the top suggestion, 2-5 the "
                   "others, N name, G stranger, X not a face, "
                   "S skip, U undo, Esc leaves the name box.")
    loopview.hidden_faces_panel(svc, who)
    keys = {str(i): f"kb_{i}" for i in range(1, len(sugg) + 1)}
    if sugg:
        keys["enter"] = "kb_1"  # the top suggestion (Enter in the name box still picks a name there)
    keys.update({"n": "kb_new", "g": "kb_g", "x": "kb_x", "s": "kb_s", "u": "kb_u"})
    keys.update(asked)
    common.keyboard(keys, face_id)


# --------------------------------------------------------------- batch
BATCH_COLS = 8
GRID_SUGGESTIONS = 3  # suggestions offered (keys 1-3) when one face of a grid is named on its own


def _batch_pick(name: str, box: str) -> None:
    """The name question's answer in Batch: an existing person's name replaces the typed one in the box."""
    if name != st.session_state.get(box):
        st.session_state[box] = name


def _batch_clear(box: str) -> None:
    st.session_state[box] = None


def _grid_naming(face_id: int | None) -> None:
    """E on a tile (or its pencil): ask who that one face is, above the grid (None: stop asking)."""
    st.session_state["batch_naming"] = face_id
    st.session_state["kb_fname"] = None


def _grid_pick(name: str, face_id: int) -> None:
    _name_face(name, face_id)
    st.session_state["batch_naming"] = None


def _grid_confirm(face_id: int, person_id: int, name: str) -> None:
    _confirm(face_id, person_id, name)
    st.session_state["batch_naming"] = None


def _grid_typed(face_id: int) -> None:
    """The name box of one face of a grid (:func:`_typed_name`); the face then leaves the grid."""
    _typed_name("kb_fname", f"grid:{face_id}", face_id, _grid_pick)


def _grid_name_box(g) -> dict[str, str]:
    """The name box of the face chosen with E, if it is in this group; returns its keys."""
    f = st.session_state.get("batch_naming")
    if f is None or f not in g.face_ids:
        return {}
    keys = {"n": "kb_fname", "escape": "grid_naming_cancel"}
    with st.container(border=True, key="grid_naming"):
        c1, c2, c3 = st.columns([1, 5, 1], vertical_alignment="center")
        c1.image(common.crop(f), width=72)
        c2.selectbox(f"**N** · Who is face #{f}? (named on its own; the rest of the grid stays as it is)",
                     options=svc.person_names(), index=None, accept_new_options=True, key="kb_fname",
                     on_change=_grid_typed, args=(f,), placeholder="type a name and press Enter")
        c3.button("**Esc** · Cancel", key="grid_naming_cancel", on_click=_grid_naming, args=(None,))
        sugg = svc.suggestions(f, k=GRID_SUGGESTIONS)
        for col, (i, s) in zip(st.columns(GRID_SUGGESTIONS), enumerate(sugg, 1)):
            col.button(f"**{i}** · {s.name} — {s.score:.0%}", key=f"kb_fs_{i}", on_click=_grid_confirm,
                       args=(f, s.person_id, s.name), width="stretch")
            keys[str(i)] = f"kb_fs_{i}"
        keys.update(namebox.pending(f"grid:{f}", _grid_pick))
    return keys


def _batch_target(g) -> tuple[int | str | None, dict[str, str]]:
    """Who the group's faces are (a person id, a name, or None while nobody is chosen) and the keys of a
    pending name question."""
    if g.kind in PERSON_KINDS:
        return g.person_id, {}
    if g.kind == "guesses":  # each face has its own person
        return "guesses", {}
    box = f"kb_bname_{g.key}"
    typed = st.selectbox("**N** · Who are they?", options=svc.person_names(), index=None, accept_new_options=True,
                         key=box, placeholder="type a name and press Enter")
    name, matches = namebox.check(typed)
    return name, namebox.question(typed, matches, _batch_pick, box, on_cancel=_batch_clear) if matches else {}


def batch() -> None:
    groups = svc.batch_groups(who)
    if not groups:
        st.info("No groups yet: after a round, each person's auto-labels and clusters of unclear faces show here.")
        _undo_button("batch_undo")
        common.keyboard({"u": "batch_undo"}, "batch-empty")
        return
    by_key = {g.key: g for g in groups}
    if st.session_state.get("batch_group") not in by_key:  # first visit, or its group was accepted
        st.session_state["batch_group"] = groups[0].key
    g = by_key[st.selectbox("Group", list(by_key), format_func=lambda k: by_key[k].title, key="batch_group")]
    st.caption("Untick the faces that do not belong, then accept the rest in one action. Keys: J / K or the "
               "arrows move between faces, Space ticks, E names the face in focus on its own (someone you know "
               "who is not the group's person), I inverts the ticks, N names, A accepts, U undoes, Esc "
               "leaves the name box." + (" Unticked faces are recorded as *not this person*."
                                         if g.kind in PERSON_KINDS else " Once you name the group, its unticked "
                                         "faces are recorded as *not that person*." if g.kind == "cluster" else "")
               + (" Each face is accepted as the name under it (each person's faces side by side); unticked faces are recorded as *not that "
                  "person*. G first marks the ticked ones as strangers when most are bystanders."
                  if g.kind == "guesses" else "")
               + (f" The last {len(g.unticked)} face(s) look like someone else (unlike the rest of the group) "
                  "and start unticked: tick them if they are the same person."
                  if g.unticked else ""))
    guessed = svc.library.names_of_people() if g.kind == "guesses" else {}
    naming = _grid_name_box(g)
    for row in range(0, len(g.face_ids), BATCH_COLS):  # one row of columns at a time: tiles in reading order
        for col, f in zip(st.columns(BATCH_COLS), g.face_ids[row:row + BATCH_COLS]):
            with col.container(key=f"bface_{f}"):
                st.image(common.crop(f), width="stretch")
                who_is = f"{guessed.get(g.persons.get(f), '?')} · " if guessed else ""
                st.checkbox(f"#{f} · {who_is}{g.scores.get(f, 0):.2f}", value=f not in g.unticked,
                            key=f"bsel_{g.key}_{f}")
                st.button("✎", key=f"bnameit_{f}", on_click=_grid_naming, args=(f,), type="tertiary",
                          help="E · name this face on its own (someone else, or a person to name later)")
    selected = [f for f in g.face_ids if st.session_state.get(f"bsel_{g.key}_{f}", f not in g.unticked)]
    deselected = [f for f in g.face_ids if f not in selected]
    target, asked = _batch_target(g)
    as_whom = svc.person_name(target) if isinstance(target, int) else target
    person_kind = g.kind in PERSON_KINDS or g.kind == "guesses"
    if g.kind == "guesses":
        as_whom = "their best guesses"
    label = f"Accept {len(selected)} face(s)" + (f" as {as_whom}" if as_whom else "")
    if person_kind and not selected:
        label = f"None of the {len(deselected)} is " + ("the name shown" if g.kind == "guesses" else as_whom)

    def _accept() -> None:
        if g.kind == "guesses":
            n = common.guarded(svc.accept_guesses, g.persons, selected, who, deselected=deselected)
        else:
            n = common.guarded(svc.accept_batch, selected, target, who, deselected=deselected)
        if n is not None:
            common.flash("success", f"Labelled {n} face(s)" + (f" as {as_whom}" if as_whom else "")
                         + (f"; {len(deselected)} recorded as not "
                            + ("the name shown." if g.kind == "guesses" else f"{as_whom}.")
                            if deselected else "."))

    def _invert() -> None:
        for f in g.face_ids:
            k = f"bsel_{g.key}_{f}"
            st.session_state[k] = not st.session_state.get(k, True)

    def _strangers() -> None:
        # the unticked faces of a sweep are someone to name: kept out of the next sweeps (not in best guesses,
        # where G only clears the bystanders first)
        left = deselected if g.kind in ("open", "cluster") else []
        n = common.guarded(svc.mark_batch, selected, "stranger", who, deselected=left)
        if n is not None:
            common.flash("success", f"Marked {n} face(s) as strangers."
                         + (f" The {len(left)} unticked will be asked one by one, not in the next sweeps."
                            if left else ""))

    c1, c2, c3, c4 = st.columns([3, 2, 1, 1])
    c1.button(f"**A** · {label}", key="batch_accept", type="primary", on_click=_accept,
              disabled=target is None or not (selected or (person_kind and deselected)), width="stretch")
    c2.button(f"**G** · {len(selected)} ticked are strangers", key="batch_strangers", on_click=_strangers,
              disabled=not selected or g.kind in PERSON_KINDS, width="stretch",
              help="Real faces nobody needs named (bystanders): they leave the questions and the training.")
    c3.button("**I** · Invert", key="batch_invert", on_click=_invert, width="stretch",
              help="Tick the unticked faces and untick the ticked ones (when most of the group is wrong)")
    with c4:
        _undo_button("batch_undo")
    keys = {"a": "batch_accept", "g": "batch_strangers", "u": "batch_undo", "i": "batch_invert",
            "space": "@toggle", "e": "@tile:bnameit_", **common.grid_keys(BATCH_COLS)}
    if not person_kind:  # a name box to type in
        keys["n"] = f"kb_bname_{g.key}"
    keys.update(asked)
    keys.update(naming)  # while one face is being named, N and Esc are its box's
    common.keyboard(keys, f"{g.key}:{target}:{st.session_state.get('batch_naming')}", grid="bface_")


if mode == "Batch":
    batch()
else:
    one_face()
