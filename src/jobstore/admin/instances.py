"""The stores running on a job table, as their heartbeats describe them, and which of them
are live."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from ..db.heartbeat import Heartbeat
from ..timefmt import json_time, utcnow
from .target import Target

STALE_AFTER_INTERVALS = 3
"""An instance whose heartbeat is older than this many of its own sync intervals is stale."""
MIN_STALE_AFTER_S = 1.0
"""...but never sooner than this: a loaded machine can delay a 0.1 s loop by a few tenths."""
POLL_S = 0.1
"""Seconds between two reads of the heartbeats (or verify reports) while a command waits."""


@dataclass(frozen=True)
class InstanceInfo(Heartbeat):
    """One running (or formerly running) store: its last heartbeat, how old that is, and
    whether the instance counts as live."""

    heartbeat_age_s: float
    live: bool
    malformed: tuple[str, ...] = ()
    """What in the heartbeat row could not be read (each such field shows a fallback)."""

    @property
    def name(self) -> str:
        """How a person should read this instance: host and pid."""
        return f"{self.host} pid {self.pid}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "instance_id": self.instance_id, "host": self.host, "pid": self.pid,
            "stage": self.stage, "pinned": self.pinned, "live": self.live,
            "started_at": self.started_at.isoformat(),
            "heartbeat_at": self.heartbeat_at.isoformat(),
            "heartbeat_age_s": round(self.heartbeat_age_s, 3),
            "sync_interval": self.sync_interval, "memory_items": self.memory_items,
            "tracked_items": self.tracked_items, "queued_writes": self.queued_writes,
            "failed_writes": self.failed_writes, "shadow_mismatches": self.shadow_mismatches,
            "shadow_checks": self.shadow_checks,
            "recent_shadow_mismatches": self.recent_shadow_mismatches,
            "recent_shadow_checks": self.recent_shadow_checks,
            "last_error": self.last_error, "last_error_at": json_time(self.last_error_at),
            "malformed": list(self.malformed),
        }


def stale_after(sync_interval: float) -> float:
    return max(STALE_AFTER_INTERVALS * sync_interval, MIN_STALE_AFTER_S)


def instances(target: Target, now: datetime | None = None) -> list[InstanceInfo]:
    """Every instance of this table with a heartbeat row, live ones first."""
    now = now or utcnow()
    found = []
    for beat, malformed in map(Heartbeat.read, target.control.instances()):
        age = (now - beat.heartbeat_at).total_seconds()
        if beat.heartbeat_at.microsecond == 0:
            # A column made before MySQL/MariaDB kept microseconds holds whole seconds: the
            # heartbeat may be up to a second younger than it reads.
            age = max(age - 1.0, 0.0)
        values = {f.name: getattr(beat, f.name) for f in fields(Heartbeat)}
        values["last_error"] = target.scrub(beat.last_error) if beat.last_error else None
        found.append(InstanceInfo(**values, heartbeat_age_s=max(age, 0.0),
                                  live=age < stale_after(beat.sync_interval),
                                  malformed=malformed))
    found.sort(key=lambda i: (not i.live, i.host, i.pid, i.instance_id))
    return found
