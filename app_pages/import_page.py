"""Import: a server folder or uploaded images / zips, with progress and a summary of what was rejected."""
from __future__ import annotations

import os

import pandas as pd
import streamlit as st

from app_pages import common
from aspl.imageio import IMAGE_EXTENSIONS
from aspl.jobs import format_duration

svc = common.service()
st.title("Import photos")
common.show_flashes()
who = common.require_role("admin")

busy = svc.jobs.running("import") is not None
tab_folder, tab_upload = st.tabs(["Folder on the server", "Upload"])
with tab_folder:
    roots = svc.import_roots()
    st.caption("The server imports only from "
               + (", ".join(f"`{r}`" for r in roots) if roots else "no folder")
               + f" (and their subfolders). To allow others, start the app with `ASPL_IMPORT_ROOTS` "
               f"listing them, separated by `{os.pathsep}`; or upload the photos instead.")
    with st.form("import_folder"):
        path = st.text_input("Folder (or file) path on the server", placeholder=str(roots[-1]) if roots else "")
        seeds = st.checkbox("Name each photo's main face after its top-level folder (seed labels)")
        if st.form_submit_button("Import folder", disabled=busy) and path.strip():
            job = common.guarded(svc.start_import, path.strip(), who, labels_from_folders=seeds, inline=True)
            if job is not None:
                st.session_state["upload_rejected"] = []
                st.rerun()
with tab_upload:
    usage = common.guarded(svc.upload_usage, inline=True)
    if usage is not None:
        st.caption(f"Uploads use {usage['used'] / 2**20:,.1f} MiB of {usage['quota'] / 2**20:,.0f} MiB "
                   "(`ASPL_UPLOAD_QUOTA_BYTES`); space taken by duplicates and rejected files is freed after "
                   "each import.")
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


def _code(text: str) -> str:
    """A file name as inline code (underscores and stars stay as they are)."""
    return "`" + text.replace("`", "'") + "`"


def _named_files(title: str, count: int, items: list[str]) -> None:
    """``count`` files under ``title``: the first ones (markdown ``items``), the rest as a count."""
    if not count:
        return
    lines = [f"- {x}" for x in items]
    if count > len(items):
        lines.append(f"- … and {count - len(items)} more")
    st.markdown(f"**{title}: {count}**\n\n" + "\n".join(lines))


job = common.job_status("import", unit="files")
if job is not None and job.status == "done" and job.result:
    s = job.result["summary"]
    st.success(f"Imported {s['imported']} photo(s) with **{s['faces']} face(s)** from {s['files']} image file(s) "
               f"in {format_duration(s['seconds'])} ({s['duplicates']} already in the library, "
               f"{s['without_faces']} without a face, {sum(s['rejected'].values())} rejected"
               + (f", {s['seed_labels']} seed labels" if s["seed_labels"] else "") + ").")
    _named_files("Photos without a face", s["without_faces"], [_code(n) for n in s.get("without_face_files", [])])
    _named_files("Already in the library (not imported again)", s["duplicates"],
                 [_code(d["file"]) + (f" (same photo as {_code(d['same_as'])})" if d.get("same_as") else "")
                  for d in s.get("duplicate_files", [])])
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
