"""The statements a `JobStore` sends on every read and write, sent straight to the driver.

`JobRows` runs its statements through SQLAlchemy Core on a pooled connection per call. For the
two that a store sends on every database read and write (read one row; upsert one row and record
its history event) that route costs more than the database's own work: the pool checkout (with
a pre-ping round trip on servers), and SQLAlchemy's per-execution parameter and result handling.
So these are compiled once by SQLAlchemy for the engine's dialect and executed by the DBAPI
cursor itself, on one connection the rows keep checked out between calls:

- one thread at a time uses the kept connection; another thread that finds it busy takes a
  pooled connection for that call instead of waiting, so the pool is never exhausted by it;
- a forked child never touches its parent's kept connection: it opens its own on first use;
- on PostgreSQL, a kept connection whose socket turned readable while idle (the server closed
  it, or restarted) is pinged before use, and replaced when the ping fails, as
  ``pool_pre_ping`` would have done at checkout;
- driver errors are raised as SQLAlchemy's `DBAPIError` subclasses, as Core would raise them,
  and a connection the dialect judges dead is invalidated.

The writes keep their transactions: on SQLite ``BEGIN IMMEDIATE``, upsert ``RETURNING`` the
version, the event row, ``COMMIT``; on PostgreSQL one statement (the upsert in a data-modifying
``WITH`` whose rows the event insert reads), atomic on its own, so one round trip in autocommit.
"""

from __future__ import annotations

import contextlib
import operator
import os
import threading
import weakref
from collections.abc import Callable
from datetime import datetime
from select import POLLIN, poll
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, insert, literal_column, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError

from .schema import Schema

SUPPORTED = ("sqlite", "postgresql")
_ROW_KEYS = ("key", "payload", "status", "version", "created_at", "updated_at", "written_by")


class Compiled:
    """A Core statement compiled once for a dialect; `args` turns named values into the
    driver's parameters (a tuple in bind order for positional drivers, else the dict)."""

    __slots__ = ("_getter", "sql")

    def __init__(self, statement: Any, engine: Engine, keys: list[str] | None = None) -> None:
        compiled = statement.compile(dialect=engine.dialect, column_keys=keys)
        self.sql: str = compiled.string
        self._getter: Callable[[dict[str, Any]], Any] | None = None
        if compiled.positional:
            names = list(compiled.positiontup or ())
            if len(names) == 1:
                only = names[0]
                self._getter = lambda values: (values[only],)
            else:
                self._getter = operator.itemgetter(*names)

    def args(self, values: dict[str, Any]) -> Any:
        return values if self._getter is None else self._getter(values)


class _Kept:
    """The connection kept for the hot statements, and its lock."""

    __slots__ = ("conn", "dbapi", "lock", "poller")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.conn: Connection | None = None
        self.dbapi: Any = None
        self.poller: Any = None


_ABANDONED: list[Any] = []
"""Connections a parent process kept, referenced in a forked child so that the child never
closes them (closing would end the parent's session on a server)."""

_live: weakref.WeakSet[DirectRows] = weakref.WeakSet()


