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
def job_status(kind: str, unit: str = "") -> Any:
    """Draw the latest ``kind`` job: a live progress bar while it runs (rate and time left in ``unit``s when
    given, see :meth:`aspl.jobs.Job.describe`), its outcome after. Returns the job."""
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
            st.progress(j.fraction, text=j.describe(unit))

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
# One listener per browser tab; each run replaces its key map. A map value is an element key (its button is
# clicked, its input focused) or an action on the grid of tiles (containers keyed ``<grid><id>``):
# ``@move:N`` moves the focus N tiles, ``@toggle`` ticks the focused tile's checkbox, ``@tile:PREFIX`` presses
# the element keyed ``PREFIX...`` in the focused tile (the first tile if none is focused). In a text box, Esc
# leaves it (keeping its value) and Enter in a name box picks the first existing name over "Add: ...".
# No "<" directly before a letter or "/" inside the script: Streamlit's sanitizer drops such a script.
_KEYS_JS = """
<script>
(function () {
  const doc = window.parent && window.parent.document ? window.parent.document : document;
  doc.__asplMap = %s;
  doc.__asplGrid = %s;
  if (!doc.__asplKeys) {
    doc.__asplKeys = true;
    const typing = t => t.isContentEditable || t.tagName === "TEXTAREA" || t.tagName === "SELECT" ||
      (t.tagName === "INPUT" && !/^(checkbox|radio|button|submit)$/i.test(t.type));
    const tiles = () => doc.__asplGrid ?
      Array.from(doc.querySelectorAll("[class*='st-key-" + doc.__asplGrid + "']")) : [];
    const current = () => tiles().find(x => x.contains(doc.activeElement));
    const press = box => {
      if (!box) return false;
      const input = box.querySelector("input");
      if (input && input.type !== "checkbox") { input.focus(); input.click(); return true; }
      const btn = box.querySelector("button") || input;
      if (!btn || btn.disabled) return false;
      btn.click();
      return true;
    };
    const move = step => {
      const all = tiles();
      if (!all.length) return false;
      const i = all.findIndex(x => x.contains(doc.activeElement));
      const tile = all[i < 0 ? 0 : Math.max(0, Math.min(all.length - 1, i + step))];
      const el = tile.querySelector("input[type='checkbox'], :scope [class*='st-key-'] button") ||
        tile.querySelector("input, button");
      if (el) el.focus();
      tile.scrollIntoView({block: "nearest"});
      return true;
    };
    const pickExisting = (e, t) => {  // "Add: (typed text)" is highlighted, or nothing yet (typed fast: the
      // list highlights its first option a moment later), unless the arrows chose one; the list must be the
      // typed text's (else Enter goes on, and the server asks before creating a name like an existing one)
      const list = doc.getElementById(t.getAttribute("aria-controls") || "");
      const add = list && list.querySelector("[role='option'][data-key='__creatable__']");
      const hit = list && list.querySelector("[role='option']:not([data-key='__creatable__'])");
      const active = t.getAttribute("aria-activedescendant");
      if (t.__asplArrowed || !add || !hit || (active && active !== add.id) ||
          !(add.textContent || "").endsWith(": " + t.value)) return;
      e.preventDefault();
      e.stopPropagation();
      hit.click();
    };
    doc.addEventListener("keydown", function (e) {
      if (e.ctrlKey || e.metaKey || e.altKey) return;
      const t = e.target || {};
      if (typing(t)) {
        if (e.key === "Escape" && t.blur) { e.preventDefault(); e.stopPropagation(); t.blur(); }
        if (e.key === "Enter" && t.getAttribute("role") === "combobox") {
          pickExisting(e, t);
          setTimeout(() => t.blur(), 0);
        }
        t.__asplArrowed = e.key === "ArrowUp" || e.key === "ArrowDown" || (t.__asplArrowed && e.key.length > 1);
        return;
      }
      const act = doc.__asplMap[e.key === " " ? "space" : e.key.toLowerCase()];
      if (!act || (e.repeat && !act.startsWith("@move:"))) return;
      let done;
      if (act.startsWith("@move:")) done = move(parseInt(act.slice(6), 10));
      else if (act === "@toggle") {
        const tile = current();
        const box = tile && tile.querySelector("input[type='checkbox']");
        if (box) box.click();
        done = !!box;
      } else if (act.startsWith("@tile:")) {
        const tile = current() || tiles()[0];
        done = press(tile && tile.querySelector("[class*='st-key-" + act.slice(6) + "']"));
      } else done = press(doc.querySelector(".st-key-" + act));
      if (done) e.preventDefault();
    }, true);
  }
  const a = doc.activeElement;
  if (a && a.closest && a.closest("[class*='st-key-kb_']") && a.blur) a.blur();
})();
</script>
<style>[class*='st-key-%s']:focus-within {outline: 3px solid #ff4b4b; outline-offset: 3px; border-radius: 8px}</style>
<span style="display:none" data-aspl-keys="%s"></span>
"""


def grid_keys(cols: int) -> dict[str, str]:
    """Keys that move the focus over a grid of ``cols`` tiles a row: J / → next, K / ← previous, ↓ / ↑ a row."""
    return {"j": "@move:1", "arrowright": "@move:1", "k": "@move:-1", "arrowleft": "@move:-1",
            "arrowdown": f"@move:{cols}", "arrowup": f"@move:-{cols}"}


def keyboard(mapping: dict[str, str], token: Any = "", grid: str = "") -> None:
    """Bind keys (lower-case ``KeyboardEvent.key`` names; ``space`` for the space bar) to the elements with
    those keys (buttons are clicked, inputs focused) or to grid actions (see ``_KEYS_JS``); ``grid`` is the
    key prefix of the tiles the focus moves over (drawn with a visible outline).

    ``token`` changes the snippet each time (e.g. the face id) so it runs again after every answer.
    """
    bad = [k for k, v in mapping.items() if v.startswith("@") and not v.startswith(("@move:", "@toggle", "@tile:"))]
    if bad:
        raise ValueError(f"unknown key actions for {bad}; valid choices: an element key, @move:N, @toggle, "
                         "@tile:PREFIX")
    st.html(_KEYS_JS % (json.dumps(mapping), json.dumps(grid), grid or "-none-", token),
            unsafe_allow_javascript=True)


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
