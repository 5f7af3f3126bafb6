"""Uploaded files and zip archives, saved inside the library folder without escaping it.

Every member name of a zip is checked before anything is written: absolute
paths, drive letters, ``..`` components, symbolic links and names that resolve
outside the destination are refused with a reason; so are members past the
size limits (zip bombs). Only image files are extracted.
"""
from __future__ import annotations

import io
import logging
import os
import re
import shutil
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Iterable

from .imageio import is_image_path

log = logging.getLogger(__name__)

#: Default limits on what one upload may write.
MAX_MEMBER_BYTES = 200 * 1024 * 1024
MAX_TOTAL_BYTES = 4 * 1024 * 1024 * 1024
MAX_MEMBERS = 100_000

REASON_UNSAFE_PATH = "unsafe path in zip"
REASON_SYMLINK = "symbolic link in zip"
REASON_TOO_LARGE = "too large"
REASON_NOT_IMAGE_TYPE = "not an image file type"
REASON_BAD_ZIP = "not a valid zip file"
REASON_TOO_MANY = "too many files in zip"


class UnsafePathError(ValueError):
    """A path that would land outside the destination folder."""


@dataclass
class SaveResult:
    """What was written (image files) and what was refused, as ``(name, reason)``."""

    folder: Path
    saved: list[Path] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)


def safe_name(name: str, fallback: str = "file") -> str:
    """One file-name component: no separators, no leading dots, only printable safe characters."""
    base = re.sub(r"[^\w .()+,-]", "_", str(name).replace("\\", "/").split("/")[-1]).strip().lstrip(".")
    return base[:150] or fallback


def safe_member_path(dest: Path, member: str) -> Path:
    """Where a zip member would go under ``dest``; :class:`UnsafePathError` if it would escape it."""
    name = member.replace("\\", "/")
    if not name or name.startswith("/") or re.match(r"^[A-Za-z]:", name) or "\x00" in name:
        raise UnsafePathError(f"zip member {member!r} has an absolute or invalid path")
    parts = PurePosixPath(name).parts
    if any(p == ".." for p in parts):
        raise UnsafePathError(f"zip member {member!r} climbs out of its folder ('..')")
    clean = [safe_name(p) for p in parts if p not in ("", ".")]
    if not clean:
        raise UnsafePathError(f"zip member {member!r} has an empty path")
    target = dest.joinpath(*clean).resolve()
    root = dest.resolve()
    if target != root and root not in target.parents:
        raise UnsafePathError(f"zip member {member!r} resolves outside {root}")
    return target


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def extract_zip(source: str | os.PathLike | IO[bytes], dest: str | os.PathLike, result: SaveResult | None = None,
                max_member_bytes: int = MAX_MEMBER_BYTES, max_total_bytes: int = MAX_TOTAL_BYTES,
                max_members: int = MAX_MEMBERS) -> SaveResult:
    """Extract the image files of a zip into ``dest`` (created), refusing unsafe members."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    res = result or SaveResult(dest)
    label = getattr(source, "name", None) or str(source)
    try:
        zf = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError) as e:
        res.rejected.append((str(label), f"{REASON_BAD_ZIP} ({e})"))
        return res
    total = 0
    with zf:
        infos = zf.infolist()
        if len(infos) > max_members:
            res.rejected.append((str(label), f"{REASON_TOO_MANY}: {len(infos)} > {max_members}"))
            return res
        for info in infos:
            if info.is_dir():
                continue
            if _is_symlink(info):
                res.rejected.append((info.filename, REASON_SYMLINK))
                continue
            try:
                target = safe_member_path(dest, info.filename)
            except UnsafePathError as e:
                log.warning("refused %s", e)
                res.rejected.append((info.filename, REASON_UNSAFE_PATH))
                continue
            if not is_image_path(target):
                res.rejected.append((info.filename, REASON_NOT_IMAGE_TYPE))
                continue
            if info.file_size > max_member_bytes or total + info.file_size > max_total_bytes:
                res.rejected.append((info.filename, f"{REASON_TOO_LARGE} ({info.file_size:,} bytes)"))
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            written = 0
            too_big = False
            with zf.open(info) as src, open(target, "wb") as out:
                while True:  # the header's size can lie: count what is really written
                    chunk = src.read(1 << 20)
                    if not chunk:
                        break
                    written += len(chunk)
                    if written > max_member_bytes or total + written > max_total_bytes:
                        too_big = True
                        break
                    out.write(chunk)
            if too_big:
                target.unlink(missing_ok=True)
                res.rejected.append((info.filename, f"{REASON_TOO_LARGE} (more than {max_member_bytes:,} bytes)"))
                continue
            total += written
            res.saved.append(target)
    return res


def save_uploads(files: Iterable[tuple[str, IO[bytes] | bytes]], dest: str | os.PathLike) -> SaveResult:
    """Save uploaded ``(name, data)`` pairs into ``dest``: images as they are, zips extracted safely."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    res = SaveResult(dest)
    for name, data in files:
        fname = safe_name(name)
        if fname.lower().endswith(".zip"):
            src = data if not isinstance(data, (bytes, bytearray)) else io.BytesIO(data)
            sub = dest / safe_name(Path(fname).stem, "archive")
            extract_zip(src, sub, res)
            continue
        if not is_image_path(fname):
            res.rejected.append((name, REASON_NOT_IMAGE_TYPE))
            continue
        target = dest / fname
        stem, suffix, i = target.stem, target.suffix, 1
        while target.exists():
            target = dest / f"{stem}_{i}{suffix}"
            i += 1
        with open(target, "wb") as out:
            if isinstance(data, (bytes, bytearray)):
                out.write(data)
            else:
                shutil.copyfileobj(data, out)
        res.saved.append(target)
    return res
