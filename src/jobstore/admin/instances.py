"""The stores running on a job table, as their heartbeats describe them, and which of them
are live."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from ..db.heartbeat import Heartbeat
from ..db.liveness import Standing, age_of, standing
from ..timefmt import json_time, utcnow
from .target import Target

POLL_S = 0.1
"""Seconds between two reads of the heartbeats (or verify reports) while a command waits."""


@dataclass(frozen=True)
class InstanceInfo(Heartbeat):
    """One running (or formerly running) store: its last heartbeat, how old that is, and
    whether the instance counts as live."""

    heartbeat_age_s: float
    """Seconds since the last heartbeat (0 for one dated ahead: see ``standing``)."""
    standing: Standing
    malformed: tuple[str, ...] = ()
    """What in the heartbeat row could not be read (each such field shows a fallback)."""

    @property
    def live(self) -> bool:
        return self.standing is Standing.LIVE

    @property
    def name(self) -> str:
        """How a person should read this instance: host and pid."""
        return f"{self.host} pid {self.pid}"

    @property
    def silence(self) -> str:
        """How an instance that stopped beating is named: id, host, pid, for how long."""
        return (f"{self.instance_id} ({self.name}) silent for {self.heartbeat_age_s:.0f} s: "
                "hung or killed")

    def to_dict(self) -> dict[str, Any]:
        return {
            "instance_id": self.instance_id, "host": self.host, "pid": self.pid,
            "stage": self.stage, "pinned": self.pinned, "live": self.live,
            "standing": self.standing.value,
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


def instances(target: Target, now: datetime | None = None,
              rows: list[dict[str, Any]] | None = None) -> list[InstanceInfo]:
    """Every instance of this table with a heartbeat row (``rows``, read when not given),
    live ones first; how each stands is `jobstore.db.liveness`'s judgement."""
    now = now or utcnow()
    found = []
    for beat, malformed in map(Heartbeat.read, target.control.instances() if rows is None
                               else rows):
        values = {f.name: getattr(beat, f.name) for f in fields(Heartbeat)}
        values["last_error"] = target.scrub(beat.last_error) if beat.last_error else None
        found.append(InstanceInfo(**values,
                                  heartbeat_age_s=max(age_of(beat.heartbeat_at, now), 0.0),
                                  standing=standing(beat, malformed, now),
                                  malformed=malformed))
    found.sort(key=lambda i: (not i.live, i.host, i.pid, i.instance_id))
    return found
