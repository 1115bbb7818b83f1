"""Times in UTC: now, a value read back from a database, ISO 8601 text in and out.

Every time jobstore stores or prints is UTC. SQLite (and a column without a time zone) gives
back naive values; they are UTC too, and `as_utc` says so.
"""

from __future__ import annotations

from datetime import datetime, timezone


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(value: datetime) -> datetime:
    """``value`` with its time zone; a naive value (as SQLite returns them) is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def json_time(value: datetime | None) -> str | None:
    """A time as ISO 8601 text for JSON output, None as None."""
    return None if value is None else value.isoformat()


def parse_time(text: str) -> datetime:
    """ISO 8601 text (a trailing ``Z`` included) as an aware time, naive text read as UTC;
    `ValueError` for anything else."""
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    return as_utc(datetime.fromisoformat(text))
