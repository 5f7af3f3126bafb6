"""A throwaway PostgreSQL server for the tests: ``initdb`` + ``pg_ctl`` in a temporary folder, on a free
loopback port, trust authentication, no durability (fsync off). Started once per test session.

The server runs as the ``postgres`` account when the tests run as root (PostgreSQL refuses root), as the
current user otherwise. Without the server binaries (Debian's ``postgresql`` package; ``.ci/run`` installs
it) the PostgreSQL half of the tests is skipped with that reason.
"""
from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


def bindir() -> Path | None:
    """The folder of ``initdb`` and ``pg_ctl`` (Debian keeps them out of PATH), or None."""
    for cand in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.access(Path(cand) / "initdb", os.X_OK):
            return Path(cand)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    """One running server; :meth:`new_database` gives each test its own database URL."""

    def __init__(self):
        self.bin = bindir()
        if self.bin is None:
            raise FileNotFoundError("PostgreSQL server binaries (initdb, pg_ctl) not found: "
                                    "apt-get install postgresql")
        self.dir = Path(tempfile.mkdtemp(prefix="aspl-pg-"))
        self.user = None
        if os.geteuid() == 0:
            self.user = "postgres"
            shutil.chown(self.dir, user="postgres")
        os.chmod(self.dir, 0o755)
        self.port = _free_port()
        self.db_user = self.user or os.environ.get("USER") or "postgres"
        self._names = itertools.count()
        self._run([str(self.bin / "initdb"), "-D", str(self.dir / "data"), "--auth=trust", "-U", self.db_user,
                   "--encoding=UTF8", "--no-sync"])
        opts = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._run([str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-o", opts, "-l", str(self.dir / "log"),
                   "-w", "start"])

    def _run(self, cmd: list[str]) -> None:
        if self.user:
            cmd = ["runuser", "-u", self.user, "--"] + cmd
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if res.returncode:
            raise RuntimeError(f"{' '.join(cmd)} failed ({res.returncode}): {res.stderr or res.stdout}")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.db_user}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        import psycopg

        name = f"aspl_test_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as c:
            c.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run([str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate", "stop"])
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


_SHARED: PgServer | None = None


def shared_server() -> PgServer:
    """One server for the whole test process, started on first use, stopped at exit (for helpers that are
    not fixtures, e.g. ``apphelpers.build_synthetic`` under ``ASPL_TEST_DB=postgresql``)."""
    global _SHARED
    if _SHARED is None:
        import atexit

        _SHARED = PgServer()
        atexit.register(_SHARED.stop)
    return _SHARED


def test_engine() -> str:
    """``ASPL_TEST_DB``: ``sqlite`` (default) or ``postgresql`` (the libraries the helpers make)."""
    engine = os.environ.get("ASPL_TEST_DB", "sqlite")
    if engine not in ("sqlite", "postgresql"):
        raise ValueError(f"ASPL_TEST_DB={engine!r}; valid choices: sqlite, postgresql")
    return engine


def new_library():
    """An empty library of the test engine: in-memory SQLite, or a fresh PostgreSQL database."""
    from storage import Library

    if test_engine() == "sqlite":
        return Library(":memory:")
    return Library(shared_server().new_database(), data_dir=tempfile.mkdtemp(prefix="aspl-pgdata-"))


_URLS: dict[str, str] = {}


def location(root) -> str:
    """What ``ASPL_DB`` names for the library kept at folder ``root`` in tests: the folder itself (SQLite), or
    the URL of the PostgreSQL database made for that folder (which then holds only its index files)."""
    if test_engine() == "sqlite":
        return str(root)
    key = str(Path(root).resolve())
    if key not in _URLS:
        _URLS[key] = shared_server().new_database()
    return _URLS[key]


def library_at(root):
    """The test library kept at folder ``root`` on the test engine (see :func:`location`)."""
    from storage import Library

    if test_engine() == "sqlite":
        return Library(root)
    return Library(location(root), data_dir=root)
