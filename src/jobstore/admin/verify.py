"""`verify`: ask every live instance to diff its dict against the database, wait, merge; and
`verify_snapshot`: diff a `JobStore.dump_memory` file against the database, with no process."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..codec import read_document
from ..db.jobs import key_batches
from ..db.row_values import MAX_ERROR_CHARS, cut
from ..exceptions import DecodeError, JobStoreError
from ..snapshot import read_dump
from ..timefmt import as_utc, utcnow
from ..verify import Drift, DriftKind, VerifyReport, diff_documents, parse_report
from .barrier import Wait, wait_for
from .exits import ExitCode
from .instances import InstanceInfo
from .rollcall import roll_call
from .target import Target, UrlLike, actor, open_target

DEFAULT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class VerifyProgress:
    """Where a verify stands while it waits, for a live display."""

    request_id: int
    expected: tuple[InstanceInfo, ...]
    answered: tuple[str, ...]
    elapsed_s: float
    timeout_s: float


@dataclass(frozen=True)
class InstanceDrift:
    """A drift as one instance saw it."""

    instance_id: str
    drift: Drift

    def to_dict(self) -> dict[str, Any]:
        return {"instance_id": self.instance_id, **self.drift.to_dict()}


@dataclass(frozen=True)
class MalformedReport:
    """An answer row that is not a report (written by hand, or damaged): shown, never
    trusted; the verdict cannot be "consistent" while one stands."""

    instance_id: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"instance_id": self.instance_id, "reason": self.reason}


@dataclass(frozen=True)
class VerifyResult:
    """Every answering instance's report, merged; who did not answer; and the verdict.

    ``consistent`` is true only when someone answered, everyone expected answered, and no
    report has a drift.
    """

    url: str
    table: str
    source: str
    """``instances`` (live processes answered) or ``snapshot`` (a dump file was diffed)."""
    request_id: int | None
    reports: tuple[VerifyReport, ...]
    unanswered: tuple[InstanceInfo, ...] = ()
    """Live instances that did not answer before the timeout."""
    silent: tuple[InstanceInfo, ...] = ()
    """Instances live at the start that stopped beating before they answered: hung or
    killed. Their dicts were not checked, so the result is not complete."""
    closed: tuple[InstanceInfo, ...] = ()
    """Instances that closed their store (writing their dict back) before they answered."""
    skipped: tuple[InstanceInfo, ...] = ()
    """Instances the operator named to skip (``--skip``): not asked."""
    skip_unmatched: tuple[str, ...] = ()
    """Names given to skip that match no listed instance."""
    elapsed_s: float = 0.0
    snapshot: str | None = None
    malformed: tuple[MalformedReport, ...] = ()

    @property
    def drifts(self) -> tuple[InstanceDrift, ...]:
        return tuple(InstanceDrift(r.instance_id, d) for r in self.reports for d in r.drifts)

    @property
    def drifted_keys(self) -> tuple[str, ...]:
        return tuple(sorted({d.drift.key for d in self.drifts}))

    @property
    def checked(self) -> int:
        return sum(r.checked for r in self.reports)

    @property
    def complete(self) -> bool:
        return bool(self.reports) and not self.unanswered and not self.silent

    @property
    def consistent(self) -> bool:
        return self.complete and not self.drifts and not self.malformed

    @property
    def queued_writes(self) -> int:
        return sum(r.queued_writes for r in self.reports)

    @property
    def failed_writes(self) -> int:
        return sum(r.failed_writes for r in self.reports)

    @property
    def exit_code(self) -> ExitCode:
        """DRIFT when a drift (or an answer that is not a report) was found, else TIMEOUT
        when not everyone answered (or one fell silent), else OK."""
        if self.drifts or self.malformed:
            return ExitCode.DRIFT
        return ExitCode.OK if self.complete else ExitCode.TIMEOUT

    def to_dict(self) -> dict[str, Any]:
        return {
            "consistent": self.consistent, "complete": self.complete, "source": self.source,
            "url": self.url, "table": self.table, "request_id": self.request_id,
            "snapshot": self.snapshot, "checked": self.checked,
            "drifted_keys": list(self.drifted_keys),
            "drifts": [d.to_dict() for d in self.drifts],
            "queued_writes": self.queued_writes, "failed_writes": self.failed_writes,
            "reports": [_report_summary(r) for r in self.reports],
            "unanswered": [i.to_dict() for i in self.unanswered],
            "silent": [i.to_dict() for i in self.silent],
            "closed": [i.to_dict() for i in self.closed],
            "skipped": [i.to_dict() for i in self.skipped],
            "skip_unmatched": list(self.skip_unmatched),
            "malformed": [m.to_dict() for m in self.malformed],
            "elapsed_s": round(self.elapsed_s, 3),
        }


def _report_summary(report: VerifyReport) -> dict[str, Any]:
    summary = report.to_dict()
    summary["drifts"] = len(report.drifts)
    return summary


ProgressFn = Callable[[VerifyProgress], None]


def verify(url: UrlLike = None, *, table: str | None = None,
           timeout: float = DEFAULT_TIMEOUT_S, skip: Sequence[str] = (),
           progress: ProgressFn | None = None) -> VerifyResult:
    """Ask every live instance to compare its dict with the database, and merge the answers.

    Each instance re-reads a key before calling it drift (see `JobStore.verify`). The call
    waits until every instance that was live and running when the request was made has
    answered, closed its store or stopped beating, or ``timeout`` seconds; those that did
    not answer are named in ``unanswered`` (live) and ``silent`` (hung or killed), and
    either makes the exit code TIMEOUT. ``skip`` names instances not to wait for (an id or
    a unique prefix of one each), logged as ``admin.skipped``.
    """
    with open_target(url, table) as target:
        return verify_in(target, timeout=timeout, skip=skip, progress=progress)


def verify_in(target: Target, *, timeout: float, skip: Sequence[str] = (),
              progress: ProgressFn | None = None, command: str = "verify") -> VerifyResult:
    """`verify` on a database that is already open (cutover uses it): the request, then the
    wait for every instance live when it was made (`jobstore.admin.barrier`)."""
    started = time.monotonic()
    request_id = target.control.request_verify(actor())
    roll = roll_call(target, skip, command=command, started_before=utcnow())
    answers: dict[str, str] = {}

    def answered(_: dict[str, InstanceInfo]) -> set[str]:
        answers.update(target.control.reports(request_id))
        return set(answers)

    def show(state: Wait) -> None:
        if progress is not None:
            progress(VerifyProgress(request_id, tuple(roll.expected.values()),
                                    tuple(i.instance_id for i in state.answered),
                                    state.elapsed_s, timeout))

    state = wait_for(target, roll, answered, timeout=timeout, progress=show)
    reports, malformed = _read_answers(answers)
    return VerifyResult(
        url=target.url, table=target.table, source="instances", request_id=request_id,
        reports=reports, unanswered=state.waiting, silent=state.silent, closed=state.closed,
        skipped=roll.skipped, skip_unmatched=roll.unmatched,
        elapsed_s=time.monotonic() - started, malformed=malformed,
    )


def _read_answers(answers: dict[str, str]
                  ) -> tuple[tuple[VerifyReport, ...], tuple[MalformedReport, ...]]:
    reports: list[VerifyReport] = []
    malformed: list[MalformedReport] = []
    for instance_id in sorted(answers):
        try:
            reports.append(parse_report(answers[instance_id]))
        except ValueError as exc:
            malformed.append(MalformedReport(cut(instance_id, 64),
                                             cut(str(exc), MAX_ERROR_CHARS)))
    return tuple(reports), tuple(malformed)


def verify_snapshot(file: str | os.PathLike[str], url: UrlLike = None, *,
                    table: str | None = None) -> VerifyResult:
    """Compare a `JobStore.dump_memory` file with the database, key by key.

    The file says which table it was dumped from; that table is used unless ``table`` is
    given, and a different ``table`` is an error. The dump is a moment in the past, so a row
    updated after it was taken is reported as changed with a note saying so.
    """
    dump = read_dump(file)
    if table is not None and dump.table and table != dump.table:
        raise JobStoreError(
            f"{os.fspath(file)} is a dump of table {dump.table!r}, not {table!r}")
    dumped_at = dump.dumped_time
    jobs = dump.jobs
    started = time.monotonic()
    with open_target(url, table or dump.table) as target:
        drifts: list[Drift] = [Drift(key, DriftKind.UNENCODABLE,
                                     detail="the value could not be encoded when dumped")
                               for key in dump.unencodable]
        for batch in key_batches(sorted(jobs)):
            stored = target.rows.get_many(batch)
            for key in batch:
                row = stored.get(key)
                drift = _judge_snapshot(key, jobs[key], None if row is None else row.payload)
                if drift is not None:
                    drifts.append(_note_newer(target, drift, dumped_at))
        report = VerifyReport(
            instance_id=dump.instance_id or "snapshot", stage=dump.stage or "unknown",
            checked=len(jobs), drifts=tuple(drifts), source="snapshot",
            extra={"dumped_at": dump.dumped_at},
        )
        return VerifyResult(url=target.url, table=target.table, source="snapshot",
                            request_id=None, reports=(report,),
                            elapsed_s=time.monotonic() - started, snapshot=os.fspath(file))


def _judge_snapshot(key: str, memory: Any, payload: str | None) -> Drift | None:
    if payload is None:
        return Drift(key, DriftKind.MISSING_IN_DB)
    try:
        stored = read_document(key, payload)
    except DecodeError as exc:
        return Drift(key, DriftKind.UNDECODABLE, detail=exc.reason)
    if stored == memory and type(stored) is type(memory):
        return None
    return Drift(key, DriftKind.CHANGED, tuple(diff_documents(memory, stored)))


def _note_newer(target: Target, drift: Drift, dumped_at: datetime | None) -> Drift:
    if drift.kind is not DriftKind.CHANGED or dumped_at is None:
        return drift
    row = target.rows.row(drift.key)
    if row is None:
        return drift
    if as_utc(row.updated_at) > dumped_at:
        return Drift(drift.key, drift.kind, drift.fields,
                     detail=f"the row was written after the dump (by {row.written_by} at "
                            f"{as_utc(row.updated_at).isoformat()})")
    return drift

