"""The loggers jobstore writes to, and how a record is made.

One child of the ``jobstore`` logger per family of events, so a service can route or silence
each on its own (``logging.getLogger("jobstore.audit").setLevel(logging.ERROR)``); the package
logger has a `logging.NullHandler`, so nothing is printed until the application configures
logging. Every record carries an ``event`` attribute and the fields of its message as
attributes, for structured handlers; no field is ever a password (URLs go through
`jobstore.db.redact.safe_url`, errors through `jobstore.db.redact.reason`). The hot path logs
nothing. docs/logging.md lists every record.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Hashable

logging.getLogger("jobstore").addHandler(logging.NullHandler())

STORE = logging.getLogger("jobstore.store")
"""A store opened and closed."""
STAGE = logging.getLogger("jobstore.stage")
"""A running store following the control row to a new stage; a stage pinned at open."""
AUDIT = logging.getLogger("jobstore.audit")
"""Drift found: shadow and compared reads that disagree, ``verify`` reports with drift, verify
requests answered."""
LOOP = logging.getLogger("jobstore.loop")
"""The background loop: a round that failed, and rounds that succeed again."""
MERGE = logging.getLogger("jobstore.merge")
"""Several servers, one job: same-field conflicts and write-backs dropped onto deleted jobs."""
ADMIN = logging.getLogger("jobstore.admin")
"""What the admin functions (the CLI's commands) did: stage set, rollback, cutover."""
QUEUE = logging.getLogger("jobstore.queue")
"""Writes the database refused: queued, journaled, replayed, dropped."""
HEALTH = logging.getLogger("jobstore.health")
"""The database failing, and back."""


def emit(logger: logging.Logger, level: int, event: str, message: str, /, *,
         exc_info: bool = False, **fields: object) -> None:
    """Log ``message`` %-formatted from ``fields`` (``%(key)r``), which also ride on the
    record as attributes beside ``event``."""
    if logger.isEnabledFor(level):
        logger.log(level, message, *((fields,) if fields else ()), exc_info=exc_info,
                   extra={"event": event, **fields}, stacklevel=2)


class PerKeyLimit:
    """At most one record per key per ``window_s``, and at most ``max_keys`` keys per window:
    a mismatch seen on every read logs once a minute, not once a read. What was held back is
    counted, for the next record to say. Costs a clock read and a set lookup, and runs only
    when there is something to log."""

    def __init__(self, window_s: float = 60.0, max_keys: int = 20) -> None:
        self.window_s = window_s
        self.max_keys = max_keys
        self._window_end = 0.0
        self._seen: set[Hashable] = set()
        self._held_back = 0
        self._lock = threading.Lock()

    def allow(self, key: Hashable) -> int | None:
        """None when ``key``'s record is held back; else how many were held back before it."""
        now = time.monotonic()
        with self._lock:
            if now >= self._window_end:
                self._window_end = now + self.window_s
                self._seen.clear()
            if key in self._seen or len(self._seen) >= self.max_keys:
                self._held_back += 1
                return None
            self._seen.add(key)
            held_back, self._held_back = self._held_back, 0
            return held_back
