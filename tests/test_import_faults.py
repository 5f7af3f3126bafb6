"""Hostile and broken input: a corpus of bad files mixed with real photos is imported in full; every bad file
is recorded with its reason, nothing hangs, one photo's failure never takes its batch down, re-running adds
nothing."""
from __future__ import annotations

import io
import os
import shutil
import socket
import struct
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aspl.imageio import (REASON_ASPECT, REASON_BOMB, REASON_CORRUPT, REASON_DETECTION, REASON_EMPTY,
                          REASON_NOT_IMAGE, REASON_NOT_REGULAR, REASON_OUTSIDE, REASON_TOO_SMALL, REASON_UNREADABLE)
from aspl.importer import Importer, ImportPathError
from storage.faces import fs_path

TIMEOUT_S = 300
NON_UTF8 = os.fsdecode(b"caf\xe9.jpg")  # a Latin-1 name on a UTF-8 system: 'caf\udce9.jpg'


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny PNG whose header declares ``width`` x ``height`` pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + _png_chunk(b"IEND", b""))


def _faces(lfw_dev: Path, person: str, n: int) -> list[Path]:
    return sorted((lfw_dev / person).glob("*.jpg"))[:n]


def build_corpus(tmp_path: Path, lfw_dev: Path) -> tuple[Path, list[str], dict[str, str]]:
    """``(root, good photo paths relative to root, {bad file name: reason})``."""
    root = tmp_path / "photos"
    good: list[str] = []
    for person in ("Tony_Blair", "Colin_Powell"):
        (root / person).mkdir(parents=True)
        for p in _faces(lfw_dev, person, 2):
            shutil.copy(p, root / person / p.name)
            good.append(f"{person}/{p.name}")
    odd = root / "odd"  # unusual but valid photos: each must be imported with its face
    odd.mkdir()
    faces = _faces(lfw_dev, "Laura_Bush", 5)
    a = np.asarray(Image.open(faces[0]).convert("L"), np.uint16) * 257
    Image.fromarray(a).save(odd / "sixteen_bit.png")
    Image.open(faces[1]).convert("CMYK").save(odd / "cmyk.jpg", quality=92)
    pages = [Image.open(f).convert("RGB") for f in faces[2:4]]
    pages[0].save(odd / "pages.tif", save_all=True, append_images=pages[1:])
    shutil.copy(faces[4], odd / NON_UTF8)
    good += ["odd/sixteen_bit.png", "odd/cmyk.jpg", "odd/pages.tif", f"odd/{NON_UTF8}"]

    bad = root / "bad"
    bad.mkdir()
    real = _faces(lfw_dev, "Hans_Blix", 1)[0].read_bytes()
    expected: dict[str, str] = {}

    def add(name: str, reason: str, data: bytes | None = None) -> Path:
        if data is not None:
            (bad / name).write_bytes(data)
        expected[name] = reason
        return bad / name

    add("zero.jpg", REASON_EMPTY, b"")
    add("text.jpg", REASON_NOT_IMAGE, b"just some words, saved with a photo's extension\n" * 20)
    add("truncated.jpg", REASON_CORRUPT, real[: len(real) // 2])
    png = io.BytesIO()
    Image.open(_faces(lfw_dev, "Hans_Blix", 1)[0]).save(png, format="PNG")
    add("truncated.png", REASON_CORRUPT, png.getvalue()[: len(png.getvalue()) // 2])
    add("bomb.png", REASON_BOMB, _bomb_png())
    Image.new("RGB", (1, 1), (200, 150, 120)).save(add("one_pixel.png", REASON_TOO_SMALL))
    Image.new("RGB", (3, 20000), (200, 150, 120)).save(add("sliver.png", REASON_TOO_SMALL))
    Image.new("RGB", (4000, 40), (200, 150, 120)).save(add("ribbon.png", REASON_ASPECT))
    os.mkfifo(add("pipe.jpg", REASON_NOT_REGULAR))
    add("zero_device.jpg", REASON_NOT_REGULAR).symlink_to("/dev/zero")
    add("loop.jpg", REASON_UNREADABLE).symlink_to(bad / "loop2.jpg")
    add("loop2.jpg", REASON_UNREADABLE).symlink_to(bad / "loop.jpg")
    outside = tmp_path / "elsewhere" / "secret.jpg"
    outside.parent.mkdir()
    shutil.copy(_faces(lfw_dev, "George_W_Bush", 1)[0], outside)
    add("escape.jpg", REASON_OUTSIDE).symlink_to(outside)
    try:
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(bad / "socket.jpg"))
        sock.close()
        expected["socket.jpg"] = REASON_NOT_REGULAR
    except OSError:  # path too long for a socket here: the other special files cover it
        pass
    # Links that are fine or harmless: a link to a photo inside the tree (a duplicate of it) and a folder
    # link looping back to the root (never followed, so the walk ends).
    (bad / "alias.jpg").symlink_to(root / good[0])
    (bad / "round_and_round").symlink_to(root, target_is_directory=True)
    (bad / "README.txt").write_text("not a photo type: counted, not rejected")
    return root, good, expected


def run_with_timeout(fn, *args, timeout: float = TIMEOUT_S, **kw):
    """``fn(*args, **kw)`` in a thread; fails the test if it has not finished after ``timeout`` seconds."""
    out: dict = {}

    def target() -> None:
        try:
            out["value"] = fn(*args, **kw)
        except BaseException as e:  # noqa: BLE001 - re-raised in the test's thread
            out["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), f"{fn.__name__} still running after {timeout} s (hung on a bad file?)"
    if "error" in out:
        raise out["error"]
    return out["value"]


def rejected_rows(lib) -> dict[str, dict]:
    return {Path(fs_path(r)).name: r for r in lib.images(status="rejected", limit=-1)}


def test_bad_input_corpus_is_imported_in_full(importer, tmp_path, lfw_dev):
    root, good, expected = build_corpus(tmp_path, lfw_dev)
    lib = importer.library
    s = run_with_timeout(importer.run, root, labels_from_folders=True, progress=False)

    assert s.imported == len(good), s
    assert s.duplicates == 1  # alias.jpg: a link inside the tree to a photo imported already
    assert s.skipped_other_types == 1
    for rel in good:  # every good photo is stored with at least one face
        rows = [r for r in lib.images(limit=-1) if fs_path(r) == str(root / rel)]
        assert len(rows) == 1 and rows[0]["status"] == "ok", rel
        assert lib.faces_of_image(rows[0]["id"]), rel

    got = {name: r["error_reason"] for name, r in rejected_rows(lib).items()}
    assert got == expected
    assert dict(s.rejected) == dict(lib.stats()["rejected_by_reason"])
    details = {name: r["error_detail"] for name, r in rejected_rows(lib).items()}
    assert "FIFO" in details["pipe.jpg"] and "character device" in details["zero_device.jpg"]
    assert "symbolic links" in details["loop.jpg"]
    assert str(tmp_path / "elsewhere" / "secret.jpg") in details["escape.jpg"]
    assert details["one_pixel.png"].startswith("1x1") and details["sliver.png"].startswith("3x20000")
    assert "4000x40" in details["ribbon.png"]
    assert "pixels" in details["bomb.png"]
    assert lib.images(path_prefix=tmp_path / "elsewhere") == []  # nothing outside the root was read in

    # The non-UTF-8 name is stored losslessly: readable text plus the exact bytes that find the file.
    row = next(r for r in lib.images(limit=-1) if r["path_bytes"] is not None)
    assert row["path"].endswith("odd/caf\\xe9.jpg")
    assert bytes(row["path_bytes"]) == os.fsencode(root / "odd" / NON_UTF8)
    assert Path(fs_path(row)).is_file()
    events = lib.events("import", limit=1)
    assert events and events[0]["payload"]["imported"] == len(good)

    before = lib.stats()
    s2 = run_with_timeout(importer.run, root, labels_from_folders=True, progress=False)
    assert s2.imported == 0 and s2.faces == 0
    assert lib.stats() == before
    assert importer.indexes.in_sync("dlib-resnet")


class _FlakyDetector:
    """The real detector, except that any batch holding a photo of ``bad_size`` fails like a model bug."""

    def __init__(self, detector, bad_size: tuple[int, int]):
        self.detector, self.bad_size = detector, bad_size
        self.min_face_size = detector.min_face_size
        self.calls = 0

    def detect(self, images):
        self.calls += 1
        if any(im.size == self.bad_size for im in images):
            raise RuntimeError("simulated model failure")
        return self.detector.detect(images)


def test_one_failing_photo_does_not_take_its_batch_down(library, detector, dlib_embedder, tmp_path, lfw_dev):
    lib, indexes = library
    root = tmp_path / "batch"
    root.mkdir()
    files = _faces(lfw_dev, "Tony_Blair", 5)
    for f in files:
        shutil.copy(f, root / f.name)
    Image.open(files[0]).resize((231, 257)).save(root / "odd_size.jpg")
    flaky = _FlakyDetector(detector, (231, 257))
    imp = Importer(lib, indexes, detector=flaky, embedder=dlib_embedder, batch_size=16)
    s = run_with_timeout(imp.run, root, progress=False)
    assert s.imported == 5 and s.faces >= 5
    assert dict(s.rejected) == {REASON_DETECTION: 1}
    (row,) = lib.images(status="rejected")
    assert row["path"].endswith("odd_size.jpg") and "simulated model failure" in row["error_detail"]
    assert flaky.calls == 1 + 6  # the batch once, then each photo alone


def test_detector_survives_tiny_and_extreme_images(detector):
    images = [Image.new("RGB", size, (128, 128, 128)) for size in [(1, 1), (3, 20000), (19, 19), (30, 20000)]]
    assert detector.detect(images) == [[], [], [], []]


def test_symlink_loop_as_import_path_is_a_clear_error(importer, tmp_path, capsys):
    from aspl.cli import main

    loop = tmp_path / "loop"
    loop.symlink_to(tmp_path / "loop")
    with pytest.raises(ImportPathError, match="symbolic link loop"):
        importer.run(loop, progress=False)
    rc = main(["import", str(loop), "--db", str(tmp_path / "lib2"), "--quiet", "--backbone", "dlib-resnet"])
    err = capsys.readouterr().err
    assert rc == 2 and "symbolic link loop" in err and "Traceback" not in err
