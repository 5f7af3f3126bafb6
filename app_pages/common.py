"""Shared pieces of the app's pages: cached heavy objects, the annotator's name, the admin gate,
job progress bars, keyboard shortcuts and image helpers."""
from __future__ import annotations

import json
import logging
import os
from typing import Any, Callable

import streamlit as st

from aspl.service import Service
from storage import IndexStore, Library

log = logging.getLogger("aspl.app")

DEFAULT_DB = "data/library"


def library_path() -> str:
    """The library folder: ``ASPL_DB`` or ``data/library``."""
    return os.environ.get("ASPL_DB", DEFAULT_DB)


@st.cache_resource(show_spinner=False)
def get_detector() -> Any:
    """The MTCNN face detector (loaded once per process)."""
    from models.detection import FaceDetector

    return FaceDetector()


@st.cache_resource(show_spinner=False)
def get_embedder(name: str) -> Any:
    """A backbone by name (built once per process)."""
    from models import create_backbone

    return create_backbone(name)


def is_torch_backbone(name: str) -> bool:
    """Whether ``name`` is a torch network (LinearScope can explain it); dlib-resnet is not."""
    from models import UnknownBackboneError, backbone_info

    try:
        return backbone_info(name).family != "dlib"
    except UnknownBackboneError:
        return False


@st.cache_resource(show_spinner="Opening the library…")
def get_library(path: str) -> Library:
    return Library(path)


@st.cache_resource(show_spinner=False)
def get_indexes(path: str) -> IndexStore:
    return IndexStore(get_library(path))


@st.cache_resource(show_spinner=False)
def _service(path: str) -> Service:
    svc = Service(get_library(path), get_indexes(path), detector_factory=get_detector,
                  embedder_factory=get_embedder)
    if svc.apply_env_password():
        log.info("admin password set from ASPL_ADMIN_PASSWORD")
    return svc


def service() -> Service:
    """The process-wide service of the library named by ``ASPL_DB``."""
    return _service(library_path())


# ------------------------------------------------------------------ identity
def annotator_input() -> None:
    """The sidebar box for the annotator's name (kept in the URL so a reload keeps it)."""
    if "annotator" not in st.session_state:
        st.session_state["annotator"] = st.query_params.get("annotator", "")

    def changed() -> None:
        name = " ".join(st.session_state["annotator"].split())
        st.session_state["annotator"] = name
        if name:
            st.query_params["annotator"] = name
        elif "annotator" in st.query_params:
            del st.query_params["annotator"]

    st.sidebar.text_input("Your name", key="annotator", on_change=changed, placeholder="annotator name",
                          help="Recorded on every label you give.")


def annotator() -> str:
    return " ".join(str(st.session_state.get("annotator", "")).split())


def require_annotator() -> str:
    """The annotator's name, or stop the page with a prompt."""
    name = annotator()
    if not name:
        st.info("Type your name in the sidebar to start: it is recorded on every label you give.")
        st.stop()
    return name


def require_admin() -> None:
    """Stop the page unless this session has entered the admin password (set it on first start)."""
    svc = service()
    if st.session_state.get("is_admin"):
        return
    if not svc.admin_password_is_set():
        st.warning("No admin password is set yet. Choose one now (or start the app with ASPL_ADMIN_PASSWORD).")
        with st.form("set_admin_password"):
            p1 = st.text_input("New admin password", type="password")
            p2 = st.text_input("Repeat it", type="password")
            if st.form_submit_button("Set password"):
                if p1 != p2:
                    st.error("The two passwords differ.")
                else:
                    try:
                        svc.set_admin_password(p1, actor=annotator() or "admin")
                    except ValueError as e:
                        st.error(str(e))
                    else:
                        st.session_state["is_admin"] = True
                        st.rerun()
        st.stop()
    with st.form("admin_login"):
        pw = st.text_input("Admin password", type="password", key="admin_pw")
        if st.form_submit_button("Log in"):
            if svc.check_admin_password(pw):
                st.session_state["is_admin"] = True
                st.rerun()
            st.error("Wrong password.")
    st.stop()


# ---------------------------------------------------------------- messages
def flash(kind: str, text: str) -> None:
    """Queue a message for the next run (callbacks cannot draw in place)."""
    st.session_state.setdefault("_flash", []).append((kind, text))


def show_flashes() -> None:
    """Messages queued by callbacks: successes as toasts, the rest in one container (so the page's
    layout keeps its positions and nothing jumps between answers)."""
    box = st.container()
    for kind, text in st.session_state.pop("_flash", []):
        if kind == "success":
            st.toast(text, icon=":material/check:")
        else:
            getattr(box, kind, box.info)(text)


