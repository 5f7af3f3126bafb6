"""Import page (AppTest): admin gate, a server folder import with its summary, an upload of a malicious zip."""
import io
import os
import zipfile

import pytest

from apphelpers import ADMIN_PASSWORD, USER_PASSWORD, app_test, copy_photos, ensure_account, lfw_files, log_in, page, texts


def service():
    from app_pages.common import _service

    return _service(os.environ["ASPL_DB"])


def test_import_needs_an_admin_account(tmp_path, monkeypatch):
    at = app_test(monkeypatch, tmp_path / "lib", annotator=None)
    assert "Log in" in texts(at) and "Import folder" not in texts(at)
    ensure_account(tmp_path / "lib", "ann", "annotator")
    log_in(at, "ann", "wrong password!")
    assert "Wrong name or password." in texts(at)
    log_in(at, "ann", USER_PASSWORD)
    assert "Signed in as **ann** (annotator)" in texts(at)
    with pytest.raises(ValueError, match=r"Known pages: .*annotate.py'\]"):  # only Annotate for an annotator
        page(at, "import_page")
    at.button(key="logout").click().run()
    log_in(at, "admin", ADMIN_PASSWORD)  # the account ASPL_ADMIN_PASSWORD made
    page(at, "import_page")
    assert not at.exception and "Import folder" in texts(at)


def test_folder_import_then_zip_upload(tmp_path, monkeypatch, lfw_dev):
    monkeypatch.setenv("ASPL_IMPORT_ROOTS", str(tmp_path / "photos"))  # the server folder may be imported
    src = copy_photos(lfw_files(lfw_dev, 2, ("Colin_Powell",)), tmp_path / "photos")
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    (src / "notes.txt").write_text("not a photo")
    at = page(app_test(monkeypatch, tmp_path / "lib"), "import_page")
    next(t for t in at.text_input if t.label.startswith("Folder")).set_value(str(src))
    next(b for b in at.button if b.label == "Import folder").click().run()
    assert not at.exception
    job = service().jobs.latest("import").wait(120)
    assert job.status == "done", job.error
    at.run()
    t = texts(at)
    assert "Imported 2 photo(s)" in t and "face(s)" in t, t
    table = at.dataframe[0].value
    assert set(table["reason"]) == {"corrupt or truncated image", "not an image file type"}

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("../../escape.jpg", (src / "Colin_Powell").glob("*.jpg").__next__().read_bytes())
        zf.writestr("readme.md", b"hi")
    at.file_uploader[0].set_value(("evil.zip", buf.getvalue(), "application/zip"))
    next(b for b in at.button if b.label == "Upload and import").click().run()
    assert not at.exception
    rejected = at.dataframe[0].value
    assert {"../../escape.jpg", "readme.md"} <= set(rejected.iloc[:, 0])
    assert "unsafe path in zip" in set(rejected.iloc[:, 1])
    assert not (tmp_path / "escape.jpg").exists() and not (tmp_path / "lib" / "escape.jpg").exists()


def test_import_progress_and_a_summary_that_names_the_files(tmp_path, monkeypatch):
    import shutil
    import threading

    import app_pages.common as common
    from importfakes import FakeDetector, FakeEmbedder, photo

    gate = threading.Event()
    monkeypatch.setattr(common, "get_detector", lambda: FakeDetector(gate))  # no model: fast and exact
    monkeypatch.setattr(common, "get_embedder", FakeEmbedder)
    monkeypatch.setenv("ASPL_IMPORT_ROOTS", str(tmp_path / "photos"))
    src = tmp_path / "photos"
    first = photo(src / "a_face.png", True, 0)
    photo(src / "b_face.png", True, 1)
    for i in range(22):
        photo(src / f"c_dark_{i:02d}.png", False, 100 + i)
    shutil.copy(first, src / "z_copy.png")  # read in the second batch: the library has it by then
    at = page(app_test(monkeypatch, tmp_path / "lib"), "import_page")
    next(t for t in at.text_input if t.label.startswith("Folder")).set_value(str(src))
    next(b for b in at.button if b.label == "Import folder").click().run()
    job = service().jobs.latest("import")
    try:
        for _ in range(200):
            if job.done == 16:
                break
            threading.Event().wait(0.05)
        at.run()
        bar = at.get("progress")[0].proto.text
        assert bar.startswith(f"import {src}: 16/25 files · 2 faces found · 0 rejected · 0 already in the library · "
                              "14 without a face · "), bar
        assert "files/s · about" in bar and "left ·" in bar and "so far" in bar, bar
    finally:
        gate.set()
    assert job.wait(60).status == "done", job.error
    at.run()
    t = texts(at)
    assert "Imported 24 photo(s) with **2 face(s)** from 25 image file(s)" in t, t
    assert "1 already in the library, 22 without a face, 0 rejected" in t
    assert "**Photos without a face: 22**" in t and "- `c_dark_19.png`" in t and "c_dark_20" not in t
    assert "- … and 2 more" in t
    assert f"**Already in the library (not imported again): 1**\n\n- `z_copy.png` (same photo as `{first}`)" in t
