"""Loading photos safely: every failure becomes a :class:`BadImageError` with a reason."""
from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".pgm", ".ppm")

#: Images with more pixels than this are refused as decompression bombs.
MAX_PIXELS = 120_000_000

# Reasons recorded in the database (stable strings; the UI groups by them).
REASON_EMPTY = "empty file"
REASON_NOT_IMAGE = "not an image"
REASON_CORRUPT = "corrupt or truncated image"
REASON_BOMB = "decompression bomb"
REASON_UNREADABLE = "unreadable file"
REASON_NO_FACE = "no face found"


class BadImageError(ValueError):
    """A file that cannot be used as a photo; ``reason`` is one of the REASON_* strings."""

    def __init__(self, path: str | os.PathLike, reason: str, detail: str = ""):
        self.path = str(path)
        self.reason = reason
        self.detail = detail
        super().__init__(f"{path}: {reason}" + (f" ({detail})" if detail else ""))


def is_image_path(path: str | os.PathLike) -> bool:
    """Whether the file name has one of :data:`IMAGE_EXTENSIONS` (case-insensitive)."""
    return str(path).lower().endswith(IMAGE_EXTENSIONS)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's content, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF8", b"BM", b"II*\x00", b"MM\x00*",
               b"P1", b"P2", b"P3", b"P4", b"P5", b"P6")


def _has_image_signature(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return False
    return head.startswith(_SIGNATURES) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(img, dtype=np.float64)
        lo, hi = float(a.min()), float(a.max())
        a = (a - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(a)
        return Image.fromarray(a.astype(np.uint8)).convert("RGB")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, rgba).convert("RGB")
    return img.convert("RGB")  # L, P, CMYK, YCbCr, 1, ...


def load_image(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open a photo as upright RGB (EXIF orientation applied, alpha on white).

    Raises :class:`BadImageError` for empty, unreadable, non-image, corrupt or
    truncated files and for images over ``max_pixels`` pixels.
    """
    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError as e:
        raise BadImageError(p, REASON_UNREADABLE, e.strerror or str(e)) from e
    if size == 0:
        raise BadImageError(p, REASON_EMPTY)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(p) as im:
                w, h = im.size
                if w * h > max_pixels:
                    raise BadImageError(p, REASON_BOMB, f"{w}x{h} = {w * h:,} pixels > {max_pixels:,}")
                im.load()
                img = ImageOps.exif_transpose(im) or im
                return _to_rgb(img).copy()
    except BadImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise BadImageError(p, REASON_BOMB, str(e)) from e
    except UnidentifiedImageError as e:
        if _has_image_signature(p):  # looks like an image but does not decode
            raise BadImageError(p, REASON_CORRUPT, "unrecognised data after an image header") from e
        raise BadImageError(p, REASON_NOT_IMAGE) from e
    except PermissionError as e:
        raise BadImageError(p, REASON_UNREADABLE, e.strerror or str(e)) from e
    except IsADirectoryError as e:
        raise BadImageError(p, REASON_UNREADABLE, "is a directory") from e
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise BadImageError(p, REASON_CORRUPT, str(e)) from e
