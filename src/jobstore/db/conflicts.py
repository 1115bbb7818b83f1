"""Which database errors mean "another transaction got there first, try again".

A read-modify-write that loses such a race was rolled back whole, so running it again is safe;
every other error is the caller's (the database is down, the statement is wrong, the database
refused the data: `jobstore.db.refusal`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import DBAPIError, IntegrityError

MODIFY_ATTEMPTS = 50
"""Times a read-modify-write is tried while it keeps losing races, before the last conflict is
raised."""
RETRY_SQLSTATES = frozenset({"40001", "40P01", "23505"})
"""PostgreSQL: serialization failure, deadlock detected, unique violation."""
RETRY_MYSQL_CODES = frozenset({1020, 1213, 1062, 1586})
"""MariaDB/MySQL: record changed since last read (snapshot isolation), deadlock, duplicate
entry (twice: without and with the key's name)."""
RETRY_SQLITE_CODES = frozenset({1555, 2067})
"""SQLite extended result codes: SQLITE_CONSTRAINT_PRIMARYKEY, SQLITE_CONSTRAINT_UNIQUE."""


def lost_race(exc: DBAPIError) -> bool:
    """Whether ``exc`` is a conflict with a concurrent transaction rather than a failure.

    A duplicate key counts: two processes that both found no row and both inserted one. Other
    constraint violations (a trigger's refusal, NOT NULL, CHECK) do not: they would fail again.
    A driver that gives no error code is taken at its class: any integrity error is a race.
    """
    orig: Any = exc.orig
    args: tuple[Any, ...] = getattr(orig, "args", ())
    if args and isinstance(args[0], int):  # MySQL drivers; PyMySQL's sqlstate is coarser
        return args[0] in RETRY_MYSQL_CODES
    sqlstate = getattr(orig, "sqlstate", None)
    if isinstance(sqlstate, str):
        return sqlstate in RETRY_SQLSTATES
    code = getattr(orig, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code in RETRY_SQLITE_CODES
    return isinstance(exc, IntegrityError)
