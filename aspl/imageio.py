"""Loading photos safely: every failure becomes a :class:`BadImageError` with a reason."""
from __future__ import annotations

import hashlib
import os
import stat
import warnings
from pathlib import Path
from typing import BinaryIO

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
REASON_NOT_REGULAR = "not a regular file"
REASON_OUTSIDE = "link outside the import folder"
REASON_TOO_SMALL = "image too small"
REASON_ASPECT = "extreme aspect ratio"
REASON_DETECTION = "detection failed"
REASON_EMBEDDING = "embedding failed"

#: Photos whose longer side is more than this many times the shorter one are refused.
MAX_ASPECT = 50.0


def display_path(path: str | os.PathLike | bytes) -> str:
    """A file path as printable text: bytes that are not UTF-8 (file names in another encoding)
    become ``\\xNN`` escapes, so logging, JSON and the pages never fail on it."""
    try:
        raw = os.fsencode(path)
    except UnicodeEncodeError:  # lone surrogates that are not file-system escapes
        return os.fspath(path).encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


class BadImageError(ValueError):
    """A file that cannot be used as a photo; ``reason`` is one of the REASON_* strings."""

    def __init__(self, path: str | os.PathLike, reason: str, detail: str = ""):
        self.path = os.fspath(path)
        self.reason = reason
        self.detail = detail
        super().__init__(f"{display_path(path)}: {reason}" + (f" ({detail})" if detail else ""))


def is_image_path(path: str | os.PathLike) -> bool:
    """Whether the file name has one of :data:`IMAGE_EXTENSIONS` (case-insensitive)."""
    return str(path).lower().endswith(IMAGE_EXTENSIONS)


def sha256_file(path: str | os.PathLike | BinaryIO, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's content (a path, or an open binary file read from its start), in chunks.

    A path is opened with :func:`open_regular` (:class:`BadImageError` for pipes, devices, missing files)."""
    h = hashlib.sha256()
    if hasattr(path, "read"):
        path.seek(0)
        for b in iter(lambda: path.read(chunk), b""):
            h.update(b)
        return h.hexdigest()
    with open_regular(path) as f:
        for b in iter(lambda: f.read(chunk), b""):
            h.update(b)
    return h.hexdigest()


_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def file_kind(mode: int) -> str:
    """What a ``st_mode`` describes, in words (``a named pipe (FIFO)``, ``a character device``, ...)."""
    return next((name for test, name in _KINDS if test(mode)), "not a plain file")


def open_regular(path: str | os.PathLike) -> BinaryIO:
    """Open a regular file for reading (symbolic links followed); never blocks on pipes or devices.

    Raises :class:`BadImageError`: ``REASON_NOT_REGULAR`` for a FIFO, socket,
    device or folder (checked before opening, and again on the open handle, so a
    file swapped meanwhile is caught too), ``REASON_UNREADABLE`` when it cannot be
    opened (missing, dangling or looping link, no permission).
    """
    try:
        st = os.stat(path)
    except (OSError, ValueError) as e:
        raise BadImageError(path, REASON_UNREADABLE, getattr(e, "strerror", None) or str(e)) from e
    if not stat.S_ISREG(st.st_mode):
        raise BadImageError(path, REASON_NOT_REGULAR, file_kind(st.st_mode))
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        raise BadImageError(path, REASON_UNREADABLE, e.strerror or str(e)) from e
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise BadImageError(path, REASON_NOT_REGULAR, file_kind(st.st_mode))
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def check_dimensions(path: str | os.PathLike, width: int, height: int, min_side: int = 20,
                     max_aspect: float = MAX_ASPECT) -> None:
    """Refuse photos a face detector cannot scan: :class:`BadImageError` with ``REASON_TOO_SMALL`` when the
    shorter side is under ``min_side`` pixels, ``REASON_ASPECT`` when the longer side exceeds ``max_aspect``
    times the shorter one."""
    short, long_ = min(width, height), max(width, height)
    if short < min_side:
        raise BadImageError(path, REASON_TOO_SMALL, f"{width}x{height}; the shorter side must be at least "
                                                    f"{min_side} pixels")
    if long_ > max_aspect * short:
        raise BadImageError(path, REASON_ASPECT, f"{width}x{height}; the longer side may be at most "
                                                 f"{max_aspect:g} times the shorter one")


_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF8", b"BM", b"II*\x00", b"MM\x00*",
               b"P1", b"P2", b"P3", b"P4", b"P5", b"P6")


def _has_image_signature(head: bytes) -> bool:
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


def load_image(path: str | os.PathLike, max_pixels: int = MAX_PIXELS,
               fileobj: BinaryIO | None = None) -> Image.Image:
    """Open a photo as upright RGB (EXIF orientation applied, alpha on white).

    Reads ``fileobj`` (an open handle of ``path``, e.g. from :func:`open_regular`)
    when given, else opens ``path`` with :func:`open_regular`. Raises
    :class:`BadImageError` for empty, unreadable, non-regular, non-image, corrupt
    or truncated files and for images over ``max_pixels`` pixels.
    """
    p = Path(path)
    if fileobj is None:
        with open_regular(p) as f:
            return _decode(p, f, max_pixels)
    return _decode(p, fileobj, max_pixels)


def _decode(p: Path, f: BinaryIO, max_pixels: int) -> Image.Image:
    f.seek(0, os.SEEK_END)
    if f.tell() == 0:
        raise BadImageError(p, REASON_EMPTY)
    f.seek(0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(f) as im:
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
        f.seek(0)
        if _has_image_signature(f.read(16)):  # looks like an image but does not decode
            raise BadImageError(p, REASON_CORRUPT, "unrecognised data after an image header") from e
        raise BadImageError(p, REASON_NOT_IMAGE) from e
    except PermissionError as e:
        raise BadImageError(p, REASON_UNREADABLE, e.strerror or str(e)) from e
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise BadImageError(p, REASON_CORRUPT, str(e)) from e
    except MemoryError as e:
        raise BadImageError(p, REASON_BOMB, "ran out of memory decoding it") from e
    except Exception as e:  # noqa: BLE001 - hostile files make decoders fail in any way; one photo, one reason
        raise BadImageError(p, REASON_CORRUPT, f"{type(e).__name__}: {e}") from e
