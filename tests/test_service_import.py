"""Import through the service: uploads and zips saved inside the library (a malicious zip cannot escape),
then a background import of real photos with a summary of faces found and files rejected."""
import io
import stat
import zipfile
from pathlib import Path

import pytest

from apphelpers import lfw_files, synthetic_service
from aspl.uploads import REASON_NOT_IMAGE_TYPE, REASON_SYMLINK, REASON_TOO_LARGE, REASON_UNSAFE_PATH, extract_zip
from storage import Library
from aspl.service import Service


def malicious_zip(photo: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("../evil.jpg", photo)
        zf.writestr("../../../tmp/evil2.jpg", photo)
        zf.writestr("/abs/evil3.jpg", photo)
        zf.writestr("ok/../../evil4.jpg", photo)
        zf.writestr("C:\\windows\\evil5.jpg", photo)
        link = zipfile.ZipInfo("link.jpg")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
        zf.writestr("notes.txt", b"hello")
        zf.writestr("Person_A/face.jpg", photo)
        zf.writestr("./Person_A/.hidden/../face2.jpg", photo)
    return buf.getvalue()


def test_malicious_zip_cannot_escape_the_library(tmp_path, lfw_dev):
    photo = lfw_files(lfw_dev, 1)[0].read_bytes()
    svc = Service(Library(tmp_path / "lib"))
    res = svc.save_uploads([("batch.zip", malicious_zip(photo)), ("plain.jpg", photo), ("../x.jpg", photo)])
    lib_root = (tmp_path / "lib").resolve()
    assert all(lib_root in p.resolve().parents for p in res.saved)
    for p in tmp_path.rglob("*"):
        assert p == lib_root or lib_root in p.resolve().parents or p == tmp_path / "lib", p
    assert not (tmp_path / "evil.jpg").exists() and not Path("/tmp/evil2.jpg").exists()
    reasons = dict(res.rejected)
    for bad in ("../evil.jpg", "../../../tmp/evil2.jpg", "/abs/evil3.jpg", "ok/../../evil4.jpg",
                "C:\\windows\\evil5.jpg", "./Person_A/.hidden/../face2.jpg"):
        assert reasons[bad] == REASON_UNSAFE_PATH, bad
    assert reasons["link.jpg"] == REASON_SYMLINK and reasons["notes.txt"] == REASON_NOT_IMAGE_TYPE
    names = sorted(p.relative_to(res.folder).as_posix() for p in res.saved)
    assert names == ["batch/Person_A/face.jpg", "plain.jpg", "x.jpg"]


def test_zip_size_limits(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("big.jpg", b"\0" * 10_000)
        zf.writestr("small.jpg", b"\1" * 10)
    res = extract_zip(io.BytesIO(buf.getvalue()), tmp_path / "x", max_member_bytes=1000)
    assert [p.name for p in res.saved] == ["small.jpg"]
    assert res.rejected[0][0] == "big.jpg" and res.rejected[0][1].startswith(REASON_TOO_LARGE)
    bad = extract_zip(io.BytesIO(b"not a zip"), tmp_path / "y")
    assert bad.saved == [] and "not a valid zip" in bad.rejected[0][1]


def test_import_job_finds_faces_and_reports_rejections(tmp_path, lfw_dev, monkeypatch):
    monkeypatch.setenv("ASPL_IMPORT_ROOTS", str(tmp_path))  # server folders under tmp_path may be imported
    svc = Service(Library(tmp_path / "lib"))
    files = [(f"{f.parent.name}/{f.name}", f.read_bytes()) for f in lfw_files(lfw_dev, 2, ("Tony_Blair",))]
    files += [("broken.jpg", b"\xff\xd8\xff\xe0 this is not really a jpeg"), ("empty.png", b"")]
    res = svc.save_uploads(files)
    job = svc.start_import(res.folder, "alice").wait(120)
    assert job.status == "done", job.error
    s = job.result["summary"]
    assert s["imported"] == 2 and s["faces"] >= 2
    reasons = {Path(r["path"]).name: r["reason"] for r in job.result["rejected_files"]}
    assert reasons == {"broken.jpg": "corrupt or truncated image", "empty.png": "empty file"}
    assert svc.backbone == "dlib-resnet" and svc.library.get_setting("backbone") == "dlib-resnet"
    assert svc.library.embedding_count("dlib-resnet") == s["faces"]
    f = svc.next_face("alice")
    assert svc.photo_with_box(f) is not None
    with pytest.raises(FileNotFoundError, match="no such file or folder on the server"):
        svc.start_import(tmp_path / "missing")


def test_uploads_need_a_library_folder():
    from aspl.service import Service, ServiceError
    from storage import Library

    svc = Service(Library(":memory:"))  # an in-memory SQLite library has no folder (a PostgreSQL one has ASPL_DATA)

    with pytest.raises(ServiceError, match="in memory"):
        svc.save_uploads([("a.jpg", b"x")])
