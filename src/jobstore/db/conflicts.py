"""Which database errors mean "another transaction got there first, try again".

A read-modify-write that loses such a race was rolled back whole, so running it again is safe;
every other error is the caller's (the database is down, the statement is wrong).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import DBAPIError, IntegrityError

MODIFY_ATTEMPTS = 50
"""Times a read-modify-write is tried while it keeps losing races, before the last conflict is
raised."""
RETRY_SQLSTATES = frozenset({"40001", "40P01"})
"""PostgreSQL: serialization failure, deadlock detected."""
RETRY_MYSQL_CODES = frozenset({1020, 1213})
"""MariaDB/MySQL: record changed since last read (snapshot isolation), deadlock."""


def lost_race(exc: DBAPIError) -> bool:
    """Whether ``exc`` is a conflict with a concurrent transaction rather than a failure.

    A duplicate key counts: two processes that both found no row and both inserted one.
    """
    if isinstance(exc, IntegrityError):
        return True
    orig = exc.orig
    if getattr(orig, "sqlstate", None) in RETRY_SQLSTATES:
        return True
    args: tuple[Any, ...] = getattr(orig, "args", ())
    return bool(args) and args[0] in RETRY_MYSQL_CODES
