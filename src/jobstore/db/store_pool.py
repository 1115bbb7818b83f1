"""The pool of a store's server or SQLite-file engine: one connection unless threads contend.

A service process runs one store on two threads at least: the callers' (the hot path, which
keeps one connection checked out between calls, `jobstore.db.direct`) and the background
loop's. A plain `QueuePool` gives the loop a second connection and keeps it, so every idle
process held two and 90 processes did not fit a ``max_connections = 100`` server. `StorePool`
holds one:

- a checkout that finds no idle connection first borrows back the one a *lender* keeps (the
  hot path's, when no call of it runs: the lender gives it back to the pool) and then waits up
  to ``patience`` (50 ms) for a connection another thread returns, before it opens another
  (a returned connection goes to the waiting checkouts first, oldest first: a thread that
  returns one and checks out again at once, as the loop does statement after statement, waits
  its turn rather than taking it back before the waiting one has woken up);
  so the loop and the hot path take turns on one connection, and only threads that hold
  connections for longer than that (real contention, or a frozen server) make the pool grow;
- the pool grows to ``pool_size + max_overflow`` (1 + 7 by default) while its threads contend,
  and shrinks back once they stop: a connection returned while the pool holds more than
  ``pool_size`` is closed rather than kept idle, unless a checkout found none within its
  patience in the last ``linger`` seconds (2 s) or one waits now. A store's loop checks out
  once a round at least, so an idle process is back to one connection a round after that;
- its checkout timeout is a database error like any other (`OperationalError`, not
  SQLAlchemy's ``TimeoutError``), so jobstore handles an exhausted pool as an outage: queued
  in the dict-first stages, `StoreUnavailableError` where the database is the authority;
- it never hands out a connection opened in another process: a forked child's store replaces
  the pool (``engine.dispose(close=False)``), and should a pool be used across a fork anyway,
  it forgets every connection of the parent's (kept referenced, never closed: closing would end
  the parent's session) and lends nothing of it.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import deque
from contextvars import ContextVar
from time import monotonic
from typing import Any, Protocol

from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.pool import ConnectionPoolEntry, QueuePool

PATIENCE_S = 0.05
"""Seconds a checkout waits for a connection of its own process before the pool grows."""
LINGER_S = 2.0
"""Seconds without contention after which connections beyond ``pool_size`` are closed."""

_PID = "jobstore_pid"
"""The key of a connection's record info naming the process that opened it."""

_ABANDONED: list[Any] = []
"""Connections a parent process opened, referenced in a forked child so that it never closes
them (closing would end the parent's session on a server)."""

_lending: ContextVar[bool] = ContextVar("jobstore_pool_lending", default=False)
"""True while a lender opens its kept connection: it holds its own lock then, so borrowing
from a lender must not wait (it would wait for itself, or for a lender waiting for it)."""


class Lender(Protocol):
    """Whoever keeps a connection of the pool checked out between its calls."""

    def give_back(self, wait: float) -> bool:
        """Return the kept connection to the pool if no call of the lender uses it within
        ``wait`` seconds (0: only if none does now); whether it was returned."""
        ...


class _Waiter:
    """A checkout waiting for a returned connection."""

    __slots__ = ("event", "record")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.record: ConnectionPoolEntry | None = None