def guarded(fn: Callable[..., Any], *args: Any, ok: str | None = None, inline: bool = False, **kw: Any) -> Any:
    """Call a service method; errors become a message instead of a traceback (queued for the next run
    from a callback, drawn in place with ``inline``). Returns None on error."""
    from aspl.jobs import JobBusyError
    from aspl.service import ServiceError
    from storage import StorageError

    try:
        out = fn(*args, **kw)
    except (ServiceError, StorageError, JobBusyError, ValueError, FileNotFoundError) as e:
        if inline:
            st.warning(str(e))
        else:
            flash("warning", str(e))
        return None
    if ok:
        flash("success", ok)
    return out


# --------------------------------------------------------------------- jobs
def job_status(kind: str) -> Any:
    """Draw the latest ``kind`` job: a live progress bar while it runs, its outcome after. Returns the job."""
    svc = service()
    job = svc.jobs.latest(kind)
    if job is None:
        return None
    if job.running:
        @st.fragment(run_every=0.5)
        def _poll() -> None:
            j = svc.jobs.get(job.id)
            if j is None or not j.running:
                st.rerun()
            st.progress(j.fraction, text=f"{j.label}: {j.message or 'starting…'} ({j.seconds:.0f} s)")

        _poll()
    elif job.status == "failed":
        st.error(f"{job.label} failed: {job.error}")
    return job


# ------------------------------------------------------------------ images
def crop(face_id: int) -> bytes:
    """A face crop as stored (JPEG bytes: no decoding or re-encoding per run)."""
    return service().face_crop_jpeg(face_id)


def face_caption(face_id: int, extra: str = "") -> str:
    return f"#{face_id}" + (f" · {extra}" if extra else "")


# ----------------------------------------------------------------- keyboard
_KEYS_JS = """
<script>
(function () {
  const doc = window.parent && window.parent.document ? window.parent.document : document;
  const MAP = %s;
  if (!doc.__asplKeys) {
    doc.__asplKeys = true;
    doc.addEventListener("keydown", function (e) {
      if (e.ctrlKey || e.metaKey || e.altKey || e.repeat) return;
      const t = e.target || {};
      const tag = (t.tagName || "").toUpperCase();
      if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || t.isContentEditable) {
        if (e.key === "Escape" && t.blur) t.blur();
        return;
      }
      const key = doc.__asplMap && doc.__asplMap[e.key.toLowerCase()];
      if (!key) return;
      const box = doc.querySelector(".st-key-" + key);
      if (!box) return;
      const input = box.querySelector("input");
      if (input) { e.preventDefault(); input.focus(); input.click(); return; }
      const btn = box.querySelector("button");
      if (btn && !btn.disabled) { e.preventDefault(); btn.click(); }
    }, true);
  }
  doc.__asplMap = MAP;
  const a = doc.activeElement;
  if (a && a.closest && a.closest("[class*='st-key-kb_']") && a.blur) a.blur();
})();
</script>
<span style="display:none" data-aspl-keys="%s"></span>
"""


def keyboard(mapping: dict[str, str], token: Any = "") -> None:
    """Bind keys to the elements with those keys (buttons are clicked, inputs focused).

    ``token`` changes the snippet each time (e.g. the face id) so it runs again after every answer.
    """
    st.html(_KEYS_JS % (json.dumps(mapping), token), unsafe_allow_javascript=True)


def sidebar_stats() -> None:
    """Library counts and running jobs in the sidebar."""
    svc = service()
    st.sidebar.caption(f"Library: `{library_path()}`")
    try:
        s = svc.stats()
    except (ValueError, RuntimeError) as e:  # e.g. no backbone registered
        st.sidebar.warning(str(e))
        return
    lab = s["labels_by_source"]
    st.sidebar.markdown(
        f"**{s['faces']}** faces · **{s['to_label']}** to label  \n"
        f"**{s['people']}** people · **{lab['human'] + lab['seed']}** human / **{lab['auto']}** auto labels  \n"
        f"backbone `{s['backbone']}` · {s['rounds']} round(s)")
    for job in svc.jobs.jobs():
        if job.running:
            st.sidebar.progress(job.fraction, text=f"{job.label}…")


def run_marker(page: str) -> None:
    """An invisible element drawn last on every complete run (page, face shown, run count): the browser
    test waits for it to know a page has finished drawing."""
    n = st.session_state["_runs"] = st.session_state.get("_runs", 0) + 1
    face = st.session_state.pop("_shown_face", "")
    st.sidebar.html(f"<span id='aspl-done' data-page='{page}' data-face='{face}' data-run='{n}'></span>")
