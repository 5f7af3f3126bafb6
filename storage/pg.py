"""The library on PostgreSQL: the part of ``sqlite_utils.Database`` that :class:`storage.Library` uses, on
psycopg 3, and the rewriting of the library's SQL into PostgreSQL's.

The storage mixins write one SQL dialect (SQLite's, with ``?`` and ``:name`` parameters). On PostgreSQL each
statement goes through :func:`translate` once (cached), a short list of exact rules, each tested in
``tests/test_storage_pg_sql.py``:

* parameters: ``?`` -> ``%s``, ``:name`` -> ``%(name)s`` (outside string literals; a literal ``%`` doubled);
* ``x IS ?`` / ``x IS NOT ?`` (null-safe comparison with a parameter) -> ``IS [NOT] DISTINCT FROM``;
* ``INSERT OR IGNORE INTO`` -> ``INSERT INTO ... ON CONFLICT DO NOTHING``;
* SQLite's planner hints: ``INDEXED BY name`` dropped, ``CROSS JOIN t ON`` -> ``JOIN t ON``;
* two-argument ``MIN(a, b)`` / ``MAX(a, b)`` -> ``LEAST`` / ``GREATEST``;
* ``s.rowid`` of the skips table -> ``s.seq`` (its insertion order column on PostgreSQL).

Write transactions take one advisory lock per library (``pg_advisory_xact_lock``), so writers queue as
they do on SQLite (``BEGIN IMMEDIATE``): "choose a face and lease it" stays atomic across app servers.
"""
from __future__ import annotations

import functools
import re
from typing import Any, Iterable, Sequence

import numpy as np

__all__ = ["is_url", "PgDatabase", "translate"]

#: Primary keys of the tables without an ``id`` column (conflict targets of ``insert(replace=True)``).
PRIMARY_KEYS: dict[str, tuple[str, ...]] = {
    "settings": ("key",), "embeddings": ("face_id", "backbone"), "skips": ("face_id", "annotator"),
    "loop_state": ("backbone",), "users": ("name",), "queue": ("face_id",), "track_faces": ("track_id", "face_id"),
    "leases": ("face_id",), "rejections": ("face_id", "person_id"), "counts": ("key",), "not_strangers": ("face_id",),
    "embedding_fingerprints": ("backbone",), "login_failures": ("name",), "_migrations": ("name",),
}
#: Advisory lock key of a library's write transactions (one database = one library).
WRITE_LOCK = 0x61_73_70_6C  # "aspl"


def is_url(location: Any) -> bool:
    """Whether ``location`` names a PostgreSQL library (``postgresql://`` or ``postgres://``)."""
    return isinstance(location, str) and location.startswith(("postgresql://", "postgres://"))


# ------------------------------------------------------------------ SQL rewriting
_TOKEN = re.compile(r"'(?:[^']|'')*'|\?|:[A-Za-z_]\w*|::|%")


def _params(sql: str) -> str:
    """Parameters to psycopg's style, string literals untouched, literal ``%`` doubled."""
    def sub(m: re.Match) -> str:
        t = m.group(0)
        if t.startswith("'") or t == "::":
            return t.replace("%", "%%") if t.startswith("'") else t
        if t == "?":
            return "%s"
        if t == "%":
            return "%%"
        return f"%({t[1:]})s"

    return _TOKEN.sub(sub, sql)


_RULES: list[tuple[re.Pattern, str]] = [
    (re.compile(r"\bIS NOT (\?|:[A-Za-z_]\w*)"), r"IS DISTINCT FROM \1"),
    (re.compile(r"\bIS (\?|:[A-Za-z_]\w*)"), r"IS NOT DISTINCT FROM \1"),
    (re.compile(r"\s+INDEXED BY \w+"), ""),
    (re.compile(r"\bCROSS JOIN (\w+ \w+) ON\b"), r"JOIN \1 ON"),
    (re.compile(r"\bs\.rowid\b"), "s.seq"),
]


def _two_arg(sql: str, fn: str, pg: str) -> str:
    """``fn(a, b)`` (two arguments at top level) -> ``pg(a, b)``; ``fn(x)`` (the aggregate) unchanged."""
    out, i = [], 0
    pat = re.compile(rf"\b{fn}\(", re.I)
    while (m := pat.search(sql, i)) is not None:
        depth, j, commas = 1, m.end(), 0
        while j < len(sql) and depth:
            c = sql[j]
            depth += (c == "(") - (c == ")")
            commas += c == "," and depth == 1
            j += 1
        out.append(sql[i:m.start()])
        inner = _two_arg(_two_arg(sql[m.end():j - 1], "MIN", "LEAST"), "MAX", "GREATEST")
        out.append(f"{pg if commas else fn}({inner})")
        i = j
    out.append(sql[i:])
    return "".join(out)


@functools.lru_cache(maxsize=4096)
def translate(sql: str) -> str:
    """The library's SQL (SQLite dialect) as PostgreSQL SQL; see the module docstring."""
    s = sql
    ignore = re.match(r"\s*INSERT OR IGNORE INTO\b", s, re.I)
    if ignore:
        s = "INSERT INTO" + s[ignore.end():] + " ON CONFLICT DO NOTHING"
    for pat, rep in _RULES:
        s = pat.sub(rep, s)
    s = _two_arg(_two_arg(s, "MIN", "LEAST"), "MAX", "GREATEST")
    return _params(s)


