"""The hot statements of `jobstore.db.direct`, made once per engine: which engines may run
them past SQLAlchemy, each statement compiled for its dialect, how a time is bound, and on
PostgreSQL a write and its history event as one statement."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, cast

from sqlalchemy import Engine, insert, literal_column, select

from .schema import Schema

SUPPORTED = ("sqlite", "postgresql")
_HOOKS = ("before_cursor_execute", "after_cursor_execute", "before_execute", "after_execute")
_DIALECT_HOOKS = ("handle_error", "do_execute", "do_executemany")


def usable(engine: Engine) -> bool:
    """Whether the hot statements may skip SQLAlchemy on this engine: a dialect this module
    speaks, and no listener (tracing, logging, error handling) that expects to see every
    statement go through SQLAlchemy."""
    if engine.dialect.name not in SUPPORTED:
        return False
    hooked = any(bool(getattr(engine.dispatch, name, None)) for name in _HOOKS)
    return not hooked and not any(bool(getattr(engine.dialect.dispatch, name, None))
                                  for name in _DIALECT_HOOKS)
class Compiled:
    """A Core statement compiled once for a dialect: its SQL, and the order of its parameters
    for a positional driver (None for a driver that takes them by name)."""

    __slots__ = ("order", "sql")

    def __init__(self, statement: Any, engine: Engine, keys: list[str] | None = None) -> None:
        compiled = statement.compile(dialect=engine.dialect, column_keys=keys)
        self.sql: str = compiled.string
        self.order: tuple[str, ...] | None = (
            tuple(compiled.positiontup or ()) if compiled.positional else None)


def timestamp_for(engine: Engine, schema: Schema) -> Callable[[datetime], Any]:
    """How a UTC `datetime` is bound for the timestamp columns, as Core would bind it.

    On SQLite that is text, ``YYYY-MM-DD HH:MM:SS.ffffff``; ``isoformat`` writes the same text
    several times faster than SQLAlchemy's formatter, and is used when the two agree."""
    processor = schema.jobs.c.updated_at.type.dialect_impl(engine.dialect).bind_processor(
        engine.dialect)
    if processor is None:
        return _unchanged
    sample = datetime(2024, 2, 29, 23, 59, 7, 120, tzinfo=timezone.utc)
    if processor(sample) == _sqlite_text(sample):
        return _sqlite_text
    return cast(Callable[[datetime], Any], processor)


def _unchanged(value: datetime) -> datetime:
    return value


def _sqlite_text(value: datetime) -> str:
    return value.isoformat(" ", "microseconds")[:26]


def recorded(write: Any, schema: Schema, name: str) -> Any:
    """PostgreSQL: ``write`` (an upsert or a compare-and-set on the job table) and its history
    event in one statement, returning the new version (no row when ``write`` wrote none)."""
    jobs, events = schema.jobs, schema.events
    written = write.returning(jobs.c.key, jobs.c.version, jobs.c.payload, jobs.c.status,
                              jobs.c.updated_at, jobs.c.written_by).cte(name)
    return insert(events).from_select(
        ["key", "version", "op", "payload", "status", "at", "written_by"],
        select(written.c.key, written.c.version, literal_column("'set'"), written.c.payload,
               written.c.status, written.c.updated_at, written.c.written_by),
    ).returning(events.c.version)
