"""Import page (AppTest): admin gate, a server folder import with its summary, an upload of a malicious zip."""
import io
import os
import zipfile

from apphelpers import ADMIN_PASSWORD, app_test, copy_photos, lfw_files, login, page, texts


def service():
    from app_pages.common import _service

    return _service(os.environ["ASPL_DB"])


def test_needs_the_admin_password(tmp_path, monkeypatch):
    at = page(app_test(monkeypatch, tmp_path / "lib"), "import_page")
    assert "Log in" in texts(at) and "Import folder" not in texts(at)
    login(at, "wrong password!")
    assert "Wrong password." in texts(at)
    login(at, ADMIN_PASSWORD)
    assert not at.exception and "Import folder" in texts(at)


def test_folder_import_then_zip_upload(tmp_path, monkeypatch, lfw_dev):
    src = copy_photos(lfw_files(lfw_dev, 2, ("Colin_Powell",)), tmp_path / "photos")
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    (src / "notes.txt").write_text("not a photo")
    at = login(page(app_test(monkeypatch, tmp_path / "lib"), "import_page"))
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
