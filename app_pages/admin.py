"""Admin: run a round, loop settings and face quality, round history and plots, backbone swap, export."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from app_pages import common, loop_settings

svc = common.service()
st.title("Admin")
who = common.require_role("admin")
common.show_flashes()

tab_loop, tab_hist, tab_backbone, tab_export, tab_users = st.tabs(
    ["Loop", "History", "Backbone", "Export", "Accounts"])

# -------------------------------------------------------------------- loop
with tab_loop:
    running = svc.jobs.running("round") is not None
    if st.button("Run a round", type="primary", key="run_round", disabled=running,
                 help="Train on the human labels, write auto-labels, rank the faces to ask next."):
        common.guarded(svc.start_round, who)
        st.rerun()
    loop_settings.loop_status(svc)
    job = common.job_status("round")
    if job is not None and job.status == "done" and job.result:
        r = job.result
        st.success(f"Round {r['round']}: {r['auto_labels']} auto-labels, {r['queries']} faces queued for "
                   f"annotators, {r['people_modelled']} people modelled, {r['flagged']} flagged "
                   f"({r['seconds']:.1f} s).")
        ft = r.get("finetune")
        if ft and ft.get("status") == "done":
            st.success(f"Fine-tuned {svc.backbone} on {ft['faces']} faces of {ft['people']} people; "
                       f"{ft['reembedded']} faces re-embedded, index rebuilt.")
        elif ft:
            st.info(f"Fine-tuning skipped: {ft['reason']}")

    loop_settings.loop_settings_form(svc, who)
    loop_settings.face_quality_form(svc, who)


# ----------------------------------------------------------------- history
def _chart(df: pd.DataFrame, cols: list[str], domain: tuple[float, float] | None = None) -> None:
    """Lines with points (a single round still shows) of ``cols`` per round."""
    import altair as alt

    cols = [c for c in cols if c in df]
    long = df.reset_index().melt(id_vars="round", value_vars=cols, var_name="series", value_name="value")
    long = long.dropna()
    if long.empty:
        st.caption("nothing measured yet")
        return
    y = alt.Y("value:Q", title=None, scale=alt.Scale(domain=list(domain)) if domain else alt.Undefined)
    chart = alt.Chart(long).mark_line(point=True).encode(
        x=alt.X("round:O", title="round"), y=y, color=alt.Color("series:N", title=None),
        tooltip=["round", "series", "value"])
    st.altair_chart(chart.properties(height=260), width="stretch")


with tab_hist:
    rounds = svc.rounds()
    if not rounds:
        st.info("No rounds yet.")
    else:
        df = pd.DataFrame([{"round": r["id"], "finished": r["finished_at"][:19], "backbone": r["backbone"],
                            "method": r["method"], **r["metrics"]} for r in rounds]).set_index("round")
        c1, c2 = st.columns(2)
        with c1:
            st.markdown("**Accuracy per round**")
            _chart(df, ["prequential_accuracy", "human_agreement", "review_precision"], (0, 1))
            st.caption("prequential: the previous round's model on the faces labelled since (the hardest ones); "
                       "agreement: the model on its own human labels; review: precision of reviewed auto-labels.")
        with c2:
            st.markdown("**Labels per round**")
            _chart(df, ["human_labels", "auto_labels"])
        st.dataframe(df, width="stretch")

# ---------------------------------------------------------------- backbone
with tab_backbone:
    st.markdown(f"Current backbone: **{svc.backbone}**")
    rows = svc.backbones()
    st.dataframe(pd.DataFrame(rows)[["name", "family", "embedding_dim", "params_m", "pretrained_weights",
                                     "faces_embedded"]], hide_index=True, width="stretch")
    names = [r["name"] for r in rows if r["name"] != svc.backbone]
    pre = {r["name"]: r["pretrained_weights"] for r in rows}
    choice = st.selectbox("Swap to", names, index=None, key="swap_to",
                          format_func=lambda n: n + ("" if pre.get(n) else " (no pretrained weights)"))
    if choice and not pre.get(choice):
        st.warning(f"{choice} has no pretrained weights here: its embeddings would be random features.")
    busy = svc.jobs.running("backbone") is not None or svc.jobs.running("import") is not None
    force = False
    if choice and svc.backbone_is_untrained(choice):
        st.warning(f"{choice} has no pretrained weights here: its embeddings would not tell people apart, and the "
                   "next round would replace the current auto-labels with ones learnt from them. Swap only to "
                   "fine-tune it.")
        force = st.checkbox("Swap anyway", key="swap_force")
    if st.button("Re-embed the library and swap", disabled=not choice or busy, key="swap"):
        common.guarded(svc.start_backbone_swap, choice, who, force=force)
        st.rerun()
    job = common.job_status("backbone", unit="faces")
    if job is not None and job.status == "done" and job.result:
        st.success(f"Now using {job.result['backbone']} ({job.result['embedded']} faces embedded).")
    st.caption("The current backbone and its index keep serving until every face is embedded with the new one.")

    st.markdown("**Search index**")
    info = svc.index_info()
    st.caption(f"{info['faces']} faces; setting `{info['factory']}`, open now: `{info['kind'] or 'none yet'}`"
               + (f", {info['bytes_per_face']} bytes per face" if info["bytes_per_face"] else "")
               + ". `auto`: exact up to 50,000 faces, IVF lists above. For millions of faces a compressed "
                 "FAISS structure such as `IVF4096,PQ32` needs about 40 bytes per face instead of 512 "
                 "(approximate neighbours; rounds then read the vectors from the database).")
    spec = st.text_input("Index structure (FAISS factory string or auto)", value=info["factory"], key="index_factory")
    if st.button("Rebuild the index", key="index_rebuild", disabled=svc.jobs.running("index") is not None):
        common.guarded(svc.set_index_factory, spec, who)
        st.rerun()
    common.job_status("index", unit="")

# ------------------------------------------------------------------ export
with tab_export:
    st.markdown("Face → person for every labelled face (human labels win over auto-labels), with the box, "
                "source and confidence; and a folder per person of the crops.")
    if st.button("Export now", key="export"):
        res = common.guarded(svc.export, actor=who, inline=True)
        if res is not None:
            st.session_state["export_result"] = res
    res = st.session_state.get("export_result")
    if res is not None:
        st.success(f"{res.rows} faces of {res.people} people written to `{res.folder}`")
        d1, d2, d3 = st.columns(3)
        d1.download_button("faces.csv", res.csv.read_bytes(), "faces.csv", "text/csv", key="dl_csv")
        d2.download_button("faces.parquet", res.parquet.read_bytes(), "faces.parquet",
                           "application/octet-stream", key="dl_parquet")
        if res.crops_zip is not None:
            d3.download_button("crops.zip (folder per person)", res.crops_zip.read_bytes(), "crops.zip",
                               "application/zip", key="dl_zip")

# ---------------------------------------------------------------- accounts
with tab_users:
    from aspl.service import ROLES

    users = svc.users()
    st.dataframe(pd.DataFrame(users, columns=["name", "role", "disabled", "created_at", "created_by"]),
                 hide_index=True, width="stretch")
    st.caption("Annotators label faces; reviewers also re-certify auto-labels, decide conflicts and edit "
               "people; admins also import, run rounds, change settings and manage accounts.")
    with st.form("add_user", clear_on_submit=True):
        st.markdown("**New account**")
        c1, c2, c3 = st.columns(3)
        new_name = c1.text_input("Name", key="new_user_name")
        new_role = c2.selectbox("Role", ROLES, key="new_user_role")
        new_pw = c3.text_input("Initial password", type="password", key="new_user_pw")
        if st.form_submit_button("Create account"):
            common.guarded(svc.add_user, new_name, new_pw, new_role, who, ok=f"Account {new_name} created.")
            st.rerun()
    names = [u["name"] for u in users]
    if names:
        st.markdown("**Change an account**")
        c1, c2, c3 = st.columns(3)
        target = c1.selectbox("Account", names, key="edit_user")
        role = c2.selectbox("Role", ROLES, key="edit_role",
                            index=ROLES.index(next(u["role"] for u in users if u["name"] == target)))
        if c2.button("Set role", key="set_role"):
            common.guarded(svc.set_role, target, role, who, ok=f"{target} is now {role}.")
            st.rerun()
        off = bool(next(u["disabled"] for u in users if u["name"] == target))
        if c3.button("Enable" if off else "Disable", key="toggle_user"):
            common.guarded(svc.disable_user, target, who, not off, ok=f"{target} {'enabled' if off else 'disabled'}.")
            st.rerun()
        with st.form("reset_pw", clear_on_submit=True):
            pw = st.text_input("New password for the chosen account", type="password", key="reset_pw_value")
            if st.form_submit_button("Set password"):
                common.guarded(svc.set_password, target, pw, who, ok="Password changed.")
