"""Which database errors refuse a write for its data, and which say the database is unavailable.

A refused write (a constraint, a trigger's ``RAISE``/``SIGNAL``, a value too long or too big)
fails again however often it is sent, so it is told apart from an unavailable or busy database
(connection lost, locked, disk full, read-only, timed out, deadlocked), which a later attempt
may get through. The drivers' own codes decide, not the message text:

- MariaDB/MySQL (PyMySQL, mysqlclient): the error number, ``exc.orig.args[0]`` (PyMySQL gives
  a SQLSTATE too, but MySQL's are coarse: a packet too large is 08S01, a connection error);
- PostgreSQL (psycopg): the SQLSTATE's class, ``exc.orig.sqlstate[:2]``;
- SQLite: the primary result code, ``exc.orig.sqlite_errorcode & 0xff`` (Python 3.11+);
- any driver, and the cases above without a code (psycopg refuses a NUL character before
  sending): the DBAPI's own classes for data errors, ``IntegrityError`` and ``DataError``.

A duplicate key is a constraint violation too. The store's writes are upserts, so one only
comes from a unique index of the application's; `jobstore.db.conflicts.lost_race` sees it
first where a read-modify-write can race another process's insert.

MariaDB answers a statement far over ``max_allowed_packet`` by resetting the connection (error
2006, "server has gone away"), which no code tells from an outage: `jobstore.db.limits` checks
the size before such a statement is sent.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import DataError, DBAPIError, IntegrityError

from ..exceptions import JobStoreError, StoreUnavailableError, WriteRefusedError
from .redact import reason

REFUSED_SQLSTATE_CLASSES = {
    "22": "data exception (value too long, out of range, invalid text)",
    "23": "integrity constraint violation (not null, unique, check, foreign key)",
    "27": "triggered data change violation",
    "44": "WITH CHECK OPTION violation",
    "45": "unhandled user-defined exception (RAISE ... USING ERRCODE = '45000')",
    "54": "program limit exceeded (index row too large)",
    "P0": "PL/pgSQL error: a trigger's RAISE EXCEPTION (P0001)",
}
"""PostgreSQL SQLSTATE classes that refuse the data. Everything else is taken as unavailable:
08 connection, 25 read-only transaction, 40 deadlock or serialization, 53 disk full or out of
memory, 55 lock not available, 57 statement timeout or shutdown, 58 I/O, XX internal."""
REFUSED_MYSQL_CODES = {
    1048: "column cannot be null",
    1062: "duplicate entry",
    1118: "row size too large",
    1153: "packet bigger than max_allowed_packet",
    1264: "value out of range",
    1265: "data truncated",
    1292: "incorrect value",
    1301: "result larger than max_allowed_packet",
    1366: "incorrect string value",
    1406: "data too long for column",
    1451: "a foreign key refuses the delete",
    1452: "a foreign key refuses the row",
    1586: "duplicate entry for a unique key",
    1643: "a trigger's SIGNAL of a not-found condition",
    1644: "a trigger's SIGNAL (SQLSTATE '45000')",
    3140: "invalid JSON text (MySQL)",
    3819: "check constraint violated (MySQL)",
    4025: "CONSTRAINT failed (MariaDB)",
}
"""MariaDB/MySQL error numbers that refuse the data. Everything else is taken as unavailable:
2003 cannot connect, 2006 gone away, 2013 lost connection, 1040 too many connections, 1205
lock wait timeout, 1213 deadlock, 1021 disk full, 1114 table full, 1290 and 1792 read-only,
1969 max_statement_time exceeded."""
REFUSED_SQLITE_CODES = {
    18: "SQLITE_TOOBIG: string or blob too big",
    19: "SQLITE_CONSTRAINT: a trigger's RAISE, NOT NULL, CHECK, UNIQUE",
    20: "SQLITE_MISMATCH: datatype mismatch",
}
"""SQLite primary result codes that refuse the data. Everything else is taken as unavailable:
5 SQLITE_BUSY, 6 SQLITE_LOCKED, 8 SQLITE_READONLY, 10 SQLITE_IOERR, 11 SQLITE_CORRUPT,
13 SQLITE_FULL, 14 SQLITE_CANTOPEN, 26 SQLITE_NOTADB, 1 SQLITE_ERROR (no such table)."""


def refuses_value(exc: DBAPIError) -> bool:
    """Whether the database refused this statement for the data it carries (True), rather
    than being unavailable or busy (False: the same write may go through later)."""
    if isinstance(exc, (IntegrityError, DataError)):
        return True
    orig: Any = exc.orig
    args: tuple[Any, ...] = getattr(orig, "args", ())
    if args and isinstance(args[0], int):
        return args[0] in REFUSED_MYSQL_CODES
    sqlstate = getattr(orig, "sqlstate", None)
    if isinstance(sqlstate, str):
        return sqlstate[:2] in REFUSED_SQLSTATE_CLASSES
    code = getattr(orig, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in REFUSED_SQLITE_CODES


_FAILURES: dict[bool, tuple[type[JobStoreError], str]] = {
    True: (WriteRefusedError, "the database refused to {doing}: {reason}"),
    False: (StoreUnavailableError, "cannot {doing}: {reason}"),
}
"""The caller's error for a write the database did not take, by `refuses_value`."""


def write_error(exc: DBAPIError, doing: str) -> JobStoreError:
    """The error a caller gets where the database is the authority and did not take a write:
    `WriteRefusedError` when it refused the data, else `StoreUnavailableError`; ``doing`` says
    what failed (``"write 'abc'"``), and the message ends with the database's one-line
    reason."""
    kind, message = _FAILURES[refuses_value(exc)]
    return kind(message.format(doing=doing, reason=reason(exc)))