# ------------------------------------------------------------------ connection
def _register_numpy(conn) -> None:
    """numpy scalars as parameters (the library passes ``np.int64`` ids and ``np.float32`` scores)."""
    from psycopg.types.numeric import FloatDumper, FloatLoader, IntDumper

    for t in (np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64):
        conn.adapters.register_dumper(t, IntDumper)
    for t in (np.float16, np.float32, np.float64):
        conn.adapters.register_dumper(t, FloatDumper)
    conn.adapters.register_loader("numeric", FloatLoader)  # SUM() of integers: float, not Decimal


class _Cursor:
    """A psycopg cursor with the sqlite3 surface the library reads (``fetch*``, ``description``, iteration,
    ``rowcount``, ``lastrowid`` from ``RETURNING``)."""

    def __init__(self, cur, lastrowid: int | None = None):
        self._cur, self.lastrowid = cur, lastrowid

    def fetchone(self):
        return self._cur.fetchone() if self._cur.description else None

    def fetchall(self):
        return self._cur.fetchall() if self._cur.description else []

    def fetchmany(self, n: int):
        return self._cur.fetchmany(n) if self._cur.description else []

    @property
    def description(self):
        return self._cur.description

    @property
    def rowcount(self) -> int:
        return self._cur.rowcount

    def __iter__(self):
        return iter(self.fetchall())


class _Table:
    """``db.table(name)``: ``insert`` and ``insert_all`` as sqlite-utils does them."""

    def __init__(self, db: "PgDatabase", name: str):
        self.db, self.name = db, name
        self.last_rowid: int | None = None

    def insert(self, record: dict[str, Any], replace: bool = False) -> "_Table":
        cols = list(record)
        sql = f"INSERT INTO {self.name} ({', '.join(cols)}) VALUES ({', '.join(['%s'] * len(cols))})"
        keys = PRIMARY_KEYS.get(self.name)
        if replace and keys:
            sets = [f"{c} = excluded.{c}" for c in cols if c not in keys]
            if self.name == "skips":
                sets.append("seq = DEFAULT")  # SQLite's REPLACE gives the row a new rowid: a re-skip goes last
            sql += f" ON CONFLICT ({', '.join(keys)}) DO " + (f"UPDATE SET {', '.join(sets)}" if sets else "NOTHING")
        if keys is None:
            sql += " RETURNING id"
        cur = self.db.raw(sql, [record[c] for c in cols])
        self.last_rowid = int(cur.fetchone()[0]) if keys is None else None
        return self

    def insert_all(self, records: Iterable[dict[str, Any]], ignore: bool = False, batch_size: int = 1000,
                   **_: Any) -> "_Table":
        rows = list(records)
        if not rows:
            return self
        cols = list(rows[0])
        sql = f"INSERT INTO {self.name} ({', '.join(cols)}) VALUES ({', '.join(['%s'] * len(cols))})"
        if ignore:
            sql += " ON CONFLICT DO NOTHING"
        with self.db.conn.cursor() as cur:
            for i in range(0, len(rows), batch_size):
                cur.executemany(sql, [[r[c] for c in cols] for r in rows[i:i + batch_size]])
            if "id" in cols and self.name not in PRIMARY_KEYS:  # explicit ids: move the identity past them
                cur.execute(f"SELECT setval(pg_get_serial_sequence('{self.name}', 'id'), "
                            f"(SELECT MAX(id) FROM {self.name}))")
        return self


class PgDatabase:
    """What :class:`storage.Library` uses of ``sqlite_utils.Database``, on one psycopg connection
    (autocommit; the library opens its transactions itself)."""

    dialect = "postgresql"

    def __init__(self, url: str, connect_timeout_s: float = 10.0):
        try:
            import psycopg
        except ImportError as e:  # pragma: no cover - psycopg is in requirements.txt
            raise RuntimeError("a postgresql:// library needs psycopg 3: pip install 'psycopg[binary]'") from e
        self.url = url
        try:
            self.conn = psycopg.connect(url, autocommit=True, connect_timeout=int(connect_timeout_s))
        except psycopg.OperationalError as e:
            raise ConnectionError(f"cannot connect to the PostgreSQL library {_safe(url)}: "
                                  f"{str(e).strip().splitlines()[0] if str(e).strip() else e}") from e
        _register_numpy(self.conn)

    def raw(self, sql: str, params: Sequence[Any] | dict | None = None) -> _Cursor:
        """Run PostgreSQL SQL as written."""
        cur = self.conn.cursor()
        cur.execute(sql, params if params else None)
        return _Cursor(cur)

    def execute(self, sql: str, params: Sequence[Any] | dict | None = None) -> _Cursor:
        """Run the library's SQL (translated, see :func:`translate`)."""
        if isinstance(params, dict):
            return self.raw(translate(sql), params)
        return self.raw(translate(sql), list(params) if params else None)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self.conn.cursor() as cur:
            cur.executemany(translate(sql), [list(r) for r in rows])

    def table(self, name: str) -> _Table:
        return _Table(self, name)

    __getitem__ = table

    @property
    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus

        return self.conn.info.transaction_status != TransactionStatus.IDLE

    def begin(self) -> None:
        """Start a write transaction; writers of this library queue here, as on SQLite."""
        self.conn.execute("BEGIN")
        self.conn.execute("SELECT pg_advisory_xact_lock(%s)", [WRITE_LOCK])

    def commit(self) -> None:
        self.conn.execute("COMMIT")

    def rollback(self) -> None:
        self.conn.execute("ROLLBACK")

    def close(self) -> None:
        self.conn.close()


def _safe(url: str) -> str:
    """``url`` without its password."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)
