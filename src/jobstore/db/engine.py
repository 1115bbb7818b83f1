"""Engines set up for jobstore: SQLite pragmas, timeouts for servers, fork safety.

Every connection runs in the driver's autocommit mode. A single-statement read then takes one
round trip and holds no transaction open (an open read transaction stops SQLite's WAL from
checkpointing), and writes open their own transaction explicitly: ``BEGIN IMMEDIATE`` on SQLite,
so a read-then-write never loses an update to another process, and ``BEGIN`` elsewhere.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import StaticPool

from ..exceptions import JobStoreError

DEFAULT_URL = "sqlite:///jobstore.db"
SQLITE_BUSY_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 5
STATEMENT_TIMEOUT_S = 15
POOL_SIZE = 4
POOL_MAX_OVERFLOW = 4


def resolve_url(url: str | URL | Engine | None) -> str | URL | Engine:
    """The URL to use: the one given, else ``$JOBSTORE_URL``, else an SQLite file here."""
    if url is None:
        return os.environ.get("JOBSTORE_URL") or DEFAULT_URL
    return url


def safe_url(url: str | URL | Engine) -> str:
    """The URL with its password hidden, for every message a person may see."""
    if isinstance(url, Engine):
        return url.url.render_as_string(hide_password=True)
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"


def create_store_engine(url: str | URL) -> Engine:
    """An engine for ``url`` with the settings jobstore relies on (see the module docstring)."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise JobStoreError(f"not a database URL: {safe_url(url)}") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(parsed)
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return _server_engine(parsed, _postgres_connect_args(parsed))
    if backend in ("mysql", "mariadb"):
        if "+" not in parsed.drivername:
            parsed = parsed.set(drivername=f"{backend}+pymysql")
        return _server_engine(parsed, _mysql_connect_args(parsed))
    raise JobStoreError(f"unsupported database {backend!r}: use sqlite, postgresql or mysql")


def prepare_engine(engine: Engine) -> None:
    """Install the per-connection settings on an engine that the caller created."""
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _on_sqlite_connect)


def begin_statement(engine: Engine) -> str:
    return "BEGIN IMMEDIATE" if engine.dialect.name == "sqlite" else "BEGIN"


@contextmanager
def write_transaction(conn: Connection, begin_sql: str) -> Iterator[Connection]:
    """An explicit transaction on an autocommit connection; rolled back on any error."""
    conn.exec_driver_sql(begin_sql)
    try:
        yield conn
    except BaseException:
        try:
            conn.exec_driver_sql("ROLLBACK")
        except Exception:
            conn.invalidate()
        raise
    conn.exec_driver_sql("COMMIT")


def sqlite_path(url: URL) -> str | None:
    """The file behind an SQLite URL, or None for an in-memory database."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return database


def _sqlite_engine(url: URL) -> Engine:
    path = sqlite_path(url)
    kwargs: dict[str, Any] = {
        "isolation_level": "AUTOCOMMIT",
        "pool_reset_on_return": None,
    }
    connect_args: dict[str, Any] = {"check_same_thread": False}
    if "timeout" not in url.query:
        connect_args["timeout"] = SQLITE_BUSY_TIMEOUT_S
    if path is None:
        kwargs["poolclass"] = StaticPool
    else:
        _create_private_file(path)
        kwargs["pool_size"] = POOL_SIZE
        kwargs["max_overflow"] = POOL_MAX_OVERFLOW
    engine = create_engine(url, connect_args=connect_args, **kwargs)
    prepare_engine(engine)
    return engine


def _create_private_file(path: str) -> None:
    """Create a new database file 0600, so its -wal and -shm files are private too."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise JobStoreError(f"cannot create the SQLite file {path}: no directory {directory}")
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        raise JobStoreError(f"cannot create the SQLite file {path}: {exc.strerror}") from exc
    os.close(fd)


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _server_engine(url: URL, connect_args: dict[str, Any]) -> Engine:
    return create_engine(
        url,
        connect_args=connect_args,
        isolation_level="AUTOCOMMIT",
        pool_pre_ping=True,
        pool_size=POOL_SIZE,
        max_overflow=POOL_MAX_OVERFLOW,
        pool_timeout=CONNECT_TIMEOUT_S,
        pool_recycle=1800,
        pool_reset_on_return=None,
    )


def _postgres_connect_args(url: URL) -> dict[str, Any]:
    args: dict[str, Any] = {
        "connect_timeout": CONNECT_TIMEOUT_S,
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 5,
        "keepalives_count": 3,
        "tcp_user_timeout": STATEMENT_TIMEOUT_S * 1000,
    }
    if "options" not in url.query:
        args["options"] = f"-c statement_timeout={STATEMENT_TIMEOUT_S * 1000}"
    return args


def _mysql_connect_args(url: URL) -> dict[str, Any]:
    return {
        "connect_timeout": CONNECT_TIMEOUT_S,
        "read_timeout": STATEMENT_TIMEOUT_S,
        "write_timeout": STATEMENT_TIMEOUT_S,
        "charset": "utf8mb4",
    }
