"""What the table mixins share: constants, the clock, and the host interface they rely on."""
from __future__ import annotations

import datetime as _dt
from typing import TYPE_CHECKING, Any, ContextManager, Sequence

import sqlite_utils

LABEL_SOURCES = ("human", "seed", "auto")


def _integrity_errors() -> tuple[type[Exception], ...]:
    import sqlite3

    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is in requirements.txt
        return (sqlite3.IntegrityError,)
    return (sqlite3.IntegrityError, psycopg.IntegrityError)


#: A constraint refused a write (a second live human label, a duplicate name), on either database.
INTEGRITY_ERRORS = _integrity_errors()


def _database_errors() -> tuple[type[Exception], ...]:
    import sqlite3

    try:
        import psycopg
    except ImportError:  # pragma: no cover
        return (sqlite3.DatabaseError,)
    return (sqlite3.DatabaseError, psycopg.Error)


#: Any error the database raised (a trigger's refusal, a constraint), on either database.
DATABASE_ERRORS = _database_errors()
FACE_STATUSES = ("ok", "not_face", "stranger")


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


class _Host:
    """Base of the table mixins: what :class:`storage.library.Library` provides them.

    At run time this class is empty (the methods come from ``Library`` and the
    other mixins); the declarations below are for readers and type checkers.
    """

    db: sqlite_utils.Database

    if TYPE_CHECKING:
        def transaction(self) -> ContextManager[None]: ...
        def _one(self, sql: str, params: Sequence[Any] = ()) -> Any: ...
        def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict]: ...
        def _insert(self, table: str, record: dict[str, Any], replace: bool = False) -> int: ...
        def log_event(self, kind: str, actor: str | None = None, **payload: Any) -> None: ...
        # used across mixins
        def _put_embedding(self, face_id: int, backbone: str, vec: Any) -> None: ...
        def person_id(self, name: str, create: bool = False, actor: str | None = None) -> int: ...
        def person_name(self, person_id: int) -> str: ...
        def add_label(self, face_id: int, person_id: int, source: str, confidence: float | None = None,
                      round: int | None = None, annotator: str | None = None) -> int: ...
        def labelled_face_ids(self, sources: Sequence[str] = ("human", "seed")) -> set[int]: ...
        def backbones_embedded(self) -> dict[str, int]: ...


def equal_filters(**values: Any) -> tuple[list[str], list[Any]]:
    """``(["col = ?", ...], [value, ...])`` for the keyword arguments that are not None."""
    cols = [k for k, v in values.items() if v is not None]
    return [f"{k} = ?" for k in cols], [values[k] for k in cols]


def where_sql(clauses: Sequence[str]) -> str:
    """`` WHERE a AND b`` (empty without clauses)."""
    return " WHERE " + " AND ".join(clauses) if clauses else ""
