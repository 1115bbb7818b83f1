"""The statements a `JobStore` sends on every read and write, sent straight to the driver.

`JobRows` runs its statements through SQLAlchemy Core on a pooled connection per call. For the
two that a store sends on every database read and write (read one row; upsert one row and record
its history event) that route costs more than the database's own work: the pool checkout (with
a pre-ping round trip on servers), and SQLAlchemy's per-execution parameter and result handling.
So these are compiled once by SQLAlchemy for the engine's dialect and executed by the DBAPI
cursor itself, on one connection the rows keep checked out between calls:

- one thread at a time uses the kept connection; another thread that finds it busy takes a
  pooled connection for that call instead of waiting, so the pool is never exhausted by it;
- the kept connection is lent to the pool (`jobstore.db.store_pool`): a checkout that finds no
  idle connection (the background loop's, say) borrows it back between two calls, and the
  next call takes a pooled connection again, so the hot path and the loop share one;
- on an in-memory SQLite database, whose one connection every thread shares, no connection is
  kept: each call checks it out, one thread at a time (see `jobstore.db.shared_pool`);
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
import os
import threading
import weakref
from datetime import datetime
from select import POLLIN, poll
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, insert, literal_column, select
from sqlalchemy.exc import DBAPIError

from . import versions
from .hot_statements import SUPPORTED, Compiled, recorded, timestamp_for
from .schema import Schema
from .shared_pool import shares_one_connection
from .sqlite_file import guard_for
from .store_pool import StorePool, lending
from .versions import ROW_PARAMS, compare_and_set

_ROW_KEYS = list(ROW_PARAMS)


class _Kept:
    """The connection kept for the hot statements, its cursor, and the lock that lets one
    thread at a time use them."""

    __slots__ = ("conn", "cursor", "dbapi", "lock", "pid", "poller")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pid = os.getpid()
        self.conn: Connection | None = None
        self.dbapi: Any = None
        self.cursor: Any = None
        self.poller: Any = None


_ABANDONED: list[Any] = []
"""Connections a parent process kept, referenced in a forked child so that the child never
closes them (closing would end the parent's session on a server)."""

_live: weakref.WeakSet[DirectRows] = weakref.WeakSet()

_GET_ORDER = ("key",)
_WRITE_ORDER = ("key", "payload", "status", "key", "created_at", "updated_at", "written_by")
"""The insert binds the key twice: for its column, and to find the key's newest version."""
_RECORD_ORDER = ("key", "version", "payload", "status", "at", "written_by")


class DirectRows:
    """Read one job and upsert one job, straight through the driver (see the module docstring).

    Callers pass the `datetime` and get plain tuples back; `JobRows` wraps them.
    """

    def __init__(self, engine: Engine, schema: Schema, *, keep_connection: bool = True) -> None:
        self.engine = engine
        # A kept checkout of a pool's one shared connection would lock out every other thread.
        self._keep = keep_connection and not shares_one_connection(engine)
        self.dialect = engine.dialect
        self.name = engine.dialect.name
        if self.name not in SUPPORTED:
            raise ValueError(f"no direct statements for {self.name}")
        self._dbapi_error: type[Exception] = engine.dialect.loaded_dbapi.Error
        self._guard = guard_for(engine)
        self._kept = _Kept()
        jobs, events = schema.jobs, schema.events
        get = Compiled(
            select(jobs.c.payload, jobs.c.version).where(jobs.c.key == bindparam("key")),
            engine)
        upsert = versions.upsert(schema, self.name, returning=False)
        self._timestamp = timestamp_for(engine, schema)
        if self.name == "postgresql":
            write = Compiled(recorded(upsert, schema, "written"), engine, _ROW_KEYS)
            record = None
        else:
            write = Compiled(upsert.returning(jobs.c.version), engine, _ROW_KEYS)
            record = Compiled(insert(events).values(op=literal_column("'set'")), engine,
                              list(_RECORD_ORDER))
        cas = compare_and_set(schema)
        if self.name == "postgresql":
            write_at = Compiled(recorded(cas, schema, "changed"), engine)
        else:
            write_at = Compiled(cas.returning(jobs.c.version), engine)
            # Tried first: it leaves the status index alone when the status is kept
            # (PostgreSQL does that by itself).
            same = Compiled(compare_and_set(schema, keeping_status=True)
                            .returning(jobs.c.version), engine)
            self._same_status_sql, self._same_status_order = same.sql, same.order or ()
        self._write_at_sql = write_at.sql
        self._write_at_order = write_at.order or ()
        # Positional parameters are built in a fixed order below; a dialect that orders them
        # differently is refused here rather than sent the wrong values.
        for compiled, order in ((get, _GET_ORDER), (write, _WRITE_ORDER), (record, _RECORD_ORDER)):
            if compiled is not None and compiled.order not in (None, order):
                raise ValueError(f"unexpected parameter order {compiled.order}")
        self._named = get.order is None
        self._get_sql = get.sql
        self._write_sql = write.sql
        self._record_sql = record.sql if record is not None else ""
        _live.add(self)

    # the two operations ----------------------------------------------------------------------

    def get(self, key: str) -> tuple[str, int] | None:
        """The row's payload and version, or None."""
        params: Any = {"key": key} if self._named else (key,)
        if self._guard is not None:
            self._guard.ensure_not_lost()
        conn, cursor, kept = self._acquire()
        try:
            cursor.execute(self._get_sql, params)
            row = cursor.fetchone()
        except self._dbapi_error as exc:
            raise self._translate(exc, conn, self._get_sql) from exc
        finally:
            self._release(conn, cursor, kept)
        return None if row is None else (row[0], row[1])

    def upsert(self, key: str, payload: str, status: str | None, written_by: str,
               now: datetime) -> int:
        """Write the row (version + 1, or 1) and its history event in one transaction; the new
        version."""
        stamp = self._timestamp(now)
        if self._guard is not None:
            self._guard.ensure_not_lost()
        conn, cursor, kept = self._acquire()
        try:
            if self._named:
                cursor.execute(self._write_sql, {
                    "key": key, "payload": payload, "status": status,
                    "created_at": stamp, "updated_at": stamp, "written_by": written_by})
                version = int(cursor.fetchone()[0])
            else:
                version = self._begin_write_commit(cursor, key, payload, status, stamp,
                                                   written_by)
        except self._dbapi_error as exc:
            raise self._translate(exc, conn, self._write_sql) from exc
        finally:
            self._release(conn, cursor, kept)
        return version

    def _begin_write_commit(self, cursor: Any, key: str, payload: str, status: str | None,
                            stamp: Any, written_by: str) -> int:
        cursor.execute("BEGIN IMMEDIATE")
        try:
            cursor.execute(self._write_sql, (key, payload, status, key, stamp, stamp, written_by))
            version = int(cursor.fetchone()[0])
            cursor.execute(self._record_sql, (key, version, payload, status, stamp, written_by))
            cursor.execute("COMMIT")
        except BaseException:
            # If even this fails, the connection is unusable: the error above says why.
            with contextlib.suppress(Exception):
                cursor.execute("ROLLBACK")
            raise
        self._committed()
        return version

    def write_at_version(self, key: str, payload: str, status: str | None, written_by: str,
                         now: datetime, expected: int) -> int | None:
        """Write the row only if it is still at ``expected`` (a compare-and-set), with its
        history event, in one transaction; the new version, or None when the row moved."""
        values = {"at_key": key, "expected": expected, "new_payload": payload,
                  "new_status": status, "now": self._timestamp(now), "writer": written_by}
        if self._guard is not None:
            self._guard.ensure_not_lost()
        conn, cursor, kept = self._acquire()
        try:
            if self._named:
                cursor.execute(self._write_at_sql, values)
                row = cursor.fetchone()
                return None if row is None else int(row[0])
            return self._begin_write_at_commit(cursor, values)
        except self._dbapi_error as exc:
            raise self._translate(exc, conn, self._write_at_sql) from exc
        finally:
            self._release(conn, cursor, kept)

    def _begin_write_at_commit(self, cursor: Any, values: dict[str, Any]) -> int | None:
        """SQLite: the status-keeping compare-and-set, else the full one (each bound only
        when it runs), and the history event, in one transaction."""
        cursor.execute("BEGIN IMMEDIATE")
        try:
            cursor.execute(self._same_status_sql,
                           tuple(values[name] for name in self._same_status_order))
            row = cursor.fetchone()
            if row is None:
                cursor.execute(self._write_at_sql,
                               tuple(values[name] for name in self._write_at_order))
                row = cursor.fetchone()
            if row is not None:
                cursor.execute(self._record_sql, (
                    values["at_key"], int(row[0]), values["new_payload"], values["new_status"],
                    values["now"], values["writer"]))
            cursor.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(Exception):
                cursor.execute("ROLLBACK")
            raise
        self._committed()
        return None if row is None else int(row[0])

    def _committed(self) -> None:
        """An SQLite commit went into the file at the path, not one deleted or replaced
        meanwhile (see `jobstore.db.sqlite_file`)."""
        if self._guard is not None:
            self._guard.check()

    # the kept connection ---------------------------------------------------------------------

    def _acquire(self) -> tuple[Connection, Any, bool]:
        """A connection and a cursor for one call: the kept ones when no other thread uses
        them, else a pooled connection."""
        kept = self._kept
        if self._keep and kept.lock.acquire(blocking=False):
            try:
                if kept.conn is None:
                    self._open(kept)
                elif kept.poller is not None and kept.poller.poll(0):
                    self._check_alive(kept)
                assert kept.conn is not None
                return kept.conn, kept.cursor, True
            except BaseException:
                kept.lock.release()
                raise
        conn = self.engine.connect()
        try:
            return conn, conn.connection.dbapi_connection.cursor(), False  # type: ignore[union-attr]
        except BaseException:
            conn.close()
            raise

    def _release(self, conn: Connection, cursor: Any, kept: bool) -> None:
        if kept:
            self._kept.lock.release()
        else:
            try:
                cursor.close()
            finally:
                conn.close()

    def give_back(self, wait: float) -> bool:
        """Return the kept connection to the pool unless a call uses it for ``wait`` seconds
        more (`jobstore.db.store_pool.Lender`); never a connection of another process."""
        kept = self._kept
        if kept.conn is None or kept.pid != os.getpid():
            return False
        if not (kept.lock.acquire(timeout=wait) if wait > 0 else kept.lock.acquire(False)):
            return False
        try:
            if kept.conn is None or kept is not self._kept:
                return False
            self._drop(kept)
            return True
        finally:
            kept.lock.release()

    def _open(self, kept: _Kept) -> None:
        self._drop(kept)
        with lending():
            conn = self.engine.connect()
        pool = self.engine.pool
        if isinstance(pool, StorePool):
            pool.lend(self)
        try:
            dbapi: Any = conn.connection.dbapi_connection
            cursor = dbapi.cursor()
            poller = None
            if self.name == "postgresql":
                poller = poll()
                poller.register(dbapi.pgconn.socket, POLLIN)
        except BaseException:
            conn.close()
            raise
        kept.conn, kept.dbapi, kept.cursor, kept.poller = conn, dbapi, cursor, poller

    @staticmethod
    def _drop(kept: _Kept) -> None:
        conn = kept.conn
        kept.conn = kept.dbapi = kept.cursor = kept.poller = None
        if conn is not None:
            conn.close()

    def _check_alive(self, kept: _Kept) -> None:
        """The idle socket has something to read: usually the server saying goodbye."""
        try:
            self.dialect.do_ping(kept.dbapi)
        except self._dbapi_error:
            assert kept.conn is not None
            kept.conn.invalidate()
            self._open(kept)

    def _translate(self, exc: Exception, conn: Connection, sql: str) -> BaseException:
        """The driver's error as SQLAlchemy would raise it; a dead connection (or one left in
        a transaction the rollback could not end) is invalidated and, if kept, dropped."""
        dbapi = conn.connection.dbapi_connection if not conn.invalidated else None
        try:
            dead = bool(self.dialect.is_disconnect(exc, dbapi, None))  # type: ignore[arg-type]
        except Exception:
            dead = False
        stuck = bool(getattr(dbapi, "in_transaction", False))
        if (dead or stuck) and not conn.invalidated:
            conn.invalidate(exc)
        if (dead or stuck) and conn is self._kept.conn:
            self._drop(self._kept)
        return DBAPIError.instance(sql, None, exc, self._dbapi_error, hide_parameters=True,
                                   connection_invalidated=dead, dialect=self.dialect)

    def release(self) -> None:
        """Give the kept connection back to the pool (it is opened again on next use)."""
        kept = self._kept
        with kept.lock:
            self._drop(kept)

    def _after_fork_in_child(self) -> None:
        kept = self._kept
        if kept.conn is not None:
            _ABANDONED.append(kept.conn)
        self._kept = _Kept()


def _after_fork_in_child() -> None:
    for rows in list(_live):
        rows._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