class StorePool(QueuePool):
    """A `QueuePool` of one connection shared by a store's threads (see the module docstring)."""

    _sqla_logger_namespace = "sqlalchemy.pool.impl.QueuePool"
    """SQLAlchemy names a pool's logger after its class: this one logs as SQLAlchemy's own
    pools do, not under the ``jobstore`` logger the library's records use."""

    def __init__(self, creator: Any, pool_size: int = 1, max_overflow: int = 7, *,
                 patience: float = PATIENCE_S, linger: float = LINGER_S, **kwargs: Any) -> None:
        super().__init__(creator, pool_size=pool_size, max_overflow=max_overflow, **kwargs)
        # Room for every connection, most recently returned first: extras wait in the queue
        # until the linger has passed rather than being closed at their first return.
        self._size = pool_size
        self._pool = self._queue_class(pool_size + max_overflow, use_lifo=True)
        self._patience = patience
        self._linger = linger
        self._contended_at = float("-inf")
        self._pid = os.getpid()
        self._lenders: weakref.WeakSet[Any] = weakref.WeakSet()
        self._waiters: deque[_Waiter] = deque()
        self._waiting_lock = threading.Lock()
        self._giving_back = threading.local()

    def lend(self, lender: Lender) -> None:
        """Let checkouts borrow ``lender``'s kept connection when the pool has none idle."""
        self._lenders.add(lender)

    def size(self) -> int:
        return self._size

    def checkedout(self) -> int:
        return self._size - self._pool.qsize() + self._overflow

    def recreate(self) -> StorePool:
        self.logger.info("Pool recreating")
        return self.__class__(
            self._creator, pool_size=self._size, max_overflow=self._max_overflow,
            patience=self._patience, linger=self._linger, pre_ping=self._pre_ping,
            timeout=self._timeout, recycle=self._recycle, echo=self.echo,
            logging_name=self._orig_logging_name, reset_on_return=self._reset_on_return,
            _dispatch=self.dispatch, dialect=self._dialect)

    def _create_connection(self) -> ConnectionPoolEntry:
        record = super()._create_connection()
        record.record_info[_PID] = os.getpid()  # type: ignore[index]
        return record

    def _do_get(self) -> ConnectionPoolEntry:
        if self._pid != os.getpid():
            self._forget_parent()
        if self._pool.empty() and self._overflow >= 0:  # none idle, none to open within size
            self._borrow()
        if self._pool.empty() and self._overflow >= 0:
            record = self._wait_for_return()
            if record is not None:
                return record
            self._contended_at = monotonic()  # the pool grows, or waits at its limit
        try:
            return super()._do_get()
        except PoolTimeoutError as exc:
            raise OperationalError("(pool checkout)", None, exc) from exc

    def _do_return_conn(self, record: ConnectionPoolEntry) -> None:
        if record.record_info.get(_PID) != os.getpid():  # type: ignore[union-attr]
            _ABANDONED.append(record)
            return
        with self._waiting_lock:
            if self._waiters:  # first come, first served: the returning thread may not jump
                waiter = self._waiters.popleft()
                waiter.record = record
                waiter.event.set()
                return
        if self._overflow > 0 and self._quiet() \
                and not getattr(self._giving_back, "active", False):
            try:
                record.close()
            finally:
                self._dec_overflow()
            return
        super()._do_return_conn(record)

    def _wait_for_return(self) -> ConnectionPoolEntry | None:
        """A connection another thread returns within ``patience``, handed over in the order
        the waits began; None after the patience."""
        waiter = _Waiter()
        with self._waiting_lock:
            self._waiters.append(waiter)
        waiter.event.wait(self._patience)
        with self._waiting_lock:
            if waiter.record is None:
                self._waiters.remove(waiter)
        return waiter.record

    def _quiet(self) -> bool:
        """Whether no checkout has outwaited its patience for ``linger`` seconds."""
        return monotonic() - self._contended_at > self._linger

    def _borrow(self) -> None:
        """Have one lender give its kept connection back into the (empty) pool."""
        wait = 0.0 if _lending.get() else self._patience
        self._giving_back.active = True
        try:
            for lender in list(self._lenders):
                if lender.give_back(wait):
                    return
        finally:
            self._giving_back.active = False

    def _forget_parent(self) -> None:
        """Used in a forked child without being replaced: drop the parent's connections (and
        its locks, which a thread of the parent may have held at the fork)."""
        _ABANDONED.append(self._pool)
        self._pool = self._queue_class(self._pool.maxsize, use_lifo=True)
        self._overflow = 0 - self.size()
        self._overflow_lock = threading.Lock()
        self._lenders = weakref.WeakSet()
        self._waiters = deque()
        self._waiting_lock = threading.Lock()
        self._giving_back = threading.local()
        self._pid = os.getpid()


def lending() -> Any:
    """Mark the calling context as a lender opening its kept connection (see `_lending`)."""
    return _Lending()


class _Lending:
    __slots__ = ("_token",)

    def __enter__(self) -> None:
        self._token = _lending.set(True)

    def __exit__(self, *exc_info: object) -> None:
        _lending.reset(self._token)
