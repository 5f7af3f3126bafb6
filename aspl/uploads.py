"""Uploaded files and zip archives, saved inside the library folder without escaping it.

Every member name of a zip is checked before anything is written: absolute
paths, drive letters, ``..`` components, symbolic links and names that resolve
outside the destination are refused with a reason; so are members past the
size limits (zip bombs). Only image files are extracted.

Nothing that goes wrong with one file or member escapes as an exception: a
corrupt member (bad CRC, unsupported compression, encryption), a name the file
system cannot hold, or a file past a limit becomes a ``(name, reason)`` entry of
:attr:`SaveResult.rejected`, and its partial file is removed. Names that clash
(twice the same member, or two uploads of one name) get a ``_1``, ``_2``, ...
suffix instead of overwriting each other. ``quota_bytes`` caps what one call may
write (the service passes what is left of the library's upload quota).
"""
from __future__ import annotations

import errno
import io
import logging
import os
import re
import stat
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, BinaryIO, Iterable

from .imageio import is_image_path

log = logging.getLogger(__name__)

#: Default limits on what one upload may write.
MAX_MEMBER_BYTES = 200 * 1024 * 1024
MAX_TOTAL_BYTES = 4 * 1024 * 1024 * 1024
MAX_MEMBERS = 100_000
#: Longest file-name component written, in UTF-8 bytes (file systems allow 255), and longest whole path.
MAX_NAME_BYTES = 150
MAX_PATH_BYTES = 3000

REASON_UNSAFE_PATH = "unsafe path in zip"
REASON_SYMLINK = "symbolic link in zip"
REASON_TOO_LARGE = "too large"
REASON_NOT_IMAGE_TYPE = "not an image file type"
REASON_BAD_ZIP = "not a valid zip file"
REASON_TOO_MANY = "too many files in zip"
REASON_BAD_MEMBER = "corrupt or unreadable zip member"
REASON_NAME_TOO_LONG = "path too long"
REASON_CANNOT_SAVE = "cannot be saved"
REASON_QUOTA = "upload quota exceeded"

# What reading a zip member or an upload stream can raise for one bad file.
_MEMBER_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError, NotImplementedError, ValueError)


class UnsafePathError(ValueError):
    """A path that would land outside the destination folder."""


class PathTooLongError(UnsafePathError):
    """A zip member nested so deep that its path is longer than :data:`MAX_PATH_BYTES`."""


@dataclass
class SaveResult:
    """What was written (image files) and what was refused, as ``(name, reason)``."""

    folder: Path
    saved: list[Path] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)


def safe_name(name: str, fallback: str = "file") -> str:
    """One file-name component: no separators, no leading dots, only printable safe characters, at most
    :data:`MAX_NAME_BYTES` bytes in UTF-8 (a long name is shortened before its extension, which is kept)."""
    base = re.sub(r"[^\w .()+,-]", "_", str(name).replace("\\", "/").split("/")[-1]).strip().lstrip(".")
    if len(base.encode("utf-8", "replace")) > MAX_NAME_BYTES:
        stem, dot, ext = base.rpartition(".")
        suffix = f".{ext}" if dot and stem and 0 < len(ext) <= 10 else ""
        head = base[:len(base) - len(suffix)].encode("utf-8", "replace")[:MAX_NAME_BYTES - len(suffix.encode())]
        base = head.decode("utf-8", "ignore").rstrip() + suffix
    return base or fallback


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
    if len(os.fsencode(target)) > MAX_PATH_BYTES:
        raise PathTooLongError(f"zip member {member[:80]!r}... is nested too deep: its path would be "
                              f"{len(os.fsencode(target)):,} bytes long (at most {MAX_PATH_BYTES:,})")
    return target


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


class _Budget:
    """What one save may still write: per file, in all, and under the library's upload quota."""

    def __init__(self, member: int, total: int, quota: int | None):
        self.member, self.total, self.quota, self.used = member, total, quota, 0

    def allowed(self) -> tuple[int, str]:
        """Bytes the next file may take, and the reason to give when it takes more."""
        limits = [(self.member, f"{REASON_TOO_LARGE} (more than {self.member:,} bytes)"),
                  (self.total - self.used, f"{REASON_TOO_LARGE} (the upload passes {self.total:,} bytes in all)")]
        if self.quota is not None:
            limits.append((self.quota - self.used,
                           f"{REASON_QUOTA} (the library's uploads may take {max(0, self.quota - self.used):,} "
                           "more bytes; raise ASPL_UPLOAD_QUOTA_BYTES or clean up imported uploads)"))
        n, why = min(limits, key=lambda t: t[0])
        return max(0, n), why


def _create_unique(target: Path) -> tuple[Path, BinaryIO]:
    """Create ``target`` exclusively, or ``stem_1.ext``, ``stem_2.ext``, ... when the name is taken."""
    stem, suffix = target.stem, target.suffix
    for i in range(100_000):
        p = target if i == 0 else target.with_name(f"{stem}_{i}{suffix}")
        try:
            return p, open(p, "xb")
        except (FileExistsError, IsADirectoryError):
            continue
    raise FileExistsError(f"no free name like {target}")


class _LimitError(Exception):
    """A file past a size limit or the quota (the message is the reason)."""


