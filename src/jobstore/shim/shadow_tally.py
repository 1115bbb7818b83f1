"""Shadow comparisons counted two ways: since the stage began, and over a recent window.

A count kept since the store opened says nothing once the drift it saw is repaired ("3
mismatches" forever); the per-stage count starts again at each stage change, and the window
shows what happened lately whatever the stage. Both count checks beside mismatches, so "0
mismatches" can be told from "0 compared".
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..db.heartbeat import RECENT_WINDOW_S

BUCKET_S = 10.0
"""The recent window is counted in ten-second buckets (a bucket leaves it whole)."""
_BUCKETS = int(RECENT_WINDOW_S // BUCKET_S)


class ShadowTally:
    """Checks and mismatches of this stage and of the recent window.

    A ring of buckets, without a lock: a reader thread counts, the loop sums, and a count lost
    to a race between two threads is a miscount of one, as for the store's other counters. No
    lock also means nothing to reset in a forked child.
    """

    __slots__ = ("_checks", "_clock", "_mismatches", "_slots", "stage_checks",
                 "stage_mismatches")

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.stage_checks = 0
        self.stage_mismatches = 0
        self._slots = [-1] * _BUCKETS
        self._checks = [0] * _BUCKETS
        self._mismatches = [0] * _BUCKETS

    def check(self) -> None:
        self.stage_checks += 1
        self._checks[self._bucket()] += 1

    def mismatch(self) -> None:
        self.stage_mismatches += 1
        self._mismatches[self._bucket()] += 1

    def new_stage(self) -> None:
        """The stage changed: its counts start from zero (the window keeps its own)."""
        self.stage_checks = 0
        self.stage_mismatches = 0

    def recent(self) -> tuple[int, int]:
        """Checks and mismatches within the last `RECENT_WINDOW_S` seconds."""
        oldest = self._slot() - _BUCKETS
        kept = [i for i, slot in enumerate(self._slots) if slot > oldest]
        return sum(self._checks[i] for i in kept), sum(self._mismatches[i] for i in kept)

    def _slot(self) -> int:
        return int(self._clock() // BUCKET_S)

    def _bucket(self) -> int:
        slot = self._slot()
        index = slot % _BUCKETS
        if self._slots[index] != slot:
            self._checks[index] = self._mismatches[index] = 0
            self._slots[index] = slot
        return index
