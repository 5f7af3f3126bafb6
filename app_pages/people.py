"""People: a gallery per person (human and auto labels apart); rename, merge (after a confirmation), move
faces, remove labels, delete a person nobody is labelled as."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from app_pages import common, namebox
from aspl.service import SCOPE_PEOPLE

svc = common.service()
who = common.require_role("reviewer")

st.title("People")
common.show_flashes()


def _undo() -> None:
    act = common.guarded(svc.undo, who, SCOPE_PEOPLE)
    if act is not None:
        common.flash("info", f"Undone: {svc.describe(act)}")


def _merge(src: int, dst: int, text: str) -> None:
    st.session_state.pop("_merge_ask", None)
    common.guarded(svc.merge_people, src, dst, who, ok=text)


def _cancel_merge() -> None:
    st.session_state.pop("_merge_ask", None)


def _delete(person_id: int) -> None:
    name = common.guarded(svc.delete_person, person_id, who)
    if name is not None:
        st.session_state.pop("people_pick", None)
        common.flash("success", f"Deleted {name} (Undo brings the person back)")


def _move_all(name: str, faces: list[int], person_id: int) -> None:
    for f in faces:
        common.guarded(svc.move_face, f, name, who)
        st.session_state.pop(f"psel_{person_id}_{f}", None)
    common.flash("success", f"Moved {len(faces)} face(s) to {name}")


keys = {"u": "people_undo"}
last = svc.last_action(who, SCOPE_PEOPLE)
st.button("**U** · Undo last change" + (f": {svc.describe(last)}" if last else ""), key="people_undo",
          on_click=_undo, disabled=last is None)

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
        st.session_state["_merge_ask"] = (pid, into)  # asked below before anything changes
ask = st.session_state.get("_merge_ask")
if ask and ask[0] == pid and ask[1] in by_id:
    dst = by_id[ask[1]]
    with st.container(border=True, key="merge_question"):
        st.markdown(f"Merge **{person['name']}** ({person['human'] or 0} human, {person['auto'] or 0} auto labels) "
                    f"into **{dst['name']}** ({dst['human'] or 0} human, {dst['auto'] or 0} auto)? Every face of "
                    f"{person['name']} becomes {dst['name']}'s and the name {person['name']} then stands for "
                    f"{dst['name']}. Undo splits them again.")
        yes, no = st.columns(2)
        yes.button(f"**Enter** · Merge into {dst['name']}", key="kb_merge_yes", type="primary", on_click=_merge,
                   args=(pid, dst["id"], f"Merged {person['name']} into {dst['name']}"), width="stretch")
        no.button("**Esc** · Cancel", key="kb_merge_no", on_click=_cancel_merge, width="stretch")
    keys.update({"enter": "kb_merge_yes", "escape": "kb_merge_no"})
empty = not (person["human"] or person["auto"])
st.button(f"Delete {person['name']}", key="people_delete", on_click=_delete, args=(pid,), disabled=not empty,
          help="Nobody is labelled as this person: delete it (Undo brings it back)." if empty else
          f"Faces are labelled as {person['name']}: move or remove those labels first.")

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
        name, matches = namebox.check(to)
        if matches:  # a new name that begins existing ones: asked below
            namebox.ask_later("people_move", to, matches, sel, pid)
        else:
            _move_all(name, sel, pid)
            st.rerun()
with b:
    if st.button("Remove label from selected (not this person)", disabled=not sel, key="people_remove"):
        for f in sel:
            common.guarded(svc.remove_label, f, who, person_id=pid)
            st.session_state.pop(f"psel_{pid}_{f}", None)
        common.flash("success", f"Removed {len(sel)} label(s); these faces will not be suggested as "
                                f"{person['name']} again")
        st.rerun()

keys.update(namebox.pending("people_move", _move_all))
common.keyboard(keys, f"{pid}:{ask}")

with st.expander("Event log"):
    ev = svc.events(limit=200)
    st.dataframe(pd.DataFrame([{"time": e["time"], "who": e["actor"], "what": e["kind"],
                                "details": ", ".join(f"{k}={v}" for k, v in e["payload"].items())} for e in ev]),
                 hide_index=True, width="stretch")
