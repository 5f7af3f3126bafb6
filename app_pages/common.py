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
    if svc.apply_env_admin():
        log.info("admin account set from ASPL_ADMIN_PASSWORD")
    token = svc.setup_token()
    if token:  # like Jupyter: only someone who can read the server's log can create the first admin
        log.warning("No admin account yet. Open the app and create one with this one-time setup token: %s "
                    "(or: python -m aspl user add NAME --role admin --db %s)", token, path)
    return svc


def service() -> Service:
    """The process-wide service of the library named by ``ASPL_DB``."""
    return _service(library_path())


# ------------------------------------------------------------------ identity
SESSION_COOKIE = "aspl_session"


def _cookie_token() -> str | None:
    """The session token the browser sent (``st.context.cookies``), if any."""
    try:
        return st.context.cookies.get(SESSION_COOKIE)
    except (AttributeError, RuntimeError):
        return None


def _sso_user() -> dict | None:
    """The account of an OIDC login (``st.login``, when ``[auth]`` is configured in secrets): the account
    whose name is the identity's e-mail; None without one (an unknown identity gets no access)."""
    try:
        info = st.user
        if not info.get("is_logged_in"):
            return None
        email = str(info.get("email") or "")
    except (AttributeError, KeyError, RuntimeError):
        return None
    return service().account(email) if email else None


def current_user() -> dict | None:
    """``{"name", "role"}`` of this session's account, or None (not logged in). Re-read every run from a
    signed token, so a changed role or a disabled account applies at once."""
    svc = service()
    token = st.session_state.get("_token") or _cookie_token()
    user = svc.user_from_token(token) if token else None
    if user is None:
        user = _sso_user()
        token = svc.session_token(user["name"]) if user else None
    if user is None:
        st.session_state.pop("_token", None)
        return None
    st.session_state["_token"] = token
    return user


def log_in(user: dict) -> None:
    """Start a session for ``user``: the token is kept in this session and, for reloads, in a cookie."""
    token = service().session_token(user["name"])
    st.session_state["_token"] = token
    st.session_state["_set_cookie"] = token


def log_out() -> None:
    st.session_state.pop("_token", None)
    st.session_state["_set_cookie"] = ""


def sync_cookie() -> None:
    """Write (or clear) the session cookie in the browser after a login or logout."""
    if "_set_cookie" not in st.session_state:
        return
    token = st.session_state.pop("_set_cookie")
    age = 7 * 24 * 3600 if token else 0
    st.html(f"<script>document.cookie = '{SESSION_COOKIE}={token}; path=/; max-age={age}; SameSite=Strict';"
            f"</script>", unsafe_allow_javascript=True)


def annotator() -> str:
    """The logged-in account's name ('' when nobody is logged in): recorded on every label."""
    user = current_user()
    return user["name"] if user else ""


def require_role(role: str) -> str:
    """The account's name, or stop the page (not logged in, or a role below ``role``)."""
    user = current_user()
    if user is None:
        st.info("Log in to continue.")
        st.stop()
    if not service().allows(user["role"], role):
        st.warning(f"This page needs the {role} role; your account {user['name']} is {user['role']}. "
                   f"Ask an admin.")
        st.stop()
    return user["name"]


def require_annotator() -> str:
    """The logged-in annotator's name (any role), or stop the page."""
    return require_role("annotator")


def require_admin() -> None:
    """Stop the page unless an admin is logged in."""
    require_role("admin")


def sidebar_account(user: dict | None) -> None:
    """Who is logged in, and a log-out button."""
    if user is None:
        return
    st.sidebar.markdown(f"Signed in as **{user['name']}** ({user['role']})")
    if st.sidebar.button("Log out", key="logout"):
        log_out()
        st.rerun()


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
        s = svc.stats(detail=False)
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
