"""Engines set up for jobstore: SQLite pragmas, timeouts for servers, fork safety.

Every connection runs in the driver's autocommit mode. A single-statement read then takes one
round trip and holds no transaction open (an open read transaction stops SQLite's WAL from
checkpointing), and writes open their own transaction explicitly: ``BEGIN IMMEDIATE`` on SQLite,
so a read-then-write never loses an update to another process, and ``BEGIN`` elsewhere.

A server that dies never hangs a caller (docs/databases.md has the figures):

- a new connection gives up after ``connect_timeout`` (5 s), also on a frozen server, which
  completes the TCP handshake and then says nothing (`jobstore.db.drivers` cuts the wait off
  on the client side); a refused one fails at once;
- every statement gets its answer within ``statement_timeout + REPLY_GRACE_S`` (15 + 5 s): the
  server cancels a slow statement itself after ``statement_timeout`` (PostgreSQL's
  ``statement_timeout``, MariaDB's ``max_statement_time``), and the client stops waiting for a
  reply that never comes after the grace more (psycopg: a bounded wait on the socket, then the
  connection is closed; PyMySQL: ``read_timeout``/``write_timeout``); TCP keepalives and
  ``tcp_user_timeout`` end a connection whose peer vanished without a word;
- every connection is pinged when it leaves the pool (``pool_pre_ping``), so after a server
  restart the first statement gets a fresh connection rather than a dead one.

So one operation fails within ``connect_timeout + statement_timeout + REPLY_GRACE_S`` (25 s by
default), and within milliseconds when the host is up and the server process is not: the bound
of the stages where the database is the authority. In the dict-first stages a failed write only
queues, so the store's calls there run as quick attempts (`jobstore.db.attempts`): each
connection and each reply is bounded by ``quick_timeout`` (1 s) instead, on the same pooled
connections, and after a failure the store's circuit keeps its calls off the database until a
probe (`probe`) reaches it again (`jobstore.shim.circuit`). Measured on a frozen PostgreSQL: a
``dual_write`` call returns after 1.00 s (waiting for a reply, or connecting), the calls after it
within a millisecond; a ``db_only`` one fails after 20.0 s on a pooled connection, 5.0 s when
connecting.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from .. import config
from ..exceptions import JobStoreError
from . import pgbouncer
from .drivers import bound_psycopg, bound_pymysql
from .redact import safe_url as safe_url  # re-exported: the store imports it from here
from .shared_pool import SharedConnectionPool
from .sqlite_file import check_after_commit, warn_if_new_beside_queue, watch
from .store_pool import StorePool

SQLITE_BUSY_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 5.0
"""Seconds a new server connection may take before it fails."""
STATEMENT_TIMEOUT_S = 15.0
"""Seconds the server lets one statement run before it cancels it."""
REPLY_GRACE_S = 5.0
"""Seconds the client waits for a reply beyond the statement timeout before it gives up."""
QUICK_TIMEOUT_S = 1.0
"""Seconds a connection or a reply may take inside a quick attempt (`jobstore.db.attempts`):
the dict-first stages, where a write the database does not take is queued."""
POOL_RECYCLE_S = 1800


def create_store_engine(
    url: str | URL,
    *,
    connect_timeout: float = CONNECT_TIMEOUT_S,
    statement_timeout: float = STATEMENT_TIMEOUT_S,
    quick_timeout: float = QUICK_TIMEOUT_S,
) -> Engine:
    """An engine for ``url`` with the settings jobstore relies on (see the module docstring).

    ``connect_timeout`` and ``statement_timeout`` (seconds) bound how long a server may keep a
    caller waiting; a ``connect_timeout`` or ``options`` given in the URL's query wins.
    ``quick_timeout`` bounds each connection and each reply of a quick attempt instead (the
    dict-first stages' calls; PostgreSQL through psycopg and MySQL through PyMySQL).
    """
    if connect_timeout <= 0 or statement_timeout <= 0 or quick_timeout <= 0:
        raise ValueError("connect_timeout, statement_timeout and quick_timeout must be positive")
    limits = _Limits(connect_timeout, statement_timeout, quick_timeout)
    parsed = parse_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(parsed, limits)
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        parsed, bouncer = pgbouncer.split(parsed)
        engine = _server_engine(parsed, _postgres_connect_args(parsed, limits, bouncer), limits)
        if bouncer:
            pgbouncer.mark(engine)
        if parsed.get_driver_name() == "psycopg":
            bound_psycopg(engine, limits.reply_timeout, limits.quick_timeout)
        return engine
    if backend in ("mysql", "mariadb"):
        if "+" not in parsed.drivername:
            parsed = parsed.set(drivername=f"{backend}+pymysql")
        engine = _server_engine(parsed, _mysql_connect_args(parsed, limits), limits)
        if parsed.get_driver_name() == "pymysql":
            bound_pymysql(engine, limits.quick_timeout)
        event.listen(engine, "connect", functools.partial(_on_mysql_connect, limits))
        return engine
    raise JobStoreError(f"unsupported database {backend!r}: use sqlite, postgresql or mysql")


_MEANT = {"postgres": "postgresql", "sqlite3": "sqlite"}
"""Schemes people write for a database SQLAlchemy names otherwise."""


def parse_url(url: str | URL) -> URL:
    """``url`` parsed, or `JobStoreError` in one line without the password: SQLAlchemy raises
    ``ArgumentError`` for a URL it cannot read and a bare ``ValueError`` for a port that is not
    a number (whose text is not repeated: without an ``@`` it may be the password)."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise JobStoreError(f"not a database URL: {safe_url(url)}") from exc
    except ValueError as exc:
        raise JobStoreError("not a database URL: its port is not a number "
                            "(dialect+driver://user:password@host:port/database)") from exc
    meant = _MEANT.get(parsed.get_backend_name())
    if meant is not None:
        raise JobStoreError(f"unsupported database {parsed.get_backend_name()!r} in "
                            f"{safe_url(parsed)}: did you mean {meant}://?")
    return parsed


def prepare_engine(engine: Engine) -> None:
    """Install the per-connection settings on an engine that the caller created.

    An in-memory SQLite engine must come from `create_store_engine`: SQLAlchemy's own pools
    give each thread a database of its own, or share one connection without serialising it."""
    if engine.dialect.name != "sqlite":
        return
    if _in_memory(engine.url) and not isinstance(engine.pool, SharedConnectionPool):
        raise JobStoreError(
            f"an in-memory SQLite engine ({safe_url(engine.url)}) must be built by "
            "jobstore.db.engine.create_store_engine, so that its threads share one "
            "connection one at a time; or pass the URL itself")
    event.listen(engine, "connect", _on_sqlite_connect)
    path = sqlite_path(engine.url)
    if path is not None:
        warn_if_new_beside_queue(path)
        watch(engine, path)


def begin_statement(engine: Engine) -> str:
    return "BEGIN IMMEDIATE" if engine.dialect.name == "sqlite" else "BEGIN"


@contextmanager
def write_transaction(conn: Connection, begin_sql: str) -> Iterator[Connection]:
    """An explicit transaction on an autocommit connection; rolled back on any error. On an
    SQLite file, a commit into a file deleted or replaced meanwhile raises (`sqlite_file`)."""
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
    check_after_commit(conn.dialect)


def probe(engine: Engine) -> None:
    """One round trip that fails unless the database takes writes now: ``SELECT 1`` on a
    server; on SQLite, whose file answers reads while another process holds its write lock,
    an empty transaction begun with ``BEGIN IMMEDIATE`` (which waits for that lock)."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            with write_transaction(conn, begin_statement(engine)):
                pass
        else:
            conn.exec_driver_sql("SELECT 1")


def sqlite_path(url: URL) -> str | None:
    """The file behind an SQLite URL, or None for an in-memory database."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return database


def _sqlite_engine(url: URL, limits: _Limits) -> Engine:
    path = sqlite_path(url)
    kwargs: dict[str, Any] = {
        "isolation_level": "AUTOCOMMIT",
        "pool_reset_on_return": None,
    }
    connect_args: dict[str, Any] = {"check_same_thread": False}
    if "timeout" not in url.query:
        connect_args["timeout"] = SQLITE_BUSY_TIMEOUT_S
    if path is None:
        kwargs["poolclass"] = SharedConnectionPool
        kwargs["shared_name"] = _shared_cache_name(url)
        kwargs["shared_wait"] = limits.connect_timeout + limits.statement_timeout
    else:
        warn_if_new_beside_queue(path)
        _create_private_file(path)
        kwargs["poolclass"] = StorePool
        kwargs["pool_timeout"] = limits.connect_timeout
        kwargs["pool_size"] = config.pool_size()
        kwargs["max_overflow"] = config.pool_max_overflow()
    engine = create_engine(url, connect_args=connect_args, **kwargs)
    prepare_engine(engine)
    return engine


def _in_memory(url: URL) -> bool:
    database = url.database or ""
    return (database in ("", ":memory:") or url.query.get("mode") == "memory"
            or database.startswith("file::memory:"))


def _shared_cache_name(url: URL) -> str | None:
    """The name of a shared-cache database, one per process whatever its connections; None
    for a database private to its connection. A ``file:`` name needs ``uri=true``: without it
    SQLite would create a file called ``file:...``."""
    database = url.database or ""
    if not database.startswith("file:"):
        return None
    if str(url.query.get("uri", "")).lower() not in ("true", "1"):
        raise JobStoreError(
            f"the SQLite URI filename in {safe_url(url)} needs uri=true in the URL's query "
            "(sqlite:///file:NAME?mode=memory&cache=shared&uri=true)")
    return database if url.query.get("cache") == "shared" else None


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


class _Limits:
    """The time bounds of one engine, in seconds."""

    def __init__(self, connect_timeout: float, statement_timeout: float,
                 quick_timeout: float) -> None:
        self.connect_timeout = connect_timeout
        self.statement_timeout = statement_timeout
        self.reply_timeout = statement_timeout + REPLY_GRACE_S
        self.quick_timeout = quick_timeout


def _server_engine(url: URL, connect_args: dict[str, Any], limits: _Limits) -> Engine:
    return create_engine(
        url,
        connect_args=connect_args,
        poolclass=StorePool,
        isolation_level="AUTOCOMMIT",
        pool_pre_ping=True,
        pool_size=config.pool_size(),
        max_overflow=config.pool_max_overflow(),
        pool_timeout=limits.connect_timeout,
        pool_recycle=POOL_RECYCLE_S,
        pool_reset_on_return=None,
    )


def _postgres_connect_args(url: URL, limits: _Limits, bouncer: bool) -> dict[str, Any]:
    """Bounded waits; through PgBouncer no prepared statements and no ``options`` startup
    parameter (`jobstore.db.pgbouncer`)."""
    args: dict[str, Any] = {
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 5,
        "keepalives_count": 3,
        "tcp_user_timeout": int(limits.reply_timeout * 1000),
    }
    if "connect_timeout" not in url.query:
        # libpq counts whole seconds, and treats 1 as 2.
        args["connect_timeout"] = max(2, math.ceil(limits.connect_timeout))
    if bouncer:
        args["prepare_threshold"] = None
    elif "options" not in url.query:
        args["options"] = f"-c statement_timeout={int(limits.statement_timeout * 1000)}"
    return args


def _mysql_connect_args(url: URL, limits: _Limits) -> dict[str, Any]:
    args: dict[str, Any] = {
        "read_timeout": math.ceil(limits.reply_timeout),
        "write_timeout": math.ceil(limits.reply_timeout),
        "charset": "utf8mb4",
    }
    if "connect_timeout" not in url.query:
        args["connect_timeout"] = math.ceil(limits.connect_timeout)
    return args


def _on_mysql_connect(limits: _Limits, dbapi_connection: Any, _record: Any) -> None:
    """MariaDB cancels a statement after ``statement_timeout`` (MySQL has no such setting for
    writes; there the client's read timeout is the bound)."""
    if "mariadb" not in str(dbapi_connection.get_server_info()).lower():
        return
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"SET SESSION max_statement_time = {float(limits.statement_timeout)!r}")
    finally:
        cursor.close()
