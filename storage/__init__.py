"""Persistence: the SQLite library (via sqlite-utils) and FAISS indexes.

This is the only package that imports ``sqlite_utils`` or ``faiss``.
"""
from .db import (  # noqa: F401
    LABEL_SOURCES,
    Library,
    LabelConflictError,
    NotFoundError,
    StorageError,
)
from .index import FaceIndex, IndexStore  # noqa: F401
