"""Broken and hostile uploads: every bad file or zip member becomes a ``(name, reason)`` rejection, no partial
file is left, clashing names do not overwrite each other, the per-library quota holds, and imported upload
folders give back the space the app no longer needs."""
from __future__ import annotations

import io
import os
import warnings
import zipfile
from pathlib import Path

import pytest

from apphelpers import lfw_files
from aspl.service import Service, ServiceError
from aspl.uploads import (MAX_NAME_BYTES, REASON_BAD_MEMBER, REASON_NAME_TOO_LONG, REASON_QUOTA, extract_zip,
                          save_uploads)
from storage import Library


@pytest.fixture
def photos(lfw_dev) -> list[bytes]:
    return [f.read_bytes() for f in lfw_files(lfw_dev, 2, ("Tony_Blair", "Colin_Powell"))]


def make_zip(members: list[tuple[str, bytes]], compression: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Duplicate name": on purpose
        with zipfile.ZipFile(buf, "w", compression) as zf:
            for name, data in members:
                zf.writestr(name, data)
    return buf.getvalue()


def corrupt_member(zip_bytes: bytes, data: bytes) -> bytes:
    """Flip a byte in the middle of ``data`` inside a stored zip (its CRC no longer matches)."""
    raw = bytearray(zip_bytes)
    mid = len(data) // 2
    i = raw.find(data[mid:mid + 64])  # the middle of the data: JPEG headers look alike
    assert i > 0 and raw.find(data[mid:mid + 64], i + 1) == -1
    raw[i] ^= 0xFF
    return bytes(raw)


def unsupported_method(zip_bytes: bytes) -> bytes:
    """Mark the only member as compressed with method 99 (AES), which zipfile cannot read."""
    raw = bytearray(zip_bytes)
    local, central = raw.find(b"PK\x03\x04"), raw.find(b"PK\x01\x02")
    raw[local + 8:local + 10] = (99).to_bytes(2, "little")
    raw[central + 10:central + 12] = (99).to_bytes(2, "little")
    return bytes(raw)


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


def test_corrupt_zip_members_are_rejected_without_partial_files(tmp_path, photos):
    good, bad = photos[0], photos[1]
    z = corrupt_member(make_zip([("a/good.jpg", good), ("a/bad_crc.jpg", bad), ("a/after.jpg", photos[2])]), bad)
    weird = unsupported_method(make_zip([("aes.jpg", photos[3])]))
    res = save_uploads([("batch.zip", z), ("weird.zip", weird), ("plain.jpg", photos[3])], tmp_path / "up")
    reasons = dict(res.rejected)
    assert reasons["a/bad_crc.jpg"].startswith(REASON_BAD_MEMBER) and "CRC" in reasons["a/bad_crc.jpg"]
    assert reasons["aes.jpg"].startswith(REASON_BAD_MEMBER) and "compression" in reasons["aes.jpg"]
    assert sorted(p.name for p in res.saved) == ["after.jpg", "good.jpg", "plain.jpg"]
    assert files_under(tmp_path / "up") == set(res.saved)  # nothing half-written is left
    assert (tmp_path / "up" / "batch" / "a" / "good.jpg").read_bytes() == good


def test_very_long_names(tmp_path, photos):
    deep = "x/" * 3000 + "deep.jpg"
    z = make_zip([("é" * 7500 + ".jpg", photos[0]), (deep, photos[1])])
    res = save_uploads([("a" * 7500 + ".jpg", photos[2]), ("ü" * 7500 + ".zip", z)], tmp_path / "up")
    assert dict(res.rejected) == {deep: REASON_NAME_TOO_LONG}
    assert len(res.saved) == 2
    for p in res.saved:
        assert p.suffix == ".jpg" and len(os.fsencode(p.name)) <= MAX_NAME_BYTES and p.is_file()
    assert files_under(tmp_path / "up") == set(res.saved)


def test_duplicate_names_get_a_suffix_instead_of_overwriting(tmp_path, photos):
    z = make_zip([("p/face.jpg", photos[0]), ("p/face.jpg", photos[1]), ("q?.jpg", photos[2]),
                  ("q*.jpg", photos[3])])
    files = [("face.jpg", photos[0]), ("face.jpg", photos[1]), ("same.zip", z), ("same.zip", z)]
    res = save_uploads(files, tmp_path / "up")
    assert res.rejected == []
    names = sorted(p.relative_to(tmp_path / "up").as_posix() for p in res.saved)
    assert names == ["face.jpg", "face_1.jpg",
                     "same/p/face.jpg", "same/p/face_1.jpg", "same/q_.jpg", "same/q__1.jpg",
                     "same_1/p/face.jpg", "same_1/p/face_1.jpg", "same_1/q_.jpg", "same_1/q__1.jpg"]
    up = tmp_path / "up"
    assert (up / "face.jpg").read_bytes() == photos[0] and (up / "face_1.jpg").read_bytes() == photos[1]
    assert (up / "same/p/face_1.jpg").read_bytes() == photos[1]
    assert (up / "same/q__1.jpg").read_bytes() == photos[3]


def test_zip_extract_keeps_its_size_limit_with_a_quota(tmp_path, photos):
    z = make_zip([("one.jpg", photos[0]), ("two.jpg", photos[1])])
    res = extract_zip(io.BytesIO(z), tmp_path / "x", quota_bytes=len(photos[0]) + 10)
    assert [p.name for p in res.saved] == ["one.jpg"]
    assert res.rejected[0][0] == "two.jpg" and res.rejected[0][1].startswith(REASON_QUOTA)
    assert files_under(tmp_path / "x") == set(res.saved)


def test_upload_quota_refuses_with_a_clear_message(tmp_path, photos, monkeypatch):
    svc = Service(Library(tmp_path / "lib"))
    monkeypatch.setenv("ASPL_UPLOAD_QUOTA_BYTES", str(len(photos[0]) + len(photos[1]) // 2))
    res = svc.save_uploads([("one.jpg", photos[0]), ("two.jpg", photos[1])])
    assert [p.name for p in res.saved] == ["one.jpg"]
    assert res.rejected[0][0] == "two.jpg" and res.rejected[0][1].startswith(REASON_QUOTA)
    assert "ASPL_UPLOAD_QUOTA_BYTES" in res.rejected[0][1]
    assert files_under(res.folder) == {res.folder / "one.jpg"}  # the refused one left nothing behind
    usage = svc.upload_usage()
    assert usage["used"] == len(photos[0]) and usage["quota"] == len(photos[0]) + len(photos[1]) // 2

    again = svc.save_uploads([("three.jpg", photos[2])])  # what is left is too little: rejected, folder gone
    assert again.saved == [] and again.rejected[0][1].startswith(REASON_QUOTA)
    assert not again.folder.exists()

    monkeypatch.setenv("ASPL_UPLOAD_QUOTA_BYTES", str(len(photos[0])))  # used up: refused outright
    with pytest.raises(ServiceError, match=r"upload quota is used up.*ASPL_UPLOAD_QUOTA_BYTES"):
        svc.save_uploads([("four.jpg", photos[3])])
    monkeypatch.setenv("ASPL_UPLOAD_QUOTA_BYTES", "two gigabytes")
    with pytest.raises(ServiceError, match=r"'two gigabytes' is not a number of bytes.*2147483648"):
        svc.save_uploads([("five.jpg", photos[3])])


def test_import_of_an_upload_frees_space_but_keeps_shown_photos(tmp_path, lfw_dev, photos):
    svc = Service(Library(tmp_path / "lib"))
    first = svc.save_uploads([("Tony_Blair/one.jpg", photos[0])])
    assert svc.start_import(first.folder, "alice").wait(300).status == "done"
    res = svc.save_uploads([("copy_of_one.jpg", photos[0]), ("two.jpg", photos[1]), ("broken.jpg", b"\xff\xd8\xff!"),
                            ("empty.zip", make_zip([("notes.txt", b"hi")]))])
    job = svc.start_import(res.folder, "alice").wait(300)
    assert job.status == "done", job.error
    assert job.result["summary"]["imported"] == 1 and job.result["summary"]["duplicates"] == 1
    assert job.result["cleanup"]["files_removed"] == 2  # the duplicate copy and the rejected file
    assert job.result["cleanup"]["bytes_freed"] == len(photos[0]) + len(b"\xff\xd8\xff!")
    left = sorted(p.relative_to(res.folder).as_posix() for p in res.folder.rglob("*"))
    assert left == ["two.jpg"]  # the empty folder of the zip is gone too
    assert (first.folder / "one.jpg").is_file()
    for fid in svc.library.face_ids():
        assert svc.photo_with_box(fid) is not None  # every face's photo can still be drawn
    assert svc.cleanup_uploads() == {"files_removed": 0, "bytes_freed": 0, "folders_removed": 0}
    with pytest.raises(ServiceError, match="not an upload folder"):
        svc.cleanup_uploads(tmp_path)
