"""Annotate page pieces about the loop itself: how much is left, when the next round starts by itself, what
to show when there is no face to ask (done, a round running, start one), and the hidden faces on request."""
from __future__ import annotations

import streamlit as st

from app_pages import common
from aspl.service import Service

HIDDEN_PAGE = 24  # hidden faces drawn per "show more"
HIDDEN_COLS = 8
POLL_SECONDS = 2.0  # how often the page looks for the end of a running round


def next_round_text(state: dict) -> str:
    """When the next round starts: running now, after N more answers, or only by hand."""
    if state["round_running"]:
        return "A round is running now: new questions soon."
    if state["round_every"] <= 0:
        return "Rounds start only by hand."
    left = max(0, state["round_every"] - state["answers_since_round"])
    return (f"The next round starts by itself after {left} more answer(s)." if left
            else "The next round starts with the next answer.")


def progress_caption(svc: Service) -> str:
    """The face view's line: faces that still need a person (what counts) and the next round."""
    s = svc.loop_state()
    return (f"**{s['remaining']}** face(s) still need a person: no name, auto-label, stranger or not-a-face mark "
            f"yet (hidden faces do not count). {next_round_text(s)}")


def _start_round(svc: Service, who: str) -> None:
    if common.guarded(svc.start_round, who) is not None:
        common.flash("info", "Round started: new questions in a moment.")


def _wait_for_round(svc: Service) -> None:
    """Rerun the page by itself once the running round has finished (its questions then show)."""
    @st.fragment(run_every=POLL_SECONDS)
    def _poll() -> None:
        if svc.jobs.running("round") is None:
            st.rerun()
        job = svc.jobs.running("round")
        st.progress(job.fraction if job else 1.0, text=job.describe() if job else "round finished")

    _poll()
    st.button("Check again", key="ann_check", help="Look for new questions now (the page also does by itself).")


def _done_counts(svc: Service) -> str:
    s = svc.stats(detail=False)
    lab = s["labels_by_source"]
    return (f"{s['faces']} face(s): {lab['human'] + lab['seed']} named by people, {lab['auto']} auto-labelled, "
            f"{s['strangers']} stranger(s), {s['hidden_faces']} hidden; {s['people']} people.")


def nothing_to_ask(svc: Service, who: str) -> None:
    """No face for this annotator now: done, a round running (the page refreshes by itself), or faces left
    that others hold (a round can be started here: annotators never need the Admin page)."""
    state = svc.loop_state()
    if state["done"]:
        st.success("**Done: every face is named, a stranger or hidden.**")
        st.markdown(_done_counts(svc))
        if state["round_running"]:
            st.caption("A round is running: if it has questions about auto-labels, they show here.")
            _wait_for_round(svc)
        else:
            st.caption("Import more photos to go on, or review the auto-labels (Review).")
        return
    if state["round_running"]:
        st.info(f"**A round is running: new questions soon.** {state['remaining']} face(s) still need a person; "
                "this page shows the next one by itself when the round ends.")
        _wait_for_round(svc)
        return
    st.info(f"**{state['remaining']} face(s) still need a person, but none is free for you right now** (other "
            "annotators have them on screen). A round ranks new questions, including the least sure auto-labels. "
            + next_round_text(state))
    st.button("Start a round now", key="ann_round", type="primary", on_click=_start_round, args=(svc, who),
              help="Train on every answer so far, auto-label the sure faces and queue the next questions.")


def _unhide(svc: Service, who: str, face_id: int) -> None:
    if common.guarded(svc.unhide_face, face_id, who):
        named = svc.face_view(face_id).human
        common.flash("info", f"Face #{face_id} is shown anyway: name it now (U undoes)." if named is None else
                     f"Face #{face_id} is shown again; it is named {named['name']} already, so it is trained on "
                     "again (U undoes).")


def _more_hidden() -> None:
    st.session_state["hidden_limit"] = st.session_state.get("hidden_limit", HIDDEN_PAGE) + HIDDEN_PAGE


def hidden_faces_panel(svc: Service, who: str) -> None:
    """The faces hidden by the quality thresholds, drawn only on request, each with "Name it" (which shows
    it anyway, as the next face)."""
    n = svc.stats(detail=False)["hidden_faces"]
    if not n:
        return
    with st.expander("Hidden faces (below the quality thresholds)"):
        st.caption(f"{n} face(s) are smaller or less sure than the library's thresholds (Admin → Face quality): "
                   "kept, but never asked, trained on or counted. **Name it** shows one anyway, as your next face.")
        if not st.toggle(f"Show the {n} hidden face(s), smallest first", key="hidden_show"):
            return
        ids = svc.hidden_faces(limit=st.session_state.get("hidden_limit", HIDDEN_PAGE))
        for row in range(0, len(ids), HIDDEN_COLS):
            for col, f in zip(st.columns(HIDDEN_COLS), ids[row:row + HIDDEN_COLS]):
                col.image(common.crop(f), caption=f"#{f}", width="stretch")
                col.button("Name it", key=f"unhide_{f}", on_click=_unhide, args=(svc, who, f), width="stretch")
        if n > len(ids):
            st.button(f"Show more ({n - len(ids)} not shown)", key="hidden_more", on_click=_more_hidden)
