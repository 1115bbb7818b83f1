"""What a store tells about itself: its stage, its settings and its counters, read-only.

`JobStore` inherits these; they read the store's `Parts` and change nothing.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from ..stages import Stage
from .parts import Parts

K = TypeVar("K")
V = TypeVar("V")


class StoreFacts(Generic[K, V]):
    _parts: Parts[V]

    @property
    def stage(self) -> Stage:
        """The stage this process runs now."""
        return self._parts.stage

    @property
    def pinned(self) -> Stage | None:
        """The stage forced by ``$JOBSTORE_STAGE``, if any."""
        return self._parts.pinned

    @property
    def instance_id(self) -> str:
        return self._parts.instance_id

    @property
    def sync_interval(self) -> float:
        return self._parts.sync_interval

    @property
    def max_memory_items(self) -> int | None:
        return self._parts.tier.bound

    @property
    def key_type(self) -> type[K]:
        return self._parts.keys.python

    @property
    def queued_writes(self) -> int:
        """Writes the database has not taken yet, waiting in the retry queue."""
        return len(self._parts.queue)

    @property
    def failed_writes(self) -> int:
        """Changes that cannot be written as they are (values that no longer encode)."""
        return len(self._parts.tier.unencodable)

    @property
    def write_errors(self) -> int:
        """Database errors met so far."""
        return self._parts.health.write_errors

    @property
    def last_error(self) -> str | None:
        return self._parts.health.last_error

    @property
    def shadow_checks(self) -> int:
        return self._parts.health.shadow_checks

    @property
    def shadow_mismatches(self) -> int:
        return self._parts.health.shadow_mismatches

    def stats(self) -> dict[str, int]:
        """This process's counters: errors, shadow comparisons (since the store opened, since
        its stage began, and over the recent window), conflicts, queued writes (and how many
        of them are on disk: all, unless the disk refused them too)."""
        health = self._parts.health
        recent_checks, recent_mismatches = health.tally.recent()
        return {
            "write_errors": health.write_errors, "shadow_checks": health.shadow_checks,
            "shadow_mismatches": health.shadow_mismatches,
            "stage_shadow_checks": health.tally.stage_checks,
            "stage_shadow_mismatches": health.tally.stage_mismatches,
            "recent_shadow_checks": recent_checks,
            "recent_shadow_mismatches": recent_mismatches, "conflicts": health.conflicts,
            "dropped_writes": health.dropped_writes, "queued_writes": self.queued_writes,
            "journaled_writes": self._parts.queue.journaled(),
            "refused_writes": len(self._parts.queue.refused()), "failed_writes": self.failed_writes,
        }