def _write(src: IO[bytes], target: Path, budget: _Budget, res: SaveResult, name: str) -> None:
    """Copy ``src`` into a new file at ``target`` (a unique name) within ``budget``; on any failure record
    ``(name, reason)`` in ``res`` and leave no partial file."""
    out_path: Path | None = None
    try:
        if len(os.fsencode(target)) > MAX_PATH_BYTES:
            raise OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG))
        target.parent.mkdir(parents=True, exist_ok=True)
        out_path, out = _create_unique(target)
        limit, why = budget.allowed()
        written = 0
        with out:
            while True:  # headers and streams can lie about sizes: count what is really written
                chunk = src.read(1 << 20)
                if not chunk:
                    break
                written += len(chunk)
                if written > limit:
                    raise _LimitError(why)
                out.write(chunk)
    except _LimitError as e:
        _discard(out_path)
        res.rejected.append((name, str(e)))
        return
    except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError) as e:
        _discard(out_path)
        res.rejected.append((name, f"{REASON_BAD_MEMBER} ({e})"))
        return
    except (OSError, ValueError) as e:
        _discard(out_path)
        too_long = isinstance(e, OSError) and e.errno == errno.ENAMETOOLONG
        res.rejected.append((name, REASON_NAME_TOO_LONG if too_long else
                             f"{REASON_CANNOT_SAVE} ({getattr(e, 'strerror', None) or e})"))
        return
    except BaseException:
        _discard(out_path)
        raise
    budget.used += written
    res.saved.append(out_path)


def _discard(path: Path | None) -> None:
    if path is not None:
        try:
            path.unlink(missing_ok=True)
        except OSError as e:
            log.warning("could not remove the partial file %s: %s", path, e)


def extract_zip(source: str | os.PathLike | IO[bytes], dest: str | os.PathLike, result: SaveResult | None = None,
                max_member_bytes: int = MAX_MEMBER_BYTES, max_total_bytes: int = MAX_TOTAL_BYTES,
                max_members: int = MAX_MEMBERS, quota_bytes: int | None = None,
                budget: _Budget | None = None, name: str | None = None) -> SaveResult:
    """Extract the image files of a zip into ``dest`` (created), refusing unsafe or broken members.

    ``name`` labels the archive in rejections (default: the source's name);
    ``budget`` is shared with the other files of one upload (else made from the limits).
    """
    dest = Path(dest)
    res = result or SaveResult(dest)
    budget = budget or _Budget(max_member_bytes, max_total_bytes, quota_bytes)
    label = name or str(getattr(source, "name", None) or source)
    try:
        dest.mkdir(parents=True, exist_ok=True)
        zf = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        res.rejected.append((label, f"{REASON_BAD_ZIP} ({e})"))
        return res
    with zf:
        infos = zf.infolist()
        if len(infos) > max_members:
            res.rejected.append((label, f"{REASON_TOO_MANY}: {len(infos)} > {max_members}"))
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
                res.rejected.append((info.filename, REASON_NAME_TOO_LONG if isinstance(e, PathTooLongError)
                                     else REASON_UNSAFE_PATH))
                continue
            if not is_image_path(target):
                res.rejected.append((info.filename, REASON_NOT_IMAGE_TYPE))
                continue
            limit, why = budget.allowed()
            if info.file_size > limit:  # the header says so (what is written is counted too)
                res.rejected.append((info.filename, why))
                continue
            try:
                src = zf.open(info)
            except _MEMBER_ERRORS as e:
                res.rejected.append((info.filename, f"{REASON_BAD_MEMBER} ({e})"))
                continue
            with src:
                _write(src, target, budget, res, info.filename)
    return res


def save_uploads(files: Iterable[tuple[str, IO[bytes] | bytes]], dest: str | os.PathLike,
                 max_member_bytes: int = MAX_MEMBER_BYTES, max_total_bytes: int = MAX_TOTAL_BYTES,
                 quota_bytes: int | None = None) -> SaveResult:
    """Save uploaded ``(name, data)`` pairs into ``dest``: images as they are, zips extracted safely
    (each into its own folder named after it). ``quota_bytes`` caps what this call writes in all."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    res = SaveResult(dest)
    budget = _Budget(max_member_bytes, max_total_bytes, quota_bytes)
    for name, data in files:
        fname = safe_name(name)
        src = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data
        if fname.lower().endswith(".zip"):
            stem = safe_name(fname[:-4], "archive")
            sub = dest / stem
            i = 1
            while sub.exists():  # two zips of one name: two folders
                sub = dest / f"{stem}_{i}"
                i += 1
            extract_zip(src, sub, res, budget=budget, name=name)
            continue
        if not is_image_path(fname):
            res.rejected.append((name, REASON_NOT_IMAGE_TYPE))
            continue
        _write(src, dest / fname, budget, res, name)
    return res


def disk_usage(path: str | os.PathLike) -> int:
    """Bytes taken by the regular files under ``path`` (links not followed; 0 if it does not exist)."""
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                st = os.lstat(os.path.join(root, f))
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
    return total


def remove_empty_dirs(path: str | os.PathLike, keep_top: bool = False) -> int:
    """Remove the empty folders under ``path`` (bottom-up), and ``path`` itself unless ``keep_top``;
    returns how many were removed."""
    n = 0
    for root, dirs, files in os.walk(path, topdown=False):
        if keep_top and os.path.normpath(root) == os.path.normpath(path):
            continue
        try:
            os.rmdir(root)
            n += 1
        except OSError:  # not empty (or already gone)
            continue
    return n
