"""Review: re-certify auto-labels (random sample + lowest confidence), precision estimate, flagged labels,
conflicts between annotators."""
from __future__ import annotations

import streamlit as st

from app_pages import common, namebox
from aspl.service import SCOPE_REVIEW

svc = common.service()
who = common.require_role("reviewer")

st.title("Review")
common.show_flashes()

rand, low = svc.precision("random"), svc.precision("low")
c1, c2, c3 = st.columns(3)
if rand.n:
    c1.metric("Auto-label precision (random sample)", f"{rand.precision:.0%}",
              help="Estimated from the auto-labels reviewed in the random sample (unbiased).")
    c1.caption(f"95% interval {rand.low:.0%} – {rand.high:.0%} from {rand.correct}/{rand.n} reviewed")
else:
    c1.metric("Auto-label precision (random sample)", "–")
    c1.caption("Review some randomly sampled auto-labels to estimate it.")
c2.metric("Lowest-confidence reviews right", f"{low.precision:.0%}" if low.n else "–",
          help="On the least confident auto-labels: a pessimistic number, not an estimate of the whole.")
c2.caption(f"{low.correct}/{low.n} reviewed" if low.n else "")
flagged = svc.flagged_labels()
c3.metric("Flagged human labels", len(flagged))


def _accept(face_id: int, person_id: int, sample: str) -> None:
    common.guarded(svc.accept_auto, face_id, person_id, who, sample)


def _reject(face_id: int, person_id: int, sample: str) -> None:
    common.guarded(svc.reject_auto, face_id, person_id, who, sample)


def _accept_all(shown: list[tuple[int, int, str]]) -> None:
    n = common.guarded(svc.accept_all_auto, shown, who)
    if n is not None:
        common.flash("success", f"Accepted {n} auto-label(s) (U undoes them together)")


def _context(face_id: int | None) -> None:
    """Show (or, for the face already shown, hide) a face's whole photo."""
    st.session_state["rv_context"] = None if st.session_state.get("rv_context") == face_id else face_id


def _undo() -> None:
    act = common.guarded(svc.undo, who, SCOPE_REVIEW)
    if act is not None:
        common.flash("info", f"Undone: {svc.describe(act)}")


REVIEW_COLS = 6
last = svc.last_action(who, SCOPE_REVIEW)
st.button("**U** · Undo last review", key="review_undo", on_click=_undo, disabled=last is None,
          help=("Undo: " + svc.describe(last)) if last else None)

st.subheader("Auto-labels to re-certify")
items = svc.review_sample(who)
keys = {"y": "@tile:rv_ok_", "n": "@tile:rv_no_", "p": "@tile:rv_ctx_", "a": "rv_accept_all", "u": "review_undo",
        **common.grid_keys(REVIEW_COLS)}
if not items:
    st.info("No auto-labels waiting for review. They appear after a round (Admin → Run a round).")
else:
    st.caption("Keys: J / K or the arrows move between faces; Y yes, N no, P the photo of the face in focus "
               "(the first one if none is); A accepts all shown; U undoes.")
shown_face = st.session_state.get("rv_context")
if shown_face in {it.face_id for it in items}:
    with st.container(border=True):
        pic, close = st.columns([5, 1])
        photo = svc.photo_with_box(shown_face)
        if photo is not None:
            pic.image(photo, caption=f"Face #{shown_face} in its photo", output_format="JPEG")
        else:
            pic.caption(f"The photo of face #{shown_face} is not available.")
        close.button("**Esc** · Close", key="rv_ctx_close", on_click=_context, args=(None,))
    keys["escape"] = "rv_ctx_close"
