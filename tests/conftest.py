"""Shared fixtures: paths to the real face data, fresh databases, small subsets."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# Two cores shared with other processes: one intra-op thread keeps tests steady.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
LFW_DEV = Path(os.environ.get("ASPL_LFW_DEV", REPO.parent / "shared" / "data" / "lfw-dev"))


@pytest.fixture(scope="session")
def lfw_dev() -> Path:
    """The real LFW slice from ../shared/data (see its README)."""
    if not LFW_DEV.is_dir():
        pytest.fail(f"real face data not found at {LFW_DEV}; set ASPL_LFW_DEV")
    return LFW_DEV


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_db(request, tmp_path):
    """An empty library on each engine: in-memory SQLite, and a fresh database on the session's PostgreSQL
    server (skipped where none can start)."""
    from storage import Library

    if request.param == "sqlite":
        lib = Library(":memory:")
    else:
        server = request.getfixturevalue("pg_server")
        lib = Library(server.new_database(), data_dir=tmp_path / "data")
    yield lib
    lib.close()


@pytest.fixture(scope="session")
def detector():
    from models.detection import FaceDetector

    return FaceDetector()


@pytest.fixture(scope="session")
def dlib_embedder():
    from models import create_backbone

    return create_backbone("dlib-resnet")


@pytest.fixture
def small_lfw(tmp_path, lfw_dev) -> Path:
    """A copy of 3 people x 4 photos of lfw-dev in the layout person/photo.jpg."""
    import shutil

    root = tmp_path / "photos"
    for person in ("Ariel_Sharon", "Hans_Blix", "Laura_Bush"):
        (root / person).mkdir(parents=True)
        for p in sorted((lfw_dev / person).glob("*.jpg"))[:4]:
            shutil.copy(p, root / person / p.name)
    return root


@pytest.fixture
def library(tmp_path):
    """An empty on-disk library (SQLite file + index folder; under ASPL_TEST_DB=postgresql a database of the
    test server + index folder) and its index store."""
    from pgserver import library_at
    from storage import IndexStore

    lib = library_at(tmp_path / "lib")
    yield lib, IndexStore(lib)
    lib.close()


@pytest.fixture
def importer(library, detector, dlib_embedder):
    from aspl.importer import Importer

    lib, indexes = library
    return Importer(lib, indexes, detector=detector, embedder=dlib_embedder, batch_size=8)


# ------------------------------------------------------------------ PostgreSQL
@pytest.fixture(scope="session")
def pg_server():
    """A PostgreSQL server of this test session (see tests/pgserver.py); skipped where none can start."""
    from pgserver import PgServer

    try:
        server = PgServer()
    except (FileNotFoundError, RuntimeError, OSError) as e:
        pytest.skip(f"no PostgreSQL server for the PostgreSQL half of the tests: {e}")
    yield server
    server.stop()


@pytest.fixture
def person_pages(monkeypatch):
    """Batch pages for the synthetic people: each offers a few faces after a round, fewer than the real fold
    into the best-guesses grid (:data:`aspl.service.batch.GUESS_FOLD` of a grid, tested on its own), so their
    groups keep a page of their own (from 2 faces: the fold's floor)."""
    monkeypatch.setattr("aspl.service.batch.GUESS_FOLD", 0.0)
