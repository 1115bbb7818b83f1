"""What has gone wrong with the database lately: the counters a heartbeat and ``status`` show."""

from __future__ import annotations

import time

from ..db.redact import reason


class Health:
    """Errors, shadow comparisons and whether the database is failing right now.

    Two flags say how the dict-first stages treat the database after a call to it failed:

    - ``unreachable``, the circuit: set by the failure, cleared only by a probe that reaches the
      database (`jobstore.shim.circuit.database_back`, run outside the store's lock by the
      background loop, and at most once a second by a call that needs the database). While it
      is set no other call touches the database: writes queue, reads the dict can answer come
      from it, and the others raise `StoreUnavailableError` at once.
    - ``failing``: set with it, and cleared once the retry queue drains: until then writes
      queue behind the ones already queued, so none overtakes an older write of its key.
    """

    __slots__ = ("conflicts", "dropped_writes", "failing", "last_error", "probed_at",
                 "shadow_checks", "shadow_mismatches", "unreachable", "write_errors")

    def __init__(self) -> None:
        self.write_errors = 0
        self.last_error: str | None = None
        self.failing = False
        self.unreachable = False
        self.probed_at = -float("inf")
        self.shadow_checks = 0
        self.shadow_mismatches = 0
        self.conflicts = 0
        """Fields this process's change replaced after another process had changed them."""
        self.dropped_writes = 0
        """In-place changes dropped because another process had deleted the job."""

    def note_error(self, exc: BaseException) -> None:
        self.write_errors += 1
        self.last_error = reason(exc)

    def trip(self, exc: BaseException) -> None:
        """A dict-first call found the database failing: open the circuit."""
        self.note_error(exc)
        self.failing = True
        self.unreachable = True

    def available_now(self) -> bool:
        """Whether a dict-first call may try the database (the circuit is closed)."""
        return not self.unreachable

    def claim_probe(self, every: float | None) -> bool:
        """Whether to probe now: always for ``every=None`` (the loop), else when no probe began
        within ``every`` seconds (so callers that need the database try it once a second)."""
        now = time.monotonic()
        if every is not None and now - self.probed_at < every:
            return False
        self.probed_at = now
        return True

    def queue_first(self, queued: int) -> bool:
        """Whether a dict-first write goes to the retry queue without trying the database."""
        return self.unreachable or (self.failing and queued > 0)

    def count_mismatch(self, key: object) -> None:
        self.shadow_mismatches += 1
        self.last_error = f"mismatch between the dict and the database for {str(key)!r}"
