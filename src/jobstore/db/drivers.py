"""Driver connections whose waits for the server are bounded by the client.

A server that is alive to TCP but answers nothing (stopped with SIGSTOP, swapping, wedged)
holds a caller until the client gives up: the kernel completes the TCP handshake and answers
keepalives, and the server's own statement timeout never fires. So jobstore's engines open
their connections through the classes here, which bound every wait on the client side:

- psycopg: each wait for a reply by the engine's reply bound (then the connection is closed),
  and, inside a quick attempt (`jobstore.db.attempts`), each connection by ``quick_timeout``
  too: psycopg counts its own ``connect_timeout`` in whole seconds, 2 at least, so the
  connection's steps are cut off here instead, to a tenth of a second;
- PyMySQL: ``read_timeout``/``write_timeout`` on the socket; while a connection is opened its
  reads (the server's greeting, the login) are bounded by ``connect_timeout`` too, which PyMySQL
  itself applies to the TCP handshake only (a frozen server completes that and then says
  nothing: 20 s, the read timeout, without this); inside a quick attempt all of them by
  ``quick_timeout``.

Once a wait of a quick attempt has timed out, its later statements are refused before they are
sent, and its later connections before they are opened.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Generator
from contextvars import ContextVar
from time import monotonic
from typing import Any

from sqlalchemy import Engine, event

from .attempts import current

NOT_SENT = "not sent: an earlier wait of this quick attempt timed out"

_connect_within: ContextVar[float | None] = ContextVar("jobstore_connect_within", default=None)
"""Seconds the connection being opened may take (psycopg), inside a quick attempt."""


def bound_psycopg(engine: Engine, reply_timeout: float, quick_timeout: float) -> None:
    """Open ``engine``'s psycopg connections through `_bounded_psycopg_class` (when this
    psycopg can bound its waits: 3.2 or later)."""
    connection_class = _bounded_psycopg_class()
    if connection_class is None:
        return
    import psycopg

    @event.listens_for(engine, "do_connect")
    def _connect(_dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        attempt = current()
        if attempt is not None and attempt.stalled:
            raise psycopg.OperationalError(NOT_SENT)
        token = _connect_within.set(quick_timeout if attempt is not None else None)
        try:
            connection = connection_class.connect(*cargs, **cparams)
        except psycopg.errors.ConnectionTimeout:
            if attempt is not None:
                attempt.stalled = True
            raise
        finally:
            _connect_within.reset(token)
        connection.jobstore_reply_timeout = reply_timeout
        connection.jobstore_quick_timeout = quick_timeout
        return connection


@functools.cache
def _bounded_psycopg_class() -> Any:
    """A ``psycopg.Connection`` whose waits for the server are bounded, or None when this
    psycopg cannot bound them (``Connection.wait`` without ``timeout``: psycopg < 3.2)."""
    import psycopg

    if "timeout" not in inspect.signature(psycopg.Connection.wait).parameters:
        return None
    bounds_connect = callable(getattr(psycopg.Connection, "_connect_gen", None))

    class BoundedConnection(psycopg.Connection):
        jobstore_reply_timeout: float | None = None
        jobstore_quick_timeout: float | None = None

        if bounds_connect:
            @classmethod
            def _connect_gen(cls, *args: Any, **kwargs: Any) -> Any:
                steps = super()._connect_gen(*args, **kwargs)
                within = _connect_within.get()
                return steps if within is None else _connect_within_s(steps, within)

        def wait(self, gen: Any, *args: Any, **kwargs: Any) -> Any:
            bound = self.jobstore_reply_timeout
            if bound is None or len(args) > 1 or kwargs.get("timeout") is not None:
                return super().wait(gen, *args, **kwargs)
            attempt = current()
            if attempt is not None:
                if attempt.stalled:
                    gen.close()
                    raise psycopg.OperationalError(NOT_SENT)
                bound = min(bound, self.jobstore_quick_timeout or bound)
            kwargs["timeout"] = bound
            try:
                return super().wait(gen, *args, **kwargs)
            except psycopg.OperationalError as exc:
                # psycopg raises its private _WaitTimeout (an OperationalError) when the
                # bound passes; the connection is then mid-statement and cannot be reused.
                if type(exc).__name__ != "_WaitTimeout":
                    raise
                if attempt is not None:
                    attempt.stalled = True
                self.pgconn.finish()
                raise psycopg.OperationalError(
                    f"no reply from the server within {bound:g} s; connection closed"
                ) from None

    return BoundedConnection


def _connect_within_s(steps: Generator[Any, Any, Any], within: float) -> Any:
    """psycopg's connection steps, given up once ``within`` seconds have passed: psycopg
    resumes them at least every tenth of a second while it waits for the socket."""
    import psycopg

    deadline = monotonic() + within
    try:
        ready = yield next(steps)
        while True:
            if monotonic() >= deadline:
                steps.close()
                raise psycopg.errors.ConnectionTimeout(
                    f"no answer to the connection within {within:g} s")
            ready = yield steps.send(ready)
    except StopIteration as done:
        return done.value


def bound_pymysql(engine: Engine, quick_timeout: float) -> None:
    """Open ``engine``'s PyMySQL connections through `_bounded_pymysql_class`."""
    connection_class = _bounded_pymysql_class()

    @event.listens_for(engine, "do_connect")
    def _connect(_dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        connection_class.refuse_if_stalled()  # before PyMySQL builds its SSL context
        connection = connection_class(*cargs, **{**cparams, "defer_connect": True})
        connection.jobstore_quick_timeout = quick_timeout
        connection.connect()
        return connection


@functools.cache
def _bounded_pymysql_class() -> Any:
    """A ``pymysql.Connection`` whose reads while connecting wait ``connect_timeout`` at most,
    whose socket timeouts drop to ``quick_timeout`` inside a quick attempt, and that refuses
    to send once a read of the attempt has timed out."""
    import pymysql
    from pymysql.constants import CR

    class BoundedConnection(pymysql.connections.Connection):  # type: ignore[misc]
        jobstore_quick_timeout: float | None = None
        _jobstore_connecting = False
        _jobstore_timeouts: dict[str, float | None]

        @staticmethod
        def refuse_if_stalled() -> None:
            attempt = current()
            if attempt is not None and attempt.stalled:
                raise pymysql.err.OperationalError(CR.CR_CONN_HOST_ERROR, NOT_SENT)

        def _bounded(self, name: str) -> float | None:
            timeouts = self._jobstore_timeouts
            bound = timeouts.get(name)
            if self._jobstore_connecting:  # the server's greeting is a read: connect_timeout
                bound = _least(bound, timeouts.get("connect_timeout"))
            if self.jobstore_quick_timeout is not None and current() is not None:
                bound = _least(bound, self.jobstore_quick_timeout)
            return bound

        def __setattr__(self, name: str, value: Any) -> None:
            if name in _PYMYSQL_TIMEOUTS:
                self.__dict__.setdefault("_jobstore_timeouts", {})[name] = value
            else:
                super().__setattr__(name, value)

        @property
        def connect_timeout(self) -> float | None:
            return self._bounded("connect_timeout")

        @property
        def _read_timeout(self) -> float | None:
            return self._bounded("_read_timeout")

        @property
        def _write_timeout(self) -> float | None:
            return self._bounded("_write_timeout")

        def connect(self, sock: Any = None) -> None:
            self.refuse_if_stalled()
            self._jobstore_connecting = True
            try:
                super().connect(sock)
            finally:
                self._jobstore_connecting = False

        def _execute_command(self, command: int, sql: Any) -> None:
            self.refuse_if_stalled()
            super()._execute_command(command, sql)

        def _read_bytes(self, num_bytes: int) -> Any:
            try:
                return super()._read_bytes(num_bytes)
            except pymysql.err.OperationalError as exc:
                attempt = current()
                if attempt is not None and isinstance(exc.__context__, TimeoutError):
                    attempt.stalled = True
                raise

    return BoundedConnection


_PYMYSQL_TIMEOUTS = frozenset({"connect_timeout", "_read_timeout", "_write_timeout"})


def _least(bound: float | None, other: float | None) -> float | None:
    """The shorter of two socket timeouts, where None is no timeout at all."""
    if bound is None:
        return other
    return bound if other is None else min(bound, other)
