"""How long an instance's heartbeat is trusted: live, stale, gone (its row deleted) or dated
in the future (never trusted), each bound a number of the instance's own sync intervals.

The gate (`jobstore.admin.rollcall`) waits for the live ones; the rows of gone and future
ones are deleted by any running store every `PRUNE_EVERY_ROUNDS` rounds of its loop, and by
``jobstore status`` before it reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .._compat import StrEnum
from ..timefmt import utcnow
from .control import ControlPlane
from .heartbeat import Heartbeat

STALE_AFTER_INTERVALS = 3
"""A heartbeat older than this many of its instance's sync intervals is stale: not live..."""
MIN_STALE_AFTER_S = 1.0
"""...but never sooner than this: a loaded machine can delay a 0.1 s loop by a few tenths."""
GONE_AFTER_INTERVALS = 10
"""A heartbeat older than this many intervals is gone: its row is deleted..."""
MIN_GONE_AFTER_S = 3.0
"""...but never sooner than this."""
FUTURE_AFTER_S = 60.0
"""A heartbeat dated more than this ahead of the reader's clock is not trusted: a clock that
far off, or a row written by hand; it is not live and its row is deleted."""
PRUNE_EVERY_ROUNDS = 10
"""A running store deletes gone and future rows once in this many rounds of its loop."""


class Standing(StrEnum):
    LIVE = "live"
    STALE = "stale"
    GONE = "gone"
    FUTURE = "future"


def stale_after(sync_interval: float) -> float:
    return max(STALE_AFTER_INTERVALS * sync_interval, MIN_STALE_AFTER_S)


def gone_after(sync_interval: float) -> float:
    return max(GONE_AFTER_INTERVALS * sync_interval, MIN_GONE_AFTER_S)


def age_of(heartbeat_at: datetime, now: datetime) -> float:
    """Seconds since ``heartbeat_at``; negative when it is dated ahead."""
    age = (now - heartbeat_at).total_seconds()
    if heartbeat_at.microsecond == 0 and age > 0:
        # A column made before MySQL/MariaDB kept microseconds holds whole seconds: the
        # heartbeat may be up to a second younger than it reads.
        age = max(age - 1.0, 0.0)
    return age


def standing(beat: Heartbeat, malformed: Iterable[str], now: datetime) -> Standing:
    """Where a heartbeat read back stands. One whose time cannot be read is stale, never
    gone: it stays listed (as malformed) for a person to look at."""
    if any(problem.startswith("heartbeat_at ") for problem in malformed):
        return Standing.STALE
    age = age_of(beat.heartbeat_at, now)
    if age < -FUTURE_AFTER_S:
        return Standing.FUTURE
    if age >= gone_after(beat.sync_interval):
        return Standing.GONE
    return Standing.LIVE if age < stale_after(beat.sync_interval) else Standing.STALE


@dataclass(frozen=True)
class Pruned:
    """A heartbeat row deleted, and why."""

    heartbeat: Heartbeat
    standing: Standing


def why_pruned(gone: Pruned) -> str:
    """Why a row was deleted, in words."""
    beat = gone.heartbeat
    if gone.standing is Standing.FUTURE:
        return (f"its heartbeat is dated {beat.heartbeat_at.isoformat()}, more than "
                f"{FUTURE_AFTER_S:g} s ahead: not trusted")
    return (f"no heartbeat for {GONE_AFTER_INTERVALS} of its sync intervals "
            f"({gone_after(beat.sync_interval):g} s): gone")


def prune(control: ControlPlane, rows: Iterable[Mapping[Any, Any]] | None = None,
          now: datetime | None = None) -> tuple[Pruned, ...]:
    """Delete the heartbeat rows of gone and future instances of this table (``rows``: as
    `ControlPlane.instances` returns them, read here when not given); those deleted.

    An instance deleted while it still runs (stopped for long, then resumed) writes its row
    again at its next heartbeat."""
    now = now or utcnow()
    found = []
    for beat, malformed in map(Heartbeat.read, control.instances() if rows is None else rows):
        if any(problem.startswith("instance_id ") for problem in malformed):
            continue  # which row it is cannot be said: left for a person
        where = standing(beat, malformed, now)
        if where in (Standing.GONE, Standing.FUTURE):
            found.append(Pruned(beat, where))
    if found:
        control.forget_instances([p.heartbeat.instance_id for p in found])
    return tuple(found)
