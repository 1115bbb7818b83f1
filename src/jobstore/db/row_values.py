"""Values of control rows read back defensively: a row anyone can ``UPDATE`` by hand must
not stop the store or the command that reads it.

Each reader turns what the driver returned into the value jobstore uses, or raises
`ValueError` saying what is wrong; the caller keeps a fallback and shows the row as malformed.
Texts are cut to a bound, so a megabyte in a column is a few hundred characters on screen.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

from ..timefmt import as_utc

MAX_ERROR_CHARS = 500
"""The most of an error a heartbeat carries and ``status`` shows."""
SHOWN_CHARS = 40
"""The most of a malformed value a message quotes."""
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
"""The time a row's unreadable time falls back to: long ago, so its instance is stale."""


def cut(text: str, limit: int) -> str:
    """``text`` at most ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    note = f"... ({len(text) - limit:,} more characters)"
    return text[:max(limit - len(note), 0)] + note


def shown(value: Any) -> str:
    """A malformed value as a message quotes it: its repr, cut short."""
    return cut(repr(value), SHOWN_CHARS)


def text(value: Any, limit: int) -> str:
    """A text column, cut to ``limit`` (a number SQLite kept in it reads as its digits)."""
    if value is None:
        raise ValueError("is missing")
    return cut(value if isinstance(value, str) else str(value), limit)


def count(value: Any) -> int:
    """A count column: a whole number at least 0 (SQLite keeps whatever was written)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{shown(value)} is not a count")
    return value


def interval(value: Any) -> float:
    """The ``sync_interval`` column (text): a positive, finite number of seconds."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{shown(value)} is not a number of seconds") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{shown(value)} is not a positive number of seconds")
    return seconds


def moment(value: Any) -> datetime:
    """A time column read without SQLAlchemy's conversion (which raises on a bad text): a
    driver's datetime, or SQLite's ISO text; in UTC."""
    if isinstance(value, datetime):
        return as_utc(value)
    if isinstance(value, str):
        try:
            return as_utc(datetime.fromisoformat(value))
        except ValueError:
            pass
    raise ValueError(f"{shown(value)} is not a time")
