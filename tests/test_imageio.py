"""Loading photos: modes, EXIF orientation, and every kind of bad file."""
import numpy as np
import pytest
from PIL import Image

from aspl.imageio import (REASON_BOMB, REASON_CORRUPT, REASON_EMPTY, REASON_NOT_IMAGE, REASON_UNREADABLE,
                          BadImageError, load_image)


@pytest.fixture
def photo(lfw_dev):
    return Image.open(sorted((lfw_dev / "Hans_Blix").glob("*.jpg"))[0]).convert("RGB")


def test_exif_orientation_is_applied(tmp_path, photo):
    # Stored rotated, with EXIF orientation 6 ("rotate 90 CW to display").
    stored = photo.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    p = tmp_path / "rotated.jpg"
    stored.save(p, exif=exif, quality=95)
    img = load_image(p)
    assert img.size == photo.size
    diff = np.abs(np.asarray(img, float) - np.asarray(photo, float)).mean()
    assert diff < 8  # upright again (JPEG noise only)


@pytest.mark.parametrize("mode", ["L", "RGBA", "CMYK", "P", "I;16"])
def test_modes_become_rgb(tmp_path, photo, mode):
    if mode == "I;16":
        a = (np.asarray(photo.convert("L"), np.uint16) * 257)
        img = Image.fromarray(a)
        ext = "png"
    else:
        img = photo.convert(mode)
        ext = "tif" if mode == "CMYK" else "png"
    p = tmp_path / f"x.{ext}"
    img.save(p)
    out = load_image(p)
    assert out.mode == "RGB" and out.size == photo.size
    assert np.asarray(out).std() > 10  # real content, not a blank conversion


def test_transparent_pixels_become_white(tmp_path):
    img = Image.new("RGBA", (10, 10), (255, 0, 0, 0))
    img.save(tmp_path / "t.png")
    assert np.asarray(load_image(tmp_path / "t.png"))[0, 0].tolist() == [255, 255, 255]


def _bad_files(tmp_path, lfw_dev):
    real = sorted((lfw_dev / "Hans_Blix").glob("*.jpg"))[0].read_bytes()
    files = {}
    (tmp_path / "empty.jpg").write_bytes(b"")
    files["empty.jpg"] = REASON_EMPTY
    (tmp_path / "notes.jpg").write_text("this is not a photo")
    files["notes.jpg"] = REASON_NOT_IMAGE
    (tmp_path / "truncated.jpg").write_bytes(real[: len(real) // 2])
    files["truncated.jpg"] = REASON_CORRUPT
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    files["corrupt.png"] = REASON_CORRUPT
    Image.new("1", (12000, 12000)).save(tmp_path / "bomb.png")
    files["bomb.png"] = REASON_BOMB
    (tmp_path / "dangling.jpg").symlink_to(tmp_path / "gone.jpg")
    files["dangling.jpg"] = REASON_UNREADABLE
    return files


def test_bad_files_raise_with_reason(tmp_path, lfw_dev):
    for name, reason in _bad_files(tmp_path, lfw_dev).items():
        with pytest.raises(BadImageError) as e:
            load_image(tmp_path / name)
        assert e.value.reason == reason, name
        assert name in str(e.value)
