"""Backwards-compatible home of :class:`Library` (now in :mod:`storage.library`) and its errors."""
from __future__ import annotations

from ._common import FACE_STATUSES, LABEL_SOURCES, _now  # noqa: F401
from .errors import LabelConflictError, NameConflictError, NotFoundError, StorageError  # noqa: F401
from .faces import NewFace, decode_crop, encode_crop  # noqa: F401
from .library import DB_FILENAME, Library  # noqa: F401
