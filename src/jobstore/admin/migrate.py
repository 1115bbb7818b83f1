"""Moving between stages: `set_stage`, `rollback` and `cutover`, each ending in a barrier that
waits until every live instance reports running the new stage."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .._compat import StrEnum
from ..db.control import InvalidStageRow
from ..exceptions import StageError
from ..stages import Stage, may_hide_jobs
from .exits import ExitCode
from .instances import InstanceInfo, instances
from .outcome_log import logs_cutover, logs_stage_change
from .rollback_guard import HiddenJobs, hidden_by_memory, log_forced
from .stage_barrier import BarrierProgress, BarrierResult, wait_for_stage
from .target import Target, UrlLike, actor, open_target
from .verify import DEFAULT_TIMEOUT_S, ProgressFn, VerifyProgress, VerifyResult, verify_in

Progress = Callable[[VerifyProgress | BarrierProgress], None]


@dataclass(frozen=True)
class StageChange:
    """The outcome of `set_stage` or `rollback`."""

    url: str
    table: str
    previous: str | None
    stage: str
    changed: bool
    refused: str | None = None
    barrier: BarrierResult | None = None
    jobs_in_db: int | None = None
    hidden_jobs: int | None = None
    """For a move into memory: the jobs in the database that no live dict held (with force,
    those the move hid)."""

    @property
    def exit_code(self) -> ExitCode:
        """REFUSED, else TIMEOUT when some live instance did not follow in time, else OK."""
        if self.refused:
            return ExitCode.REFUSED
        return ExitCode.TIMEOUT if self.barrier is not None and not self.barrier.ok else ExitCode.OK

    def to_dict(self) -> dict[str, Any]:
        return {
            "url": self.url, "table": self.table, "previous": self.previous,
            "stage": self.stage, "changed": self.changed, "refused": self.refused,
            "jobs_in_db": self.jobs_in_db, "hidden_jobs": self.hidden_jobs,
            "barrier": None if self.barrier is None else self.barrier.to_dict(),
        }


@logs_stage_change
def set_stage(stage: Stage | str, url: UrlLike = None, *, table: str | None = None,
              force: bool = False, wait: bool = True, timeout: float = DEFAULT_TIMEOUT_S,
              skip: Sequence[str] = (),
              progress: Callable[[BarrierProgress], None] | None = None) -> StageChange:
    """Set the stage every process follows, then wait until the live ones run it (those
    named in ``skip`` excepted; one that falls silent makes the exit code TIMEOUT).

    Refused without ``force``: ``db_only`` (use `cutover`, which verifies first), and
    ``memory`` while the database holds jobs that no live dict holds (they would disappear
    from the service's view: see `jobstore.admin.rollback_guard`; the live instances are
    asked, waiting up to ``timeout`` seconds for their answers, even when ``wait`` is false
    unless ``force`` is given too).
    """
    new = Stage.parse(stage)
    with open_target(url, table) as target:
        try:
            state = target.control.read_stage()
        except InvalidStageRow as exc:
            # Which stage the fleet leaves is unknown, so the checks of a move cannot run.
            if not force:
                return StageChange(target.url, target.table, exc.value, new.value,
                                   changed=False, refused=f"{exc}; `jobstore status` shows "
                                                          "the stage each instance runs")
            return replace(_change(target, None, new, force=force, wait=wait,
                                   timeout=timeout, reason=f"jobstore stage {new.value} "
                                   f"--force over an invalid row ({exc.value})",
                                   skip=skip, progress=progress), previous=exc.value)
        current = state.stage if state else None
        if new is Stage.DB_ONLY and current is not Stage.DB_ONLY and not force:
            return StageChange(
                target.url, target.table, _value(current), new.value, changed=False,
                refused="db_only drops every process's dict: run `jobstore cutover`, which "
                        "verifies first and waits for every instance, or pass --force")
        return _change(target, current, new, force=force, wait=wait, timeout=timeout,
                       reason=f"jobstore stage {new.value}", skip=skip, progress=progress)


@logs_stage_change
def rollback(url: UrlLike = None, *, table: str | None = None, to: Stage | str | None = None,
             force: bool = False, wait: bool = True, timeout: float = DEFAULT_TIMEOUT_S,
             skip: Sequence[str] = (),
             progress: Callable[[BarrierProgress], None] | None = None) -> StageChange:
    """Move one stage back (or back to ``to``), then wait until the live instances run it.

    ``to`` must be earlier than the current stage (`StageError` otherwise). Moving to
    ``memory`` is refused without ``force`` while the database holds jobs that no live dict
    holds, as in `set_stage`.
    """
    with open_target(url, table) as target:
        state = target.control.read_stage()
        if state is None:
            raise StageError(f"table {target.table!r} has no stage yet: run `jobstore init`")
        current = state.stage
        if to is None:
            new = current.previous()
            if new is None:
                return StageChange(target.url, target.table, current.value, current.value,
                                   changed=False,
                                   refused="already at memory, the first stage")
        else:
            new = Stage.parse(to)
            if new.step >= current.step:
                raise StageError(
                    f"--to {new.value} is not before the current stage {current.value}: "
                    "rollback only moves back (use `jobstore stage` or `jobstore cutover`)")
        return _change(target, current, new, force=force, wait=wait, timeout=timeout,
                       reason=f"rollback from {current.value}", skip=skip, command="rollback",
                       progress=progress)


def _change(target: Target, current: Stage | None, new: Stage, *, force: bool, wait: bool,
            timeout: float, reason: str, skip: Sequence[str], command: str = "stage",
            progress: Callable[[BarrierProgress], None] | None) -> StageChange:
    hidden: HiddenJobs | None = None
    if current is not None and may_hide_jobs(current, new):
        # Forced and not waiting: the move is not held up to learn what it hides.
        hidden = hidden_by_memory(target, timeout=timeout if wait or not force else 0.0)
        if hidden.hidden and not force:
            return StageChange(
                target.url, target.table, current.value, new.value, changed=False,
                jobs_in_db=hidden.jobs_in_db, hidden_jobs=hidden.hidden,
                refused=hidden.refusal(current, timeout))
    changed = current is not new
    if changed:
        target.control.set_stage(new, actor(), reason)
        if hidden is not None and hidden.hidden:
            log_forced(target, _value(current), hidden)
    barrier = (wait_for_stage(target, new, timeout=timeout, skip=skip,
                              command=command, progress=progress)
               if wait else None)
    return StageChange(target.url, target.table, _value(current), new.value, changed=changed,
                       barrier=barrier,
                       jobs_in_db=None if hidden is None else hidden.jobs_in_db,
                       hidden_jobs=None if hidden is None else hidden.hidden)


class CutoverOutcome(StrEnum):
    """How a cutover ended."""

    DONE = "done"
    ALREADY = "already"
    """The stage was db_only already."""
    DRY_RUN = "dry_run"
    """The plan; nothing changed."""
    REFUSED = "refused"
    UNVERIFIED = "unverified"
    """A live instance did not answer verify in time."""
    CANCELLED = "cancelled"
    """The confirmation said no."""
    BARRIER_TIMEOUT = "barrier_timeout"
    """db_only is set, but some live instance did not report running it in time."""

    @property
    def exit_code(self) -> ExitCode:
        return _CUTOVER_EXIT[self]


_CUTOVER_EXIT = {
    CutoverOutcome.DONE: ExitCode.OK,
    CutoverOutcome.ALREADY: ExitCode.OK,
    CutoverOutcome.DRY_RUN: ExitCode.OK,
    CutoverOutcome.REFUSED: ExitCode.REFUSED,
    CutoverOutcome.CANCELLED: ExitCode.REFUSED,
    CutoverOutcome.UNVERIFIED: ExitCode.TIMEOUT,
    CutoverOutcome.BARRIER_TIMEOUT: ExitCode.TIMEOUT,
}


@dataclass(frozen=True)
class CutoverResult:
    """What `cutover` found, decided and did; ``outcome`` says how it ended."""

    url: str
    table: str
    outcome: CutoverOutcome
    previous: str | None
    reasons: tuple[str, ...] = ()
    """Why it refused (or, with force, what it would have refused for)."""
    forced: bool = False
    plan: tuple[str, ...] = ()
    verify: VerifyResult | None = None
    barrier: BarrierResult | None = None

    @property
    def exit_code(self) -> ExitCode:
        return self.outcome.exit_code

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome.value, "url": self.url, "table": self.table,
            "previous": self.previous, "reasons": list(self.reasons), "forced": self.forced,
            "plan": list(self.plan),
            "verify": None if self.verify is None else self.verify.to_dict(),
            "barrier": None if self.barrier is None else self.barrier.to_dict(),
        }


@logs_cutover
def cutover(url: UrlLike = None, *, table: str | None = None, force: bool = False,
            dry_run: bool = False, timeout: float = DEFAULT_TIMEOUT_S,
            skip: Sequence[str] = (),
            confirm: Callable[[tuple[str, ...]], bool] | None = None,
            progress: Progress | None = None) -> CutoverResult:
    """Verify, then set ``db_only`` and wait until every live instance runs it.

    Refused (unless ``force``) on any drift, while any instance has writes queued or failed,
    while an instance is pinned to another stage by ``JOBSTORE_STAGE``, and when a live
    instance does not answer verify within ``timeout`` seconds or stops beating before it
    answers (hung or killed): then the stage stays as it was. ``skip`` names instances not
    to wait for, each by its id or a unique prefix (logged as ``admin.skipped``).
    ``dry_run`` returns the plan without changing anything; ``confirm`` (given the plan)
    can still say no.
    """
    with open_target(url, table) as target:
        state = target.control.read_stage()
        previous = state.stage if state else None
        if previous is Stage.DB_ONLY:
            barrier = wait_for_stage(target, Stage.DB_ONLY, timeout=timeout, skip=skip,
                                     command="cutover", progress=progress)
            outcome = (CutoverOutcome.ALREADY if barrier.ok
                       else CutoverOutcome.BARRIER_TIMEOUT)
            return CutoverResult(target.url, target.table, outcome, previous.value,
                                 barrier=barrier)
        live = [i for i in instances(target) if i.live]
        checked: VerifyResult | None = None
        if live:
            verify_progress: ProgressFn | None = progress
            checked = verify_in(target, timeout=timeout, skip=skip, progress=verify_progress,
                                command="cutover")
            skipped = {i.instance_id for i in checked.skipped}
            live = [i for i in live if i.instance_id not in skipped]
        reasons, unverified = _refusals(live, checked, timeout)
        plan = _plan(target, previous, live, timeout)
        base = CutoverResult(target.url, target.table, CutoverOutcome.REFUSED, _value(previous),
                             reasons=tuple(reasons), forced=bool(reasons), plan=plan,
                             verify=checked)
        if reasons and not force:
            outcome = (CutoverOutcome.UNVERIFIED if unverified == len(reasons)
                       else CutoverOutcome.REFUSED)
            return replace(base, outcome=outcome, forced=False)
        if dry_run:
            return replace(base, outcome=CutoverOutcome.DRY_RUN)
        if confirm is not None and not confirm(plan):
            return replace(base, outcome=CutoverOutcome.CANCELLED)
        target.control.set_stage(Stage.DB_ONLY, actor(),
                                 "cutover --force" if reasons else "cutover")
        barrier = wait_for_stage(target, Stage.DB_ONLY, timeout=timeout, skip=skip,
                                 command="cutover", progress=progress)
        return replace(base, barrier=barrier, outcome=(
            CutoverOutcome.DONE if barrier.ok else CutoverOutcome.BARRIER_TIMEOUT))


def _refusals(live: list[InstanceInfo], checked: VerifyResult | None,
              timeout: float) -> tuple[list[str], int]:
    """Why cutover refuses, and how many of those reasons are instances not heard from."""
    reasons: list[str] = []
    if checked is not None and checked.drifts:
        reasons.append(f"verify found {len(checked.drifts)} drift(s) in "
                       f"{len(checked.drifted_keys)} key(s): "
                       f"{_names(list(checked.drifted_keys))}")
    busy = [i for i in live if i.queued_writes or i.failed_writes]
    reported = {r.instance_id for r in (checked.reports if checked else ())
                if r.queued_writes or r.failed_writes}
    busy_ids = {i.instance_id for i in busy} | reported
    if busy_ids:
        by_id = {i.instance_id: i for i in live}
        names = [by_id[k].name if k in by_id else k for k in sorted(busy_ids)]
        reasons.append(f"writes are queued or failed on {len(busy_ids)} instance(s): "
                       f"{_names(names)} (status shows the figures)")
    pinned = [i for i in live if i.pinned and i.pinned != Stage.DB_ONLY.value]
    if pinned:
        reasons.append("pinned by JOBSTORE_STAGE, will not follow: " + _names(
            [f"{i.name} ({i.pinned})" for i in pinned]))
    if checked is not None and checked.malformed:
        reasons.append(f"{len(checked.malformed)} verify answer(s) are not reports: "
                       f"{_names([m.instance_id for m in checked.malformed])}")
    unverified = 0 if checked is None else bool(checked.unanswered) + bool(checked.silent)
    if checked is not None and checked.unanswered:
        reasons.append(f"{len(checked.unanswered)} live instance(s) did not answer verify "
                       f"within {timeout:g} s: {_names([i.name for i in checked.unanswered])}")
    if checked is not None and checked.silent:
        reasons.append(f"{len(checked.silent)} instance(s) stopped beating before they "
                       f"answered verify: {_names([i.silence for i in checked.silent])}; "
                       "their dicts were not checked. If one is known dead, rerun (it is "
                       "no longer expected) or pass --skip INSTANCE")
    return reasons, unverified


def _plan(target: Target, previous: Stage | None, live: list[InstanceInfo],
          timeout: float) -> tuple[str, ...]:
    steps = [f"set the stage of table {target.table!r} from {_value(previous)} to db_only"]
    if live:
        steps.append(f"wait up to {timeout:g} s until the {len(live)} live instance(s) run "
                     f"db_only: {_names([i.name for i in live])}")
        steps.append("each one writes back its in-place changes, drains its retry queue and "
                     "drops its dict; from then on every read and write goes to the database")
    else:
        steps.append("no live instance: processes started later read db_only at start")
    steps.append("to undo: `jobstore rollback` (to db_primary; the dict starts empty)")
    return tuple(steps)


def _names(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _value(stage: Stage | None) -> str | None:
    return None if stage is None else stage.value
