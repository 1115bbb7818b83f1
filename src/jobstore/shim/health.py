"""What has gone wrong with the database lately: the counters a heartbeat and ``status`` show."""

from __future__ import annotations

import time

from ..db.redact import reason


class Health:
    """Errors, shadow comparisons and whether the database is failing right now.

    ``failing`` is set by a dict-first write the database refused, and cleared once the retry
    queue drains: while it is set, writes queue without trying the database first.
    ``down_until`` spares dict-first reads a round trip for one interval after a failed read.
    """

    __slots__ = ("conflicts", "down_until", "dropped_writes", "failing", "last_error",
                 "shadow_checks", "shadow_mismatches", "write_errors")

    def __init__(self) -> None:
        self.write_errors = 0
        self.last_error: str | None = None
        self.failing = False
        self.down_until = 0.0
        self.shadow_checks = 0
        self.shadow_mismatches = 0
        self.conflicts = 0
        """Fields this process's change replaced after another process had changed them."""
        self.dropped_writes = 0
        """In-place changes dropped because another process had deleted the job."""

    def note_error(self, exc: BaseException) -> None:
        self.write_errors += 1
        self.last_error = reason(exc)

    def note_failing_read(self, interval: float) -> None:
        self.down_until = time.monotonic() + interval

    def recently_down(self) -> bool:
        return self.down_until > time.monotonic()

    def count_mismatch(self, key: object) -> None:
        self.shadow_mismatches += 1
        self.last_error = f"mismatch between the dict and the database for {str(key)!r}"
