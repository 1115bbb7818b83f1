"""What has gone wrong with the database lately: the counters a heartbeat and ``status`` show."""

from __future__ import annotations

import time
from datetime import datetime

from .._compat import StrEnum
from ..db.redact import reason
from ..timefmt import utcnow
from .shadow_tally import ShadowTally


class Clears(StrEnum):
    """What makes an error stop being the store's ``last_error``: its condition cleared."""

    ROUND = "round"
    """A sync round with no database error, nothing queued and nothing unencodable."""
    VERIFY = "verify"
    """A verify of this process's dict that found no drift (a mismatch is repaired)."""
    STAGE_ROW = "stage_row"
    """The control row holds a valid stage again."""


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

    __slots__ = ("_errors", "conflicts", "dropped_writes", "failing", "probed_at",
                 "shadow_checks", "shadow_mismatches", "tally", "unreachable", "write_errors")

    def __init__(self) -> None:
        self.write_errors = 0
        self._errors: dict[Clears, tuple[str, datetime] | None] = dict.fromkeys(Clears)
        """The error outstanding per condition, with its time; every key is there from the
        start, so a write never resizes the dict while another thread reads it."""
        self.tally = ShadowTally()
        """Shadow checks and mismatches of this stage and of the recent window
        (``shadow_checks`` and ``shadow_mismatches`` count since the store opened)."""
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
        self.tally.mismatch()
        self.note(f"mismatch between the dict and the database for {str(key)!r}",
                  Clears.VERIFY)

    def count_check(self) -> None:
        """A read compared with the database (shadow, or ``db_primary``'s compared read)."""
        self.shadow_checks += 1
        self.tally.check()

    @property
    def last_error(self) -> str | None:
        """The newest error whose condition has not cleared, or None."""
        newest = self._newest()
        return None if newest is None else newest[0]

    @last_error.setter
    def last_error(self, text: str | None) -> None:
        """Set by a failure that a clean round clears (None clears every error)."""
        if text is None:
            for condition in Clears:
                self._errors[condition] = None
        else:
            self.note(text, Clears.ROUND)

    @property
    def last_error_at(self) -> datetime | None:
        """When `last_error` happened (UTC)."""
        newest = self._newest()
        return None if newest is None else newest[1]

    def note(self, text: str, clears: Clears) -> None:
        """``text`` is the last error until ``clears`` happens."""
        self._errors[clears] = (text, utcnow())

    def cleared(self, condition: Clears) -> None:
        """``condition`` happened: its error is no longer outstanding."""
        self._errors[condition] = None

    def _newest(self) -> tuple[str, datetime] | None:
        found = [e for e in list(self._errors.values()) if e is not None]
        return max(found, key=lambda e: e[1]) if found else None
