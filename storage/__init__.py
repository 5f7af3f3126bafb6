"""Persistence: the SQLite library (via sqlite-utils) and FAISS indexes.

This is the only package that imports ``sqlite_utils`` or ``faiss``.
"""
from .errors import (  # noqa: F401
    LabelConflictError,
    NotFoundError,
    StorageError,
)
from .library import LABEL_SOURCES, Library  # noqa: F401
from .index import FaceIndex, IndexStore  # noqa: F401
from .state import StateFormatError, pack_state, unpack_state  # noqa: F401
