"""A heartbeat: what one running store reports about itself every round, as it is written
(its error cut short) and as it is read back (column by column, each unreadable field named
and replaced by a fallback, since anyone can ``UPDATE`` the row)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from functools import partial
from typing import Any

from . import row_values as rv

RECENT_WINDOW_S = 300.0
"""The window of a heartbeat's ``recent_shadow_*`` counts: the last five minutes."""
TIME_COLUMNS = frozenset({"started_at", "heartbeat_at", "last_error_at"})
"""The columns read without SQLAlchemy's conversion of times (`ControlPlane.instances`)."""


@dataclass(frozen=True)
class Heartbeat:
    """What one running store reports about itself every round of its loop."""

    instance_id: str
    host: str
    pid: int
    stage: str
    pinned: str | None
    started_at: datetime
    heartbeat_at: datetime
    sync_interval: float
    memory_items: int
    tracked_items: int
    queued_writes: int
    failed_writes: int
    shadow_mismatches: int
    """Shadow and compared reads that disagreed since this stage began (the release before
    schema 3 counted since the store opened)..."""
    shadow_checks: int
    """...out of this many compared reads."""
    recent_shadow_checks: int
    recent_shadow_mismatches: int
    """The same over the last `RECENT_WINDOW_S` seconds, whatever the stage."""
    last_error: str | None
    """The newest error whose condition has not cleared, cut to `MAX_ERROR_CHARS`."""
    last_error_at: datetime | None

    def as_row(self, job_table: str) -> dict[str, Any]:
        row = {f.name: getattr(self, f.name) for f in fields(Heartbeat)}
        row["job_table"] = job_table
        row["sync_interval"] = repr(self.sync_interval)
        if self.last_error is not None:
            row["last_error"] = rv.cut(self.last_error, rv.MAX_ERROR_CHARS)
        return row

    @staticmethod
    def from_row(row: Mapping[Any, Any]) -> Heartbeat:
        """A heartbeat read back: times in UTC, the interval (stored as text) a number."""
        return Heartbeat.read(row)[0]

    @staticmethod
    def read(row: Mapping[Any, Any]) -> tuple[Heartbeat, tuple[str, ...]]:
        """A heartbeat row read back, and what in it is malformed: such a field reads as its
        fallback (a count 0, the interval 1 s, a time long ago), texts are cut short."""
        values: dict[str, Any] = {}
        problems: list[str] = []
        for name, (read, fallback) in _HEARTBEAT_FIELDS.items():
            raw = row.get(name)
            if raw is None and name in _NULL_READS_AS:
                values[name] = _NULL_READS_AS[name]
                continue
            try:
                values[name] = read(raw)
            except ValueError as exc:
                values[name] = fallback
                problems.append(f"{name} {exc}")
        return Heartbeat(**values), tuple(problems)


_Reader = Callable[[Any], Any]
_HEARTBEAT_FIELDS: dict[str, tuple[_Reader, Any]] = {
    "instance_id": (partial(rv.text, limit=64), "?"),
    "host": (partial(rv.text, limit=255), "?"),
    "pid": (rv.count, 0),
    "stage": (partial(rv.text, limit=16), "?"),
    "pinned": (partial(rv.text, limit=16), None),
    "started_at": (rv.moment, rv.EPOCH),
    "heartbeat_at": (rv.moment, rv.EPOCH),
    "sync_interval": (rv.interval, 1.0),
    "memory_items": (rv.count, 0),
    "tracked_items": (rv.count, 0),
    "queued_writes": (rv.count, 0),
    "failed_writes": (rv.count, 0),
    "shadow_mismatches": (rv.count, 0),
    "shadow_checks": (rv.count, 0),
    "recent_shadow_checks": (rv.count, 0),
    "recent_shadow_mismatches": (rv.count, 0),
    "last_error": (partial(rv.text, limit=rv.MAX_ERROR_CHARS), None),
    "last_error_at": (rv.moment, None),
}
"""Each heartbeat column: how it is read, and what a malformed value reads as."""
_NULL_READS_AS: dict[str, Any] = {
    "pinned": None, "last_error": None, "last_error_at": None,
    "shadow_checks": 0, "recent_shadow_checks": 0, "recent_shadow_mismatches": 0,
}
"""The columns that may be NULL, and what NULL reads as (the columns of layout 3 are NULL in
the rows the release before writes)."""
