"""The largest value one write can carry on a database, checked before the write is sent.

A value over the limit is refused by the database as a whole statement, and MariaDB/MySQL often
answer a statement over ``max_allowed_packet`` by closing the connection ("server has gone
away"), which reads as an outage. So the store compares each payload with the limit first and
raises `ValueTooLargeError` naming the key, before anything is written. The limits:

- MariaDB/MySQL: the statement must fit in ``@@max_allowed_packet`` (a statement of
  ``max_allowed_packet - 2`` bytes is the largest one MariaDB 10.11 takes). The payload is
  sent escaped (PyMySQL and mysqlclient write ``\\"`` for ``"``, so a JSON document of quotes
  counts double) inside the upsert, whose other text and values take at most `STATEMENT_ROOM`.
  The history event holds the payload again, in a statement of its own. The server's value is
  read once per store, at the first payload big enough to need it.
- PostgreSQL: 1 GiB less one byte, for a field and for the protocol message that carries the
  upsert (the payload is in it once: the history event takes it from the upsert's result).
- SQLite: ``SQLITE_LIMIT_LENGTH`` of the connection (10⁹ bytes unless the build or the
  application lowered it) for a string and for the row that holds it; read once per store, as
  on MariaDB (before Python 3.11, whose ``sqlite3`` cannot read it, the default is assumed).

A payload that fits in `ALWAYS_FITS` bytes whatever its characters is not measured: the check
costs one comparison then.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from ..exceptions import ValueTooLargeError

STATEMENT_ROOM = 8192
"""Bytes of a write other than its payload, at most: the upsert's text with a 48-character
table name (881 bytes on MariaDB), the key twice and the status escaped (255 and 64 characters
of four bytes each), the times and the writer. ``tests/test_value_limit.py`` writes a payload
of exactly the limit with such a key and status on MariaDB and SQLite."""
ALWAYS_FITS = 1 << 20
"""A payload whose largest possible encoding (four bytes a character, escapes included) and
`STATEMENT_ROOM` fit in this many bytes is taken without asking the database its limit: the
default ``max_allowed_packet`` is 1 MiB or more in every MySQL and MariaDB release in use, and
SQLite's and PostgreSQL's limits are a thousand times that. A server set lower refuses the statement
itself (`jobstore.db.refusal`)."""
MEASURED_FROM = (ALWAYS_FITS - STATEMENT_ROOM) // 4
"""Characters from which a payload is measured (the hot path's one comparison)."""
POSTGRESQL_MOST = (1 << 30) - 1
SQLITE_DEFAULT_MOST = 1_000_000_000
RETRY_READ_S = 5.0
"""After the limit could not be read (the database is down), seconds before it is tried again;
meanwhile payloads go unchecked, and the database refuses those over its limit itself."""
_SQLITE_LIMIT_LENGTH: int = getattr(sqlite3, "SQLITE_LIMIT_LENGTH", 0)  # 3.11+; 0 in SQLite's C API
_MYSQL_ESCAPED = ('"', "\\", "'")
"""Characters of a JSON document that PyMySQL and mysqlclient send as two bytes (they escape
NUL, newline, carriage return and ^Z too, which JSON never writes raw)."""


class PayloadLimit:
    """The limit of one database, and the check of a payload against it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._backend = _BACKENDS.get(engine.dialect.name, _UNKNOWN)
        self.backend, self.setting, most = self._backend.fixed
        self._most: int | None = None if most is None else max(0, most - STATEMENT_ROOM)
        self._next_read = 0.0

    @property
    def most(self) -> int | None:
        """The most bytes a payload may take in one write; None while it is not known."""
        if self._most is None and self._backend.read is not None:
            self._read(self._backend.read)
        return self._most

    def check(self, key: object, payload: str) -> None:
        """Raise `ValueTooLargeError` naming ``key`` when ``payload`` cannot be written in one
        statement; a payload of any size passes while the limit is not known."""
        if len(payload) <= MEASURED_FROM:
            return
        most = self.most
        if most is None:
            return
        size = self._backend.measure(payload, most)
        if size > most:
            raise ValueTooLargeError(key, size, most, self.backend, self.setting)

    def fits(self, payload: str) -> bool:
        """Whether ``payload`` can be written in one statement (True while the limit is not
        known): the check for a write that was queued before the limit could be read."""
        try:
            self.check("", payload)
        except ValueTooLargeError:
            return False
        return True

    def _read(self, read: Callable[[Any], tuple[str, str, int]]) -> None:
        if time.monotonic() < self._next_read:
            return
        try:
            with self.engine.connect() as conn:
                self.backend, self.setting, most = read(conn.connection.dbapi_connection)
        except DBAPIError:
            self._next_read = time.monotonic() + RETRY_READ_S
            return
        self._most = max(0, most - STATEMENT_ROOM)


def _mysql_limit(dbapi: Any) -> tuple[str, str, int]:
    cursor = dbapi.cursor()
    try:
        cursor.execute("SELECT @@max_allowed_packet")
        packet = int(cursor.fetchone()[0])
    finally:
        cursor.close()
    name = "MariaDB" if "mariadb" in str(dbapi.get_server_info()).lower() else "MySQL"
    # The largest statement MariaDB 10.11 takes is two bytes short of the setting (measured:
    # ``SELECT LENGTH('x...')`` of 16,777,214 bytes passes at 16,777,216, one more does not).
    return name, f"max_allowed_packet {packet:,}", packet - 2


def _sqlite_limit(dbapi: Any) -> tuple[str, str, int]:
    getlimit = getattr(dbapi, "getlimit", None)
    most = SQLITE_DEFAULT_MOST if getlimit is None else int(getlimit(_SQLITE_LIMIT_LENGTH))
    return "SQLite", f"SQLITE_LIMIT_LENGTH {most:,}", most


def _utf8_size(payload: str, _most: int = 0) -> int:
    return len(payload) if payload.isascii() else len(payload.encode("utf-8", "surrogatepass"))


def mysql_bytes(payload: str) -> int:
    """The payload's bytes as PyMySQL and mysqlclient send it, escaped."""
    return _utf8_size(payload) + sum(payload.count(char) for char in _MYSQL_ESCAPED)


def _mysql_size(payload: str, most: int) -> int:
    """`mysql_bytes`, but the escapes are counted only when they decide whether the payload
    fits (each costs a pass over the text)."""
    size = _utf8_size(payload)
    return size if size > most else mysql_bytes(payload)


@dataclass(frozen=True)
class _Backend:
    fixed: tuple[str, str, int | None]
    """Its name in messages, the setting the limit comes from, and the limit when it is fixed
    (None: read from the database)."""
    read: Callable[[Any], tuple[str, str, int]] | None
    measure: Callable[[str, int], int]
    """A payload's size as the database gets it (exact when it is at most the limit given)."""


_MYSQL = _Backend(("MySQL/MariaDB", "max_allowed_packet", None), _mysql_limit, _mysql_size)
_BACKENDS = {
    "mysql": _MYSQL,
    "mariadb": _MYSQL,
    "postgresql": _Backend(("PostgreSQL", "1 GiB a field", POSTGRESQL_MOST), None, _utf8_size),
    "sqlite": _Backend(("SQLite", "SQLITE_LIMIT_LENGTH", None), _sqlite_limit, _utf8_size),
}
_UNKNOWN = _Backend(("the database", "", None), None, _utf8_size)
