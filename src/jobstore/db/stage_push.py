"""Stage changes pushed on PostgreSQL: ``NOTIFY`` when the control row changes, ``LISTEN`` on
the store's own connections.

A change of stage is announced in the transaction that makes it (`announce`), so it is heard
only once it is committed. A store connected directly listens on every connection its engine
opens; it needs no connection of its own for that, so a process still holds one. Its loop,
between rounds, looks every `CHECK_EVERY_S` for a notification that a connection received
(read while idle, or kept by psycopg while a call ran on it) and runs a round at once when
one names its table: the change is followed within about that, not within a
``sync_interval``.

``LISTEN`` belongs to a server session: through PgBouncer in transaction mode the session
changes with each transaction and the notification would be lost without an error. There,
and on SQLite and MariaDB, a store finds a change at its next round, which reads the control
row every ``sync_interval`` (a primary-key read: 200 processes at 0.5 s make 400 a second).
"""

from __future__ import annotations

import os
import threading
import weakref
from time import monotonic
from typing import Any

from sqlalchemy import Connection, Engine, event, text

from .pgbouncer import through_pgbouncer

CHANNEL = "jobstore_stage"
"""The channel every table's stage changes are announced on; the payload names the table."""
CHECK_EVERY_S = 0.1
"""Seconds between two looks for a notification while a loop waits for its next round."""


def announce(conn: Connection, table: str) -> None:
    """Tell every listening store that ``table``'s stage changed (on PostgreSQL; elsewhere
    the stores' rounds find it)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_notify(:channel, :table)"),
                     {"channel": CHANNEL, "table": table})


def listens(engine: Engine) -> bool:
    """Whether ``engine``'s connections can hold a ``LISTEN``: PostgreSQL through psycopg,
    reached directly rather than through PgBouncer."""
    return (engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg"
            and not through_pgbouncer(engine))


class StagePush:
    """The notifications of one store's engine: its connections ``LISTEN`` from when they
    are opened, and `wait` ends early when one names the store's table."""

    def __init__(self, engine: Engine, table: str) -> None:
        import psycopg  # present whenever `listens` is true

        self._broken = psycopg.Error
        self._table = table
        self._engine = engine
        self._connections: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
        """Each listening DBAPI connection, with the process that opened it."""
        event.listen(engine, "connect", self._listen)

    @staticmethod
    def for_engine(engine: Engine, table: str) -> StagePush | None:
        return StagePush(engine, table) if listens(engine) else None

    def close(self) -> None:
        """Listen on no connection opened from now (an engine the caller passed outlives
        the store)."""
        if event.contains(self._engine, "connect", self._listen):
            event.remove(self._engine, "connect", self._listen)

    def _listen(self, dbapi_connection: Any, _record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f"LISTEN {CHANNEL}")
        dbapi_connection.commit()  # a LISTEN in a transaction starts at its commit
        self._connections[dbapi_connection] = os.getpid()

    def wait(self, stop: threading.Event, timeout: float) -> bool:
        """Wait ``timeout`` seconds: True as soon as ``stop`` is set, False when the time is
        up or this table's stage change was heard."""
        deadline = monotonic() + timeout
        while True:
            remaining = deadline - monotonic()
            if remaining <= 0:
                return False
            if stop.wait(min(CHECK_EVERY_S, remaining)):
                return True
            if self.heard():
                return False

    def heard(self) -> bool:
        """Whether a connection of this process received a change of this table's stage
        since the last look. A connection a call holds now is looked at next time; what it
        reads meanwhile psycopg keeps for then."""
        heard = False
        for connection, pid in list(self._connections.items()):
            if pid != os.getpid() or connection.closed or connection.lock.locked():
                continue
            try:
                heard |= any(n.payload == self._table for n in connection.notifies(timeout=0))
            except self._broken:  # a broken connection: the pool's pre-ping replaces it
                continue
        return heard
