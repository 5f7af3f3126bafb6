"""Helpers shared by the service and app tests: synthetic libraries and a small real one."""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from aspl.service import Service
from storage import Library
from storage.db import NewFace

from pgserver import library_at, location, new_library, test_engine

SYNTH = "synthetic"
PEOPLE = ("Ada Lovelace", "Alan Turing", "Grace Hopper", "Kurt Goedel")
ADMIN_PASSWORD = "correct horse battery"


def build_synthetic(root: str | Path | None, n_people: int = 4, per_person: int = 8, dim: int = 32,
                    noise: float = 0.15, seed: int = 0, human_per_person: int = 0,
                    annotator: str = "tester", library: Library | None = None) -> tuple[Library, dict[int, str]]:
    """A library of well separated synthetic faces (backbone ``synthetic``): ``(library, face -> true name)``.

    With a folder ``root``, real photo files are written so pages can draw them.
    The first ``human_per_person`` faces of each person get human labels.
    """
    rng = np.random.default_rng(seed)
    lib = library if library is not None else new_library() if root is None else library_at(root)
    photos = None if root is None else Path(root) / "photos"
    if photos is not None:
        photos.mkdir(parents=True, exist_ok=True)
    centres = rng.normal(size=(n_people, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    truth: dict[int, str] = {}
    k = 0
    for i in range(per_person):
        for p in range(n_people):
            v = centres[p] + noise * rng.normal(size=dim) / np.sqrt(dim)
            v = (v / np.linalg.norm(v)).astype(np.float32)
            colour = np.array([(60 * p + 40) % 256, (90 * p + 120) % 256, (30 * i + 50) % 256], np.uint8)
            crop = np.tile(colour, (48, 48, 1))
            crop[16:32, 12:36] = 255 - colour
            path = f"synthetic/{k}.jpg"
            if photos is not None:
                img = np.tile((colour // 2).astype(np.uint8), (120, 160, 1))
                img[30:90, 50:110] = colour
                path = str(photos / f"{k}.jpg")
                Image.fromarray(img).save(path)
            sha = hashlib.sha256(f"synthetic-{seed}-{k}".encode()).hexdigest()
            _, fids = lib.add_image(path, sha, 1000, 160, 120, [NewFace(
                (50.0, 30.0, 110.0, 90.0), np.zeros((5, 2), np.float32), 0.99, crop, {SYNTH: v})])
            truth[fids[0]] = PEOPLE[p] if p < len(PEOPLE) else f"Person {p}"
            k += 1
    lib.set_setting("backbone", SYNTH)
    if human_per_person:
        seen: dict[str, int] = {}
        for f, name in sorted(truth.items()):
            if seen.get(name, 0) < human_per_person:
                seen[name] = seen.get(name, 0) + 1
                lib.add_label(f, lib.person_id(name, create=True), "human", 1.0, annotator=annotator)
    return lib, truth


def synthetic_service(root: str | Path | None = None, **kw) -> tuple[Service, dict[int, str]]:
    lib, truth = build_synthetic(root, **kw)
    return Service(lib), truth


LFW_PEOPLE = ("George_W_Bush", "Colin_Powell", "Tony_Blair")


def lfw_files(lfw_dev: Path, per_person: int = 4, people: tuple[str, ...] = LFW_PEOPLE) -> list[Path]:
    """A few real photos from lfw-dev (sorted)."""
    out = []
    for p in people:
        out += sorted((lfw_dev / p).glob("*.jpg"))[:per_person]
    return out


def copy_photos(files: list[Path], dest: Path) -> Path:
    """Copy photos into ``dest/<person>/`` (keeps the folder-per-person layout)."""
    for f in files:
        d = dest / f.parent.name
        d.mkdir(parents=True, exist_ok=True)
        shutil.copy(f, d / f.name)
    return dest


def env_for(root: Path, password: str = ADMIN_PASSWORD) -> dict[str, str]:
    env = dict(os.environ)
    env["ASPL_DB"] = str(root)
    env["ASPL_ADMIN_PASSWORD"] = password
    return env


REPO = Path(__file__).resolve().parents[1]


USER_PASSWORD = "a long enough password"


def ensure_account(root: Path, name: str, role: str = "admin", password: str = USER_PASSWORD) -> None:
    """Create the account ``name`` in the library at ``root`` (if it has none by that name)."""
    with library_at(root) as lib:
        if lib.user(name) is None:
            Service(lib).add_user(name, password, role, actor="test")


def app_test(monkeypatch, root: Path, annotator: str | None = "alice", password: str | None = ADMIN_PASSWORD,
             role: str = "admin"):
    """An AppTest of ``app.py`` on the library at ``root``, logged in as ``annotator`` (an account with
    ``role``, created if missing); ``annotator=None``: not logged in. ``password``: ASPL_ADMIN_PASSWORD."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("ASPL_DB", location(root))
    if test_engine() == "postgresql":
        monkeypatch.setenv("ASPL_DATA", str(root))
    if password is None:
        monkeypatch.delenv("ASPL_ADMIN_PASSWORD", raising=False)
    else:
        monkeypatch.setenv("ASPL_ADMIN_PASSWORD", password)
    if annotator:
        ensure_account(root, annotator, role)
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    at.run()
    if annotator:
        log_in(at, annotator, USER_PASSWORD)
    return at


def log_in(at, name: str, password: str):
    """Fill the login form and submit it."""
    at.text_input(key="login_name").set_value(name)
    at.text_input(key="login_pw").set_value(password)
    next(b for b in at.button if b.label == "Log in").click().run()
    return at


def page(at, name: str):
    """Switch an AppTest to ``app_pages/<name>.py`` and run it."""
    return at.switch_page(f"app_pages/{name}.py").run()


def texts(at) -> str:
    """All the text an AppTest shows (markdown, captions, alerts, metrics, buttons)."""
    parts = []
    for kind in ("markdown", "caption", "success", "info", "warning", "error", "title", "subheader", "toast"):
        parts += [str(e.value) for e in getattr(at, kind)]
    parts += [f"{m.label}: {m.value}" for m in at.metric]
    parts += [b.label for b in at.button]
    return "\n".join(parts)
