"""People: a gallery per person (human and auto labels apart); rename, merge, move faces, remove labels."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from app_pages import common
from aspl.service import SCOPE_PEOPLE

svc = common.service()
who = common.require_role("reviewer")

st.title("People")
common.show_flashes()


def _undo() -> None:
    act = common.guarded(svc.undo, who, SCOPE_PEOPLE)
    if act is not None:
        common.flash("info", f"Undone: {svc.describe(act)}")


last = svc.last_action(who, SCOPE_PEOPLE)
st.button("Undo last change" + (f": {svc.describe(last)}" if last else ""), key="people_undo", on_click=_undo,
          disabled=last is None)

people = svc.people()
if not people:
    st.info("Nobody is named yet. Name faces on the Annotate page.")
    st.stop()
by_id = {p["id"]: p for p in people}
pid = st.selectbox("Person", [p["id"] for p in people], key="people_pick",
                   format_func=lambda i: f"{by_id[i]['name']} ({by_id[i]['human'] or 0} human, "
                                         f"{by_id[i]['auto'] or 0} auto)")
if pid not in by_id:
    st.stop()
person = by_id[pid]
others = [p["id"] for p in people if p["id"] != pid]

c1, c2 = st.columns(2)
with c1.form("rename"):
    new = st.text_input("Rename to", value=person["name"])
    if st.form_submit_button("Rename") and new.strip() and new.strip() != person["name"]:
        common.guarded(svc.rename_person, pid, new, who, ok=f"Renamed to {new.strip()}")
        st.rerun()
with c2.form("merge"):
    into = st.selectbox("Merge into", others, index=None, format_func=lambda i: by_id[i]["name"],
                        placeholder="the same person under another name")
    if st.form_submit_button("Merge", disabled=not others) and into is not None:
        common.guarded(svc.merge_people, pid, into, who, ok=f"Merged {person['name']} into {by_id[into]['name']}")
        st.rerun()

faces = svc.person_faces(pid, limit=240)
human = [f for f in faces if f["source"] != "auto"]
auto = [f for f in faces if f["source"] == "auto"]


def gallery(rows: list[dict], title: str, tag: str) -> None:
    st.markdown(f"#### {title} ({len(rows)})")
    if not rows:
        st.caption("none")
        return
    cols = st.columns(8)
    for j, r in enumerate(rows):
        with cols[j % 8]:
            st.image(common.crop(r["face_id"]), width="stretch")
            extra = (r["annotator"] or r["source"]) if tag == "h" else f"{r['confidence'] or 0:.2f}"
            st.checkbox(f"#{r['face_id']} {extra}", key=f"psel_{pid}_{r['face_id']}")


gallery(human, "Confirmed by people", "h")
gallery(auto, "Automatic labels", "a")

sel = [r["face_id"] for r in faces if st.session_state.get(f"psel_{pid}_{r['face_id']}")]
st.markdown(f"**{len(sel)} selected**")
a, b = st.columns(2)
with a.form("move"):
    to = st.selectbox("Move selected faces to", svc.person_names(), index=None, accept_new_options=True,
                      placeholder="a person (or a new name)")
    if st.form_submit_button("Move", disabled=not sel) and to:
        for f in sel:
            common.guarded(svc.move_face, f, to, who)
            st.session_state.pop(f"psel_{pid}_{f}", None)
        common.flash("success", f"Moved {len(sel)} face(s) to {to}")
        st.rerun()
with b:
    if st.button("Remove label from selected (not this person)", disabled=not sel, key="people_remove"):
        for f in sel:
            common.guarded(svc.remove_label, f, who, person_id=pid)
            st.session_state.pop(f"psel_{pid}_{f}", None)
        common.flash("success", f"Removed {len(sel)} label(s); these faces will not be suggested as "
                                f"{person['name']} again")
        st.rerun()

with st.expander("Event log"):
    ev = svc.events(limit=200)
    st.dataframe(pd.DataFrame([{"time": e["time"], "who": e["actor"], "what": e["kind"],
                                "details": ", ".join(f"{k}={v}" for k, v in e["payload"].items())} for e in ev]),
                 hide_index=True, width="stretch")
