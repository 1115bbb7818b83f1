"""Waiting for a roll call (`jobstore.admin.rollcall`) until each instance answers, closes
its store, or falls silent.

An instance that stops beating for 10 of its intervals (hung or killed: from outside they
look the same) is *silent*; it does not stop the wait for the others, but a wait that ends
with one silent ends in exit 3 with the stage unchanged. A silent instance that beats again
is waited for again. One whose row disappears while it was live closed its store
(``close()`` deletes the row); its dict was written back at close, so there is nothing left
to check.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ..db.liveness import Standing
from .instances import POLL_S, InstanceInfo, instances
from .rollcall import RollCall
from .target import Target

_STILL_WAITED_FOR = (Standing.LIVE, Standing.STALE)
"""An instance of the roll call is silent only once it is gone (10 of its intervals): one that
is merely late (stale, 3) may be a process the machine slowed, not a hung one."""

Answered = Callable[[dict[str, InstanceInfo]], set[str]]
"""Given every instance now listed, by id: the ids that have answered."""


@dataclass(frozen=True)
class Wait:
    """Where the roll call stands when the wait ends (or at a poll, for a live display)."""

    answered: tuple[InstanceInfo, ...]
    waiting: tuple[InstanceInfo, ...]
    """Live, and not answered when the time ran out."""
    silent: tuple[InstanceInfo, ...]
    """Stopped beating before they answered (each as last seen: its heartbeat's age)."""
    closed: tuple[InstanceInfo, ...]
    """Closed their store before they answered."""
    elapsed_s: float

    @property
    def done(self) -> bool:
        return not self.waiting and not self.silent


def wait_for(target: Target, roll: RollCall, answered: Answered, *, timeout: float,
             joins: Callable[[InstanceInfo], bool] | None = None,
             progress: Callable[[Wait], None] | None = None) -> Wait:
    """Poll until every instance of ``roll`` has answered, closed or fallen silent, or
    ``timeout``. ``joins``: which instances live now but not at the start are waited for
    too (a stage barrier counts a store opened meanwhile)."""
    started = time.monotonic()
    expected = dict(roll.expected)
    last_seen = dict(expected)
    """Each instance as last listed: whether its row vanished while live (closed) or not."""
    skipped = {i.instance_id for i in roll.skipped}
    while True:
        elapsed = time.monotonic() - started
        now = {i.instance_id: i for i in instances(target)}
        if joins is not None:
            expected.update((k, i) for k, i in now.items()
                            if k not in expected and k not in skipped and i.live and joins(i))
        last_seen.update((k, now[k]) for k in expected if k in now)
        done = answered(now)
        state = _sort(expected, now, last_seen, done, elapsed)
        if progress is not None:
            progress(state)
        if not state.waiting or elapsed >= timeout:
            return state
        time.sleep(min(POLL_S, max(timeout - elapsed, 0.0)))


def _sort(expected: dict[str, InstanceInfo], now: dict[str, InstanceInfo],
          last_seen: dict[str, InstanceInfo], done: set[str], elapsed: float) -> Wait:
    answered: list[InstanceInfo] = []
    waiting: list[InstanceInfo] = []
    silent: list[InstanceInfo] = []
    closed: list[InstanceInfo] = []
    for k in expected:
        seen = last_seen[k]
        if k in done:
            answered.append(now.get(k, seen))
        elif k not in now:
            # Gone from the listing: closed if it was live when last seen, else pruned.
            (closed if seen.live else silent).append(seen)
        elif now[k].standing in _STILL_WAITED_FOR:
            waiting.append(now[k])
        else:
            silent.append(now[k])
    return Wait(tuple(answered), tuple(waiting), tuple(silent), tuple(closed), elapsed)
