"""The barrier a stage change ends in (`set_stage`, `rollback`, `cutover`): the roll call's
instances waited for until each reports running the new stage, is pinned to another, closes
its store or falls silent."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..stages import Stage
from .barrier import Wait, wait_for
from .instances import InstanceInfo
from .rollcall import roll_call
from .target import Target


@dataclass(frozen=True)
class BarrierProgress:
    stage: str
    reached: tuple[InstanceInfo, ...]
    waiting: tuple[InstanceInfo, ...]
    elapsed_s: float
    timeout_s: float


@dataclass(frozen=True)
class BarrierResult:
    """Which instances of the roll call reported running ``stage`` before the timeout, and
    which not."""

    stage: str
    reached: tuple[InstanceInfo, ...]
    missing: tuple[InstanceInfo, ...]
    """Live instances still running another stage when the time ran out."""
    pinned: tuple[InstanceInfo, ...]
    """Live instances pinned to another stage by ``JOBSTORE_STAGE``: they will not follow."""
    silent: tuple[InstanceInfo, ...]
    """Instances live at the start that stopped beating before they ran it: hung or killed."""
    elapsed_s: float
    closed: tuple[InstanceInfo, ...] = ()
    """Instances that closed their store meanwhile."""
    skipped: tuple[InstanceInfo, ...] = ()
    """Instances the operator named to skip."""
    skip_unmatched: tuple[str, ...] = ()
    """Names given to skip that match no listed instance."""

    @property
    def ok(self) -> bool:
        return not self.missing and not self.silent

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage, "ok": self.ok,
            "reached": [i.instance_id for i in self.reached],
            "missing": [i.to_dict() for i in self.missing],
            "pinned": [i.to_dict() for i in self.pinned],
            "silent": [i.to_dict() for i in self.silent],
            "closed": [i.instance_id for i in self.closed],
            "skipped": [i.instance_id for i in self.skipped],
            "skip_unmatched": list(self.skip_unmatched),
            "elapsed_s": round(self.elapsed_s, 3),
        }


def wait_for_stage(target: Target, stage: Stage, *, timeout: float, skip: Sequence[str] = (),
                   command: str = "stage",
                   progress: Callable[[BarrierProgress], None] | None = None) -> BarrierResult:
    """Poll heartbeats until every instance live at the start (or since), and not pinned to
    another stage, reports ``stage``; or until it closed its store, fell silent, or
    ``timeout``."""
    roll = roll_call(target, skip, command=command)
    pinned: dict[str, InstanceInfo] = {}

    def holds_out(i: InstanceInfo) -> bool:
        return bool(i.pinned) and i.pinned != stage.value

    def runs_it(now: dict[str, InstanceInfo]) -> set[str]:
        pinned.update((k, i) for k, i in now.items() if i.live and holds_out(i))
        return {k for k, i in now.items() if i.stage == stage.value or holds_out(i)}

    def show(state: Wait) -> None:
        if progress is not None:
            progress(BarrierProgress(stage.value, _reached(state, pinned), state.waiting,
                                     state.elapsed_s, timeout))

    state = wait_for(target, roll, runs_it, timeout=timeout, joins=lambda _: True,
                     progress=show)
    return BarrierResult(stage.value, _reached(state, pinned), state.waiting,
                         tuple(pinned.values()), state.silent, state.elapsed_s,
                         closed=state.closed, skipped=roll.skipped,
                         skip_unmatched=roll.unmatched)


def _reached(state: Wait, pinned: dict[str, InstanceInfo]) -> tuple[InstanceInfo, ...]:
    return tuple(i for i in state.answered if i.instance_id not in pinned)