for title, sample in (("Random sample", "random"), ("Lowest confidence", "low")):
    part = [it for it in items if it.sample == sample]
    if not part:
        continue
    st.markdown(f"**{title}** ({len(part)})")
    for row in range(0, len(part), REVIEW_COLS):  # one row of columns at a time: tiles in reading order
        for col, it in zip(st.columns(REVIEW_COLS), part[row:row + REVIEW_COLS]):
            with col.container(key=f"rvtile_{it.face_id}_{it.person_id}"):
                st.image(common.crop(it.face_id), width="stretch")
                st.caption(f"#{it.face_id} · **{it.name}** · {it.confidence:.2f}")
                a, b, c = st.columns(3)
                a.button("✓", key=f"rv_ok_{it.face_id}_{it.person_id}", on_click=_accept,
                         args=(it.face_id, it.person_id, sample), help=f"Yes, this is {it.name} (Y)",
                         width="stretch")
                b.button("✗", key=f"rv_no_{it.face_id}_{it.person_id}", on_click=_reject,
                         args=(it.face_id, it.person_id, sample), help=f"No, not {it.name} (N)", width="stretch")
                c.button(":material/photo:", key=f"rv_ctx_{it.face_id}_{it.person_id}", on_click=_context,
                         args=(it.face_id,), help="The whole photo (P)", width="stretch")
if items:
    st.button(f"**A** · Accept all {len(items)} shown", key="rv_accept_all", on_click=_accept_all,
              args=([(it.face_id, it.person_id, it.sample) for it in items],))

st.subheader("Suspicious human labels")
if not flagged:
    st.caption("None: every human label agrees with the model (re-certified each round).")


def _confirm_flag(face_id: int) -> None:
    common.guarded(svc.confirm_flag, face_id, who, ok=f"Face #{face_id}: label confirmed")


def _move(face_id: int) -> None:
    name, matches = namebox.check(st.session_state.get(f"flag_move_{face_id}"))
    if matches:
        namebox.ask_later(f"flag_move:{face_id}", st.session_state[f"flag_move_{face_id}"], matches, face_id)
    elif name:
        _move_to(name, face_id)


def _move_to(name: str, face_id: int) -> None:
    common.guarded(svc.move_face, face_id, name, who, ok=f"Face #{face_id} moved to {name}")


for fl in flagged:
    a, b, c = st.columns([1, 2, 2], vertical_alignment="center")
    a.image(common.crop(fl["face_id"]), width=96)
    b.markdown(f"Face #{fl['face_id']} labelled **{fl['name']}** by {fl['annotator'] or '?'} ({fl['source']})")
    b.button("The label is right", key=f"flag_ok_{fl['face_id']}", on_click=_confirm_flag, args=(fl["face_id"],))
    c.selectbox("It is someone else", options=svc.person_names(), index=None, accept_new_options=True,
                key=f"flag_move_{fl['face_id']}", on_change=_move, args=(fl["face_id"],),
                placeholder="type the right name")
    with c:
        keys.update(namebox.pending(f"flag_move:{fl['face_id']}", _move_to))
common.keyboard(keys, f"{len(items)}:{shown_face}:{len(flagged)}", grid="rvtile_")


st.subheader("Conflicts between annotators")
conflicts = svc.open_conflicts()
if not conflicts:
    st.caption("None: no annotator has objected to another's label.")


def _resolve(conflict_id: int, decision: str) -> None:
    common.guarded(svc.resolve_conflict, conflict_id, decision, who, ok="Conflict decided")


for c in conflicts:
    a, b = st.columns([1, 4], vertical_alignment="center")
    a.image(common.crop(c["face_id"]), width=96)
    says = "a stranger" if c["kind"] == "stranger" else "not a face"
    b.markdown(f"Face #{c['face_id']}: **{c['raised_by']}** says it is {says}; **{c['labelled_by'] or '?'}** "
               f"labelled it **{c['name'] or '?'}**.")
    k, n = b.columns(2)
    k.button(f"It is {c['name'] or 'a face'}", key=f"cf_keep_{c['id']}", on_click=_resolve,
             args=(c["id"], "keep_label"))
    n.button(says.capitalize(), key=f"cf_nf_{c['id']}", on_click=_resolve, args=(c["id"], c["kind"]))
