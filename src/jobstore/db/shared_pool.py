"""The pool of an in-memory SQLite database: one connection, one thread at a time.

An in-memory database lives in its one connection, so every thread of a store (callers, the
background loop, control-plane reads) must use that connection; SQLite's own locking never
sees two connections, so nothing stops two threads from interleaving their statements and
transactions on it (one thread's ``COMMIT`` ends another's transaction). `SharedConnectionPool`
hands out the one connection to one checkout at a time, each checkout holding a re-entrant lock
until it is returned: the same thread may check out again while it holds one (SQLAlchemy does
so), another thread waits. Each checkout gets a record of its own, so SQLAlchemy's bookkeeping
of checkins stays exact, and invalidating one never closes the database: its transaction is
rolled back instead. The connection is closed only when the pool is disposed.

A shared-cache database (``file:NAME?mode=memory&cache=shared&uri=true``) is one database for
every connection of the process that names it, so the pools of every engine on one such name
share one lock.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import weakref
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import ConnectionPoolEntry, Pool
from sqlalchemy.pool.base import _ConnectionRecord

DEFAULT_WAIT_S = 20.0
"""Seconds a checkout waits for another thread's by default."""

_NAMED_LOCKS: dict[str, threading.RLock] = {}
_NAMED_LOCKS_GUARD = threading.Lock()


def lock_for(name: str | None) -> threading.RLock:
    """A new lock for a private database (``name`` None), else the process's lock for the
    database of that name."""
    if name is None:
        return threading.RLock()
    with _NAMED_LOCKS_GUARD:
        return _NAMED_LOCKS.setdefault(name, threading.RLock())


def shares_one_connection(engine: Engine) -> bool:
    """Whether every checkout of ``engine`` is the same connection, one thread at a time: then
    no connection may stay checked out between calls, since it would lock out every other
    thread."""
    return isinstance(engine.pool, SharedConnectionPool)


class SharedConnectionPool(Pool):
    """One DBAPI connection, checked out by one thread at a time (see the module docstring)."""

    _sqla_logger_namespace = "sqlalchemy.pool.impl.SingletonThreadPool"
    """Logs as SQLAlchemy's own pools do, not under the ``jobstore`` logger."""

    def __init__(self, creator: Any, shared_name: str | None = None,
                 shared_wait: float = DEFAULT_WAIT_S,
                 shared_connection: DBAPIConnection | None = None,
                 **kwargs: Any) -> None:
        """``shared_name``: the shared-cache database's name, None for a private database;
        ``shared_wait``: seconds a checkout waits for another thread's before it fails with an
        `OperationalError`; ``shared_connection``: a connection to adopt (on `recreate`).

        The arguments are positional-or-keyword so that ``create_engine`` passes them on."""
        super().__init__(creator, **kwargs)
        self._name = shared_name
        self._lock = lock_for(shared_name)
        _pools.add(self)
        self._wait = shared_wait
        self._shared: DBAPIConnection | None = shared_connection
        self._make = self._invoke_creator
        self._invoke_creator = self._connection

    def _connection(self, rec: ConnectionPoolEntry) -> DBAPIConnection:
        """The one connection, opened on first use; a record that reconnects gets it again."""
        if self._shared is None:
            self._shared = self._make(rec)
        return self._shared

    def _do_get(self) -> ConnectionPoolEntry:
        if not self._lock.acquire(timeout=self._wait):
            raise OperationalError(
                "(pool checkout)", None,
                Exception(f"the in-memory database stayed busy for {self._wait:g} s"))
        try:
            if self._shared is None:
                return _ConnectionRecord(self)
            record = _ConnectionRecord(self, connect=False)
            record.dbapi_connection = self._shared
            record.starttime = time.time()
            return record
        except BaseException:
            self._lock.release()
            raise

    def _do_return_conn(self, record: ConnectionPoolEntry) -> None:
        self._lock.release()

    def _close_connection(self, connection: DBAPIConnection, *,
                          terminate: bool = False) -> None:
        if connection is not self._shared:
            super()._close_connection(connection, terminate=terminate)
            return
        # Closing it would drop the database: end what the invalidated checkout left open.
        with contextlib.suppress(Exception):
            connection.rollback()

    def dispose(self) -> None:
        shared, self._shared = self._shared, None
        if shared is not None:
            super()._close_connection(shared)

    def recreate(self) -> SharedConnectionPool:
        """A new pool on the same connection, so ``Engine.dispose(close=False)`` (as a forked
        child runs) keeps the database, with a new lock when the database is private."""
        return self.__class__(
            self._creator, shared_name=self._name, shared_wait=self._wait,
            shared_connection=self._shared, recycle=self._recycle, echo=self.echo,
            reset_on_return=self._reset_on_return, pre_ping=self._pre_ping,
            logging_name=self._orig_logging_name, _dispatch=self.dispatch,
            dialect=self._dialect)

    def status(self) -> str:
        return "SharedConnectionPool"


_pools: weakref.WeakSet[SharedConnectionPool] = weakref.WeakSet()
_held_at_fork: list[threading.RLock] = []
FORK_WAIT_S = 5.0
"""Seconds a fork waits for another thread to finish its statement on a shared connection."""


def _quiesce_before_fork() -> None:
    """Take every shared connection's lock, so no thread is inside the connection when the
    process forks: a child's copy of a connection caught mid-statement would hang."""
    for pool in list(_pools):
        if pool._lock.acquire(timeout=FORK_WAIT_S):
            _held_at_fork.append(pool._lock)


def _resume_in_parent() -> None:
    while _held_at_fork:
        _held_at_fork.pop().release()


def _reset_in_child() -> None:
    """A forked child starts with every lock free: the threads that held them are gone."""
    _held_at_fork.clear()
    for name in list(_NAMED_LOCKS):
        _NAMED_LOCKS[name] = threading.RLock()
    for pool in list(_pools):
        pool._lock = lock_for(pool._name)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_quiesce_before_fork, after_in_parent=_resume_in_parent,
                        after_in_child=_reset_in_child)
