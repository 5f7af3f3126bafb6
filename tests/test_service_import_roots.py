"""Server-folder imports only from allowed roots: the library's uploads folder and ``ASPL_IMPORT_ROOTS``.
Paths are checked after resolving symbolic links; the command line stays unrestricted."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from apphelpers import copy_photos, lfw_files
from aspl.service import Service, ServiceError
from storage import Library


@pytest.fixture
def svc(tmp_path, monkeypatch) -> Service:
    monkeypatch.delenv("ASPL_IMPORT_ROOTS", raising=False)
    return Service(Library(tmp_path / "lib"))


def test_default_root_is_the_uploads_folder_only(svc, tmp_path, lfw_dev):
    uploads = Path(os.path.realpath(tmp_path / "lib" / "uploads"))
    assert svc.import_roots() == [uploads]
    src = copy_photos(lfw_files(lfw_dev, 1, ("Tony_Blair",)), tmp_path / "photos")
    for bad in (src, Path("/etc"), Path("/root"), Path("/proc/self"), tmp_path / "lib", tmp_path / "missing"):
        with pytest.raises(ServiceError) as e:
            svc.start_import(bad, "alice")
        msg = str(e.value)
        assert "outside the folders this server imports from" in msg and str(uploads) in msg
        assert "ASPL_IMPORT_ROOTS" in msg
    assert svc.jobs.latest("import") is None  # nothing was started


def test_configured_roots_are_allowed(svc, tmp_path, lfw_dev, monkeypatch):
    src = copy_photos(lfw_files(lfw_dev, 2, ("Tony_Blair",)), tmp_path / "photos")
    monkeypatch.setenv("ASPL_IMPORT_ROOTS", f"{tmp_path / 'other'}{os.pathsep}{src}")
    assert Path(os.path.realpath(src)) in svc.import_roots()
    job = svc.start_import(src / "Tony_Blair", "alice").wait(300)  # a subfolder of a root
    assert job.status == "done", job.error
    assert job.result["summary"]["imported"] == 2 and job.result["summary"]["faces"] >= 2
    assert "cleanup" not in job.result  # only upload folders are cleaned
    with pytest.raises(FileNotFoundError, match="no such file or folder on the server"):
        svc.start_import(src / "missing", "alice")
    with pytest.raises(ServiceError, match="outside the folders"):
        svc.start_import(tmp_path / "elsewhere", "alice")


def test_symlinks_are_checked_where_they_lead(svc, tmp_path, lfw_dev, monkeypatch):
    root = tmp_path / "allowed"
    secret = copy_photos(lfw_files(lfw_dev, 1, ("Colin_Powell",)), tmp_path / "secret")
    inside = copy_photos(lfw_files(lfw_dev, 1, ("Tony_Blair",)), root / "real")
    (root / "escape").symlink_to(secret, target_is_directory=True)
    (root / "alias").symlink_to(inside, target_is_directory=True)
    (root / "loop").symlink_to(root / "loop")
    monkeypatch.setenv("ASPL_IMPORT_ROOTS", str(root))
    with pytest.raises(ServiceError, match="outside the folders"):
        svc.start_import(root / "escape", "alice")
    with pytest.raises(ServiceError, match="outside the folders"):
        svc.start_import(root / "escape" / "Colin_Powell", "alice")
    with pytest.raises(ServiceError, match="symbolic link loop"):
        svc.start_import(root / "loop", "alice")
    job = svc.start_import(root / "alias", "alice").wait(300)  # a link that stays inside is fine
    assert job.status == "done", job.error
    assert job.result["summary"]["imported"] == 1
    assert job.result["path"] == str(Path(os.path.realpath(inside)))


def test_a_root_given_through_a_link_is_resolved(svc, tmp_path, monkeypatch):
    real = tmp_path / "real_root"
    real.mkdir()
    (tmp_path / "link_root").symlink_to(real, target_is_directory=True)
    monkeypatch.setenv("ASPL_IMPORT_ROOTS", str(tmp_path / "link_root"))
    assert Path(os.path.realpath(real)) in svc.import_roots()
    (real / "sub").mkdir()
    job = svc.start_import(real / "sub", "alice").wait(60)  # the same folder by its real path
    assert job.status == "done", job.error
    assert job.result["summary"]["files"] == 0


def test_in_memory_library_has_no_roots_by_default(monkeypatch, tmp_path):
    monkeypatch.delenv("ASPL_IMPORT_ROOTS", raising=False)
    svc = Service(Library(":memory:"))
    assert svc.import_roots() == []
    with pytest.raises(ServiceError, match=r"allowed: none.*ASPL_IMPORT_ROOTS"):
        svc.start_import(tmp_path, "alice")


def test_the_command_line_is_not_restricted(tmp_path, lfw_dev, monkeypatch, capsys):
    from aspl.cli import main

    monkeypatch.delenv("ASPL_IMPORT_ROOTS", raising=False)
    src = copy_photos(lfw_files(lfw_dev, 1, ("Tony_Blair",)), tmp_path / "photos")
    rc = main(["import", str(src), "--db", str(tmp_path / "lib"), "--quiet", "--backbone", "dlib-resnet"])
    assert rc == 0 and "1 imported" in capsys.readouterr().out
