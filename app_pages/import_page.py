"""Import: a server folder or uploaded images / zips, with progress and a summary of what was rejected."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from app_pages import common
from aspl.imageio import IMAGE_EXTENSIONS

svc = common.service()
st.title("Import photos")
common.require_admin()
common.show_flashes()
who = common.annotator() or "import"

busy = svc.jobs.running("import") is not None
tab_folder, tab_upload = st.tabs(["Folder on the server", "Upload"])
with tab_folder:
    with st.form("import_folder"):
        path = st.text_input("Folder (or file) path on the server", placeholder="/data/photos")
        seeds = st.checkbox("Name each photo's main face after its top-level folder (seed labels)")
        if st.form_submit_button("Import folder", disabled=busy) and path.strip():
            job = common.guarded(svc.start_import, path.strip(), who, labels_from_folders=seeds, inline=True)
            if job is not None:
                st.session_state["upload_rejected"] = []
                st.rerun()
with tab_upload:
    with st.form("import_upload", clear_on_submit=True):
        files = st.file_uploader("Photos or zip archives", accept_multiple_files=True,
                                 type=[e.lstrip(".") for e in IMAGE_EXTENSIONS] + ["zip"])
        seeds_u = st.checkbox("Name each photo's main face after its folder inside the zip (seed labels)")
        if st.form_submit_button("Upload and import", disabled=busy) and files:
            res = common.guarded(svc.save_uploads, [(f.name, f) for f in files])
            if res is not None:
                st.session_state["upload_rejected"] = res.rejected
                if res.saved:
                    common.guarded(svc.start_import, res.folder, who, labels_from_folders=seeds_u)
                else:
                    common.flash("warning", "No image files in the upload.")
                st.rerun()

job = common.job_status("import")
if job is not None and job.status == "done" and job.result:
    s = job.result["summary"]
    st.success(f"Imported {s['imported']} photo(s) with **{s['faces']} face(s)** in {s['seconds']:.1f} s "
               f"({s['duplicates']} already in the library, {s['without_faces']} without a face"
               + (f", {s['seed_labels']} seed labels" if s["seed_labels"] else "") + ").")
    rej = job.result["rejected_files"]
    up = st.session_state.get("upload_rejected") or []
    if rej or up or s["skipped_other_types"]:
        st.markdown("**Files rejected**")
        rows = [{"file": r["path"], "reason": r["reason"], "detail": r["detail"] or ""} for r in rej]
        rows += [{"file": n, "reason": r, "detail": "refused before import"} for n, r in up]
        if s["skipped_other_types"]:
            rows.append({"file": f"{s['skipped_other_types']} other file(s)", "reason": "not an image file type",
                         "detail": ""})
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    else:
        st.caption("No file was rejected.")
elif st.session_state.get("upload_rejected"):
    st.dataframe(pd.DataFrame([{"file": n, "reason": r} for n, r in st.session_state["upload_rejected"]]),
                 hide_index=True, width="stretch")
