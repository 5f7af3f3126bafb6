"""Persistence: the library on SQLite (via sqlite-utils) or PostgreSQL (psycopg), and FAISS indexes.

This is the only package that imports ``sqlite_utils``, ``psycopg`` or ``faiss``.
"""
from ._common import DATABASE_ERRORS, INTEGRITY_ERRORS  # noqa: F401
from .errors import (  # noqa: F401
    BusyError,
    LabelConflictError,
    NotFoundError,
    StorageError,
)
from .library import LABEL_SOURCES, Library  # noqa: F401
from .index import FaceIndex, IndexStore  # noqa: F401
from .state import StateFormatError, pack_state, unpack_state  # noqa: F401
