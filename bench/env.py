"""Where the benchmarks put their data: a scratch directory, and the PostgreSQL test server."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from typing import Any

PG_URL = os.environ.get("JOBSTORE_BENCH_POSTGRESQL",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def pg_dsn(url: str = PG_URL) -> str:
    """The libpq form of the SQLAlchemy URL, for raw psycopg."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


class Env:
    """A scratch directory and the server tables made during one run; `close` removes both."""

    def __init__(self, use_pg: bool = True) -> None:
        self.dir = tempfile.mkdtemp(prefix="jobstore-bench-")
        self.pg_reason: str | None = None if use_pg else "skipped (--no-pg)"
        if use_pg:
            self.pg_reason = _pg_unreachable()
        self._pg_tables: list[str] = []

    @property
    def has_pg(self) -> bool:
        return self.pg_reason is None

    def path(self, name: str) -> str:
        return os.path.join(self.dir, f"{name}-{uuid.uuid4().hex[:8]}")

    def sqlite_url(self, name: str) -> str:
        return f"sqlite:///{self.path(name)}.db"

    def pg_table(self, prefix: str) -> str:
        """A new table name on the shared server, dropped (with its history) by `close`."""
        name = f"bench_{prefix}_{uuid.uuid4().hex[:10]}"
        self._pg_tables.append(name)
        return name

    def close(self) -> None:
        if self._pg_tables:
            drop_pg_tables(self._pg_tables)
            self._pg_tables.clear()
        shutil.rmtree(self.dir, ignore_errors=True)


def _pg_unreachable() -> str | None:
    try:
        import psycopg
    except ImportError as exc:
        return f"psycopg is not installed: {exc}"
    try:
        with psycopg.connect(pg_dsn(), connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        return f"PostgreSQL at {PG_URL} is unreachable: {str(exc).strip().splitlines()[0]}"
    return None


def drop_pg_tables(tables: list[str]) -> None:
    """Drop the benchmark's tables and their rows in jobstore's control tables."""
    import psycopg

    with psycopg.connect(pg_dsn(), connect_timeout=3, autocommit=True) as conn:
        for table in tables:
            for statement in (f"DROP TABLE IF EXISTS {table}_events",
                              f"DROP TABLE IF EXISTS {table}"):
                with contextlib.suppress(Exception):
                    conn.execute(statement)
            for control in ("jobstore_verify_reports", "jobstore_control", "jobstore_instances",
                            "jobstore_verify_requests"):
                _delete_control_rows(conn, control, table)


def _delete_control_rows(conn: Any, control: str, table: str) -> None:
    with contextlib.suppress(Exception):
        if control == "jobstore_verify_reports":
            conn.execute(
                "DELETE FROM jobstore_verify_reports WHERE request_id IN "
                "(SELECT id FROM jobstore_verify_requests WHERE job_table = %s)", (table,))
        else:
            conn.execute(f"DELETE FROM {control} WHERE job_table = %s", (table,))