class DirectRows:
    """Read one job and upsert one job, straight through the driver (see the module docstring).

    Callers pass the `datetime` and get plain tuples back; `JobRows` wraps them.
    """

    def __init__(self, engine: Engine, schema: Schema, *, keep_connection: bool = True) -> None:
        self.engine = engine
        self._keep = keep_connection
        self.dialect = engine.dialect
        self.name = engine.dialect.name
        if self.name not in SUPPORTED:
            raise ValueError(f"no direct statements for {self.name}")
        self._dbapi_error: type[Exception] = engine.dialect.loaded_dbapi.Error
        self._kept = _Kept()
        jobs, events = schema.jobs, schema.events
        self._get = Compiled(
            select(jobs.c.payload, jobs.c.version).where(jobs.c.key == bindparam("key")),
            engine)
        upsert = _upsert(self.name, schema)
        timestamp = jobs.c.updated_at.type.dialect_impl(engine.dialect)
        processor = timestamp.bind_processor(engine.dialect)
        self._timestamp: Callable[[datetime], Any] = processor or (lambda value: value)
        row_keys = list(_ROW_KEYS)
        if self.name == "postgresql":
            written = upsert.returning(jobs.c.key, jobs.c.version, jobs.c.payload,
                                       jobs.c.status, jobs.c.updated_at,
                                       jobs.c.written_by).cte("written")
            self._write = Compiled(
                insert(events).from_select(
                    ["key", "version", "op", "payload", "status", "at", "written_by"],
                    select(written.c.key, written.c.version, literal_column("'set'"),
                               written.c.payload, written.c.status, written.c.updated_at,
                               written.c.written_by),
                ).returning(events.c.version),
                engine, row_keys)
        else:
            self._write = Compiled(upsert.returning(jobs.c.version), engine, row_keys)
            self._record = Compiled(
                insert(events).values(op=literal_column("'set'")), engine,
                ["key", "version", "payload", "status", "at", "written_by"])
        _live.add(self)

    # the two operations ----------------------------------------------------------------------

    def get(self, key: str) -> tuple[str, int] | None:
        """The row's payload and version, or None."""
        values = {"key": key}
        statement = self._get
        conn, dbapi, kept = self._acquire()
        try:
            cursor = dbapi.cursor()
            try:
                cursor.execute(statement.sql, statement.args(values))
                row = cursor.fetchone()
            finally:
                cursor.close()
        except self._dbapi_error as exc:
            raise self._translate(exc, conn, dbapi, statement.sql, values) from exc
        finally:
            self._release(conn, kept)
        return None if row is None else (row[0], row[1])

    def upsert(self, key: str, payload: str, status: str | None, written_by: str,
               now: datetime) -> int:
        """Write the row (version + 1, or 1) and its history event in one transaction; the new
        version."""
        stamp = self._timestamp(now)
        values = {"key": key, "payload": payload, "status": status, "version": 1,
                  "created_at": stamp, "updated_at": stamp, "written_by": written_by}
        statement = self._write
        conn, dbapi, kept = self._acquire()
        try:
            cursor = dbapi.cursor()
            try:
                if self.name == "postgresql":
                    cursor.execute(statement.sql, statement.args(values))
                    version = int(cursor.fetchone()[0])
                else:
                    version = self._sqlite_write(cursor, values, stamp)
            finally:
                cursor.close()
        except self._dbapi_error as exc:
            raise self._translate(exc, conn, dbapi, statement.sql, values) from exc
        finally:
            self._release(conn, kept)
        return version

    def _sqlite_write(self, cursor: Any, values: dict[str, Any], stamp: Any) -> int:
        cursor.execute("BEGIN IMMEDIATE")
        try:
            cursor.execute(self._write.sql, self._write.args(values))
            version = int(cursor.fetchone()[0])
            record = self._record
            cursor.execute(record.sql, record.args({
                "key": values["key"], "version": version, "payload": values["payload"],
                "status": values["status"], "at": stamp, "written_by": values["written_by"],
            }))
            cursor.execute("COMMIT")
        except BaseException:
            # If even this fails, the connection is unusable: the error above says why.
            with contextlib.suppress(Exception):
                cursor.execute("ROLLBACK")
            raise
        return version

    # the kept connection ---------------------------------------------------------------------

    def _acquire(self) -> tuple[Connection, Any, bool]:
        """A connection for one call: the kept one when no other thread uses it."""
        kept = self._kept
        if self._keep and kept.lock.acquire(blocking=False):
            try:
                if kept.conn is None or kept.conn.invalidated:
                    self._open(kept)
                elif kept.poller is not None and kept.poller.poll(0):
                    self._check_alive(kept)
                assert kept.conn is not None
                return kept.conn, kept.dbapi, True
            except BaseException:
                kept.lock.release()
                raise
        conn = self.engine.connect()
        try:
            return conn, conn.connection.dbapi_connection, False
        except BaseException:
            conn.close()
            raise

    def _release(self, conn: Connection, kept: bool) -> None:
        if kept:
            self._kept.lock.release()
        else:
            conn.close()

    def _open(self, kept: _Kept) -> None:
        if kept.conn is not None:
            kept.conn.close()
            kept.conn = kept.dbapi = kept.poller = None
        conn = self.engine.connect()
        dbapi: Any = conn.connection.dbapi_connection
        kept.conn, kept.dbapi = conn, dbapi
        if self.name == "postgresql":
            poller = poll()
            poller.register(dbapi.pgconn.socket, POLLIN)
            kept.poller = poller

    def _check_alive(self, kept: _Kept) -> None:
        """The idle socket has something to read: usually the server saying goodbye."""
        try:
            self.dialect.do_ping(kept.dbapi)
        except self._dbapi_error:
            assert kept.conn is not None
            kept.conn.invalidate()
            self._open(kept)

    def _translate(self, exc: Exception, conn: Connection, dbapi: Any, sql: str,
                   values: dict[str, Any]) -> BaseException:
        dead = False
        try:
            dead = bool(self.dialect.is_disconnect(exc, dbapi, None))  # type: ignore[arg-type]
        except Exception:
            dead = False
        if getattr(dbapi, "in_transaction", False):
            dead = True  # a transaction the rollback could not end: start afresh
        if dead and not conn.invalidated:
            conn.invalidate(exc)
        return DBAPIError.instance(sql, values, exc, self._dbapi_error, hide_parameters=True,
                                   connection_invalidated=dead, dialect=self.dialect)

    def release(self) -> None:
        """Give the kept connection back to the pool (it is opened again on next use)."""
        kept = self._kept
        with kept.lock:
            if kept.conn is not None:
                kept.conn.close()
            kept.conn = kept.dbapi = kept.poller = None

    def _after_fork_in_child(self) -> None:
        kept = self._kept
        if kept.conn is not None:
            _ABANDONED.append(kept.conn)
        self._kept = _Kept()


def _upsert(dialect: str, schema: Schema) -> Any:
    jobs = schema.jobs
    module: Any = sqlite if dialect == "sqlite" else postgresql
    statement = module.insert(jobs).values(
        {name: bindparam(name, type_=jobs.c[name].type) for name in _ROW_KEYS})
    excluded = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=[jobs.c.key],
        set_={
            "payload": excluded.payload,
            "status": excluded.status,
            "version": jobs.c.version + literal_column("1"),
            "updated_at": excluded.updated_at,
            "written_by": excluded.written_by,
        },
    )


def _after_fork_in_child() -> None:
    for rows in list(_live):
        rows._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
