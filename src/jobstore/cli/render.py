"""Output: rich tables for people on stdout, one JSON document for programs, progress on
stderr. Everything that came from users or the database goes through `esc`, so a key such as
``[red]x`` prints as written."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..admin import (
    BarrierProgress,
    BarrierResult,
    CutoverOutcome,
    CutoverResult,
    ExportResult,
    HistoryResult,
    ImportResult,
    InitResult,
    InstanceInfo,
    LsResult,
    ShowResult,
    StageChange,
    StatusResult,
    VerifyProgress,
    VerifyResult,
)
from ..timefmt import as_utc, utcnow

VALUE_WIDTH = 60
OK = "[green]✓[/green]"
BAD = "[red]✗[/red]"
WARN = "[yellow]![/yellow]"


def stdout() -> Console:
    return Console(highlight=False)


def stderr() -> Console:
    return Console(stderr=True, highlight=False)


def esc(value: Any) -> str:
    """User data made safe to embed in rich markup."""
    return escape(str(value))


def emit_json(document: Any) -> None:
    """Exactly one JSON document on stdout."""
    click.echo(json.dumps(document, indent=2, ensure_ascii=False, default=str))


def compact(value: Any, width: int = VALUE_WIDTH) -> str:
    """A JSON value on one short line."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= width else text[:width - 1] + "…"


def age(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def when(value: datetime | None) -> str:
    if value is None:
        return "never"
    moment = as_utc(value)
    ago = (utcnow() - moment).total_seconds()
    return f"{moment.strftime('%Y-%m-%d %H:%M:%S')} UTC ({age(max(ago, 0))} ago)"


# status ------------------------------------------------------------------------------------

def stage_only(result: StatusResult) -> None:
    out = stdout()
    if result.stage is None:
        out.print(f"{WARN} {esc(result.stage_invalid)}" if result.stage_invalid else
                  f"{WARN} no stage set for table {esc(result.table)}: run `jobstore init`")
        return
    out.print(f"[bold cyan]{esc(result.stage)}[/bold cyan]  (table {esc(result.table)}, set "
              f"{when(result.changed_at)} by {esc(result.changed_by)})")
    behind = [i for i in result.live if i.stage != result.stage]
    for i in behind:
        out.print(f"{WARN} {esc(i.name)} runs {esc(i.stage)}"
                  + (" (pinned by JOBSTORE_STAGE)" if i.pinned else ""))


def stage_change(result: StageChange) -> None:
    out = stdout()
    if result.refused:
        out.print(f"{BAD} refused: {esc(result.refused)}")
        return
    if result.changed:
        out.print(f"{OK} stage of {esc(result.table)}: {esc(result.previous)} → "
                  f"[bold cyan]{esc(result.stage)}[/bold cyan]")
    else:
        out.print(f"{OK} stage of {esc(result.table)} is already "
                  f"[bold cyan]{esc(result.stage)}[/bold cyan]")
    if result.changed and result.hidden_jobs:
        out.print(f"{WARN} forced: {result.hidden_jobs} of the {result.jobs_in_db} job(s) in "
                  "the database are held by no live instance that answered; the service does "
                  "not see them in memory")
    if result.barrier is not None:
        barrier(result.barrier)


def barrier(result: BarrierResult) -> None:
    out = stdout()
    if not (result.reached or result.missing or result.pinned or result.silent):
        out.print("  no live instance: processes read the stage when they start")
    elif result.ok:
        out.print(f"{OK} every live instance runs {esc(result.stage)} "
                  f"({len(result.reached)} after {result.elapsed_s:.1f} s)")
    else:
        out.print(f"{BAD} not every live instance runs {esc(result.stage)} after "
                  f"{result.elapsed_s:.1f} s:")
        for i in result.missing:
            out.print(f"  {esc(i.name)} still runs {esc(i.stage)} "
                      f"(heartbeat {age(i.heartbeat_age_s)} ago)")
    for i in result.pinned:
        out.print(f"{WARN} {esc(i.name)} is pinned to {esc(i.pinned)} by JOBSTORE_STAGE and "
                  "will not follow")
    for i in result.silent:
        out.print(f"{BAD} {esc(i.silence)}: it stopped beating before it ran "
                  f"{esc(result.stage)}")
    skipped_and_closed(result.skipped, result.closed, result.skip_unmatched)


def skipped_and_closed(skipped: tuple[InstanceInfo, ...], closed: tuple[InstanceInfo, ...],
                       unmatched: tuple[str, ...]) -> None:
    out = stdout()
    for name in unmatched:
        out.print(f"{WARN} --skip {esc(name)}: no listed instance has that id (gone from the "
                  "listing already?); nothing of that name is waited for")
    for i in skipped:
        out.print(f"{WARN} skipped {esc(i.instance_id)} ({esc(i.name)}) as asked (--skip): "
                  "not waited for")
    for i in closed:
        out.print(f"  {esc(i.name)} closed its store meanwhile (its dict was written back)")


# verify ------------------------------------------------------------------------------------

def verify(result: VerifyResult) -> None:
    out = stdout()
    if result.source == "snapshot":
        out.print(f"verify [bold]{esc(result.snapshot)}[/bold] against table "
                  f"{esc(result.table)} at {esc(result.url)}: {result.checked} key(s) checked")
    else:
        out.print(f"verify table {esc(result.table)} at {esc(result.url)}: "
                  f"{len(result.reports)} instance(s) answered in {result.elapsed_s:.1f} s, "
                  f"{result.checked} key(s) checked")
    if (result.source != "snapshot" and not result.reports and not result.unanswered
            and not result.silent and not result.skipped):
        out.print(f"{BAD} no live instance to ask (none has beaten within 3 sync intervals). "
                  "To check a dump instead: jobstore verify --snapshot FILE")
    for i in result.unanswered:
        out.print(f"{BAD} no answer from {esc(i.name)} (stage {esc(i.stage)}, heartbeat "
                  f"{age(i.heartbeat_age_s)} ago)")
    for i in result.silent:
        out.print(f"{BAD} no answer from {esc(i.silence)}; its dict was not checked")
    skipped_and_closed(result.skipped, result.closed, result.skip_unmatched)
    for m in result.malformed:
        out.print(f"{BAD} the answer of {esc(m.instance_id)} is malformed: {esc(m.reason)}")
    for report in result.reports:
        if report.queued_writes or report.failed_writes:
            out.print(f"{WARN} {esc(report.instance_id)}: {report.queued_writes} write(s) "
                      f"queued, {report.failed_writes} failed")
    drifts = result.drifts
    if drifts:
        keys = len(result.drifted_keys)
        out.print(f"{BAD} {len(drifts)} drift(s) in {keys} key(s)")
        table = Table(show_lines=False)
        for name in ("key", "kind", "instance", "field", "in memory", "in database"):
            table.add_column(name, overflow="fold")
        for item in drifts:
            d = item.drift
            if d.fields:
                for n, f in enumerate(d.fields):
                    table.add_row(esc(d.key) if n == 0 else "", d.kind.value if n == 0 else "",
                                  esc(item.instance_id) if n == 0 else "", esc(f.path),
                                  esc(compact(f.memory)), esc(compact(f.db)))
                if d.detail:
                    table.add_row("", "", "", "", f"[dim]{esc(d.detail)}[/dim]", "")
            else:
                table.add_row(esc(d.key), d.kind.value, esc(item.instance_id), "",
                              f"[dim]{esc(d.detail or '')}[/dim]", "")
        out.print(table)
    elif result.consistent:
        out.print(f"{OK} consistent: every dict matches the database")


@contextmanager
def verify_progress(timeout: float) -> Iterator[Callable[[VerifyProgress], None]]:
    with stderr().status("asking every live instance to verify…") as spinner:
        def update(p: VerifyProgress) -> None:
            waiting = [i.name for i in p.expected if i.instance_id not in p.answered]
            spinner.update(f"verify: {len(p.answered)}/{len(p.expected)} answered, "
                           f"{p.elapsed_s:.1f} of {timeout:g} s"
                           + (f"; waiting for {esc(', '.join(waiting[:3]))}" if waiting else ""))
        yield update


class CutoverDisplay:
    """The live line on stderr while cutover verifies and waits; paused for the prompt."""

    def __init__(self, spinner: Any, timeout: float) -> None:
        self._spinner = spinner
        self._timeout = timeout

    def __call__(self, p: VerifyProgress | BarrierProgress) -> None:
        if isinstance(p, VerifyProgress):
            self._spinner.update(f"cutover: verify {len(p.answered)}/{len(p.expected)} "
                                 f"answered, {p.elapsed_s:.1f} of {self._timeout:g} s")
        else:
            self._spinner.update(f"cutover: {len(p.reached)} instance(s) run "
                                 f"{esc(p.stage)}, waiting for {len(p.waiting)}, "
                                 f"{p.elapsed_s:.1f} of {self._timeout:g} s")

    @contextmanager
    def paused(self) -> Iterator[None]:
        self._spinner.stop()
        try:
            yield
        finally:
            self._spinner.start()


@contextmanager
def cutover_progress(timeout: float) -> Iterator[CutoverDisplay]:
    with stderr().status("cutover: verifying…") as spinner:
        yield CutoverDisplay(spinner, timeout)


@contextmanager
def barrier_progress(timeout: float) -> Iterator[Callable[[BarrierProgress], None]]:
    with stderr().status("waiting for the live instances…") as spinner:
        def update(p: BarrierProgress) -> None:
            spinner.update(f"{len(p.reached)} instance(s) run {esc(p.stage)}, waiting for "
                           f"{len(p.waiting)}, {p.elapsed_s:.1f} of {timeout:g} s")
        yield update


# cutover -----------------------------------------------------------------------------------

def plan(steps: tuple[str, ...]) -> None:
    err = stderr()
    err.print("[bold]cutover plan[/bold]")
    for n, step in enumerate(steps, start=1):
        err.print(f"  {n}. {esc(step)}")


def cutover(result: CutoverResult) -> None:
    out = stdout()
    if result.verify is not None:
        verify(result.verify)
    headline = {
        CutoverOutcome.DONE: f"{OK} cutover done: table {esc(result.table)} runs db_only",
        CutoverOutcome.ALREADY: f"{OK} table {esc(result.table)} already runs db_only",
        CutoverOutcome.DRY_RUN: f"{OK} dry run: verify passed; nothing was changed",
        CutoverOutcome.REFUSED: f"{BAD} cutover refused; the stage stays "
                                f"{esc(result.previous)}",
        CutoverOutcome.UNVERIFIED: f"{BAD} cutover refused: not every live instance answered "
                                   f"verify; the stage stays {esc(result.previous)}",
        CutoverOutcome.CANCELLED: f"{BAD} cutover cancelled; the stage stays "
                                  f"{esc(result.previous)}",
        CutoverOutcome.BARRIER_TIMEOUT: f"{BAD} db_only is set, but not every live instance "
                                        "runs it yet",
    }[result.outcome]
    if result.outcome is CutoverOutcome.DRY_RUN and result.reasons:
        headline = f"{WARN} dry run: would cut over with --force; nothing was changed"
    out.print(headline)
    for reason in result.reasons:
        marker = WARN if result.forced else BAD
        out.print(f"  {marker} {esc(reason)}" + (" (forced)" if result.forced else ""))
    if result.outcome is CutoverOutcome.DRY_RUN:
        out.print("[bold]plan[/bold]")
        for n, step in enumerate(result.plan, start=1):
            out.print(f"  {n}. {esc(step)}")
    if result.outcome in (CutoverOutcome.REFUSED, CutoverOutcome.UNVERIFIED) and not result.forced:
        out.print("  fix the cause and run cutover again, or pass --force to cut over anyway")
    if result.barrier is not None:
        barrier(result.barrier)


# jobs --------------------------------------------------------------------------------------

def show(result: ShowResult) -> None:
    out = stdout()
    row = result.row
    if row is None:
        out.print(f"{BAD} no job {esc(repr(result.key))} in the table")
        return
    out.print(f"[bold]{esc(row.key)}[/bold]  status {esc(row.status)}, version {row.version}, "
              f"written by {esc(row.written_by)}")
    out.print(f"created {when(row.created_at)}, updated {when(row.updated_at)}")
    if result.undecodable is not None:
        out.print(f"{BAD} {esc(result.undecodable)}", soft_wrap=True)
        return
    out.print(esc(json.dumps(result.document, indent=2, ensure_ascii=False)))


def history(result: HistoryResult) -> None:
    out = stdout()
    if not result.entries:
        out.print(f"{BAD} no history for {esc(repr(result.key))}")
        return
    table = Table(title=f"history of {esc(result.key)}", title_justify="left")
    for name in ("version", "op", "status", "at", "written by", "changed"):
        table.add_column(name, overflow="fold")
    for entry in result.entries:
        e = entry.event
        if e.op == "delete":
            changed = "deleted"
        elif not entry.changes:
            changed = "created" if entry is result.entries[0] else "(no change)"
        else:
            changed = "\n".join(f"{esc(c.path)}: {esc(compact(c.memory, 30))} → "
                                f"{esc(compact(c.db, 30))}" for c in entry.changes)
        table.add_row(str(e.version), esc(e.op), esc(e.status or ""), when(e.at),
                      esc(e.written_by), changed)
    out.print(table)


def ls(result: LsResult) -> None:
    out = stdout()
    table = Table()
    for name in ("key", "status", "version", "updated", "written by"):
        table.add_column(name, overflow="fold")
    for row in result.rows:
        table.add_row(esc(row.key), esc(row.status or ""), str(row.version),
                      when(row.updated_at), esc(row.written_by))
    out.print(table)
    which = f" with status {esc(result.status)}" if result.status is not None else ""
    out.print(f"{len(result.rows)} of {result.total} job(s){which}, most recently updated first")


def init(result: InitResult) -> None:
    out = stdout()
    made = ", ".join(result.created) if result.created else "none (all existed)"
    out.print(f"{OK} table {esc(result.table)} at {esc(result.url)}; tables created: {esc(made)}")
    if result.repaired:
        out.print(f"{OK} stage repaired: {esc(result.repaired)}")
    elif result.seeded:
        out.print(f"{OK} stage set to [bold cyan]{esc(result.stage)}[/bold cyan]")
    else:
        out.print(f"  the stage was already [bold cyan]{esc(result.stage)}[/bold cyan] and "
                  "stays so (change it with `jobstore stage`)")


def exported(result: ExportResult, console: Console) -> None:
    """The summary; each row left out on a line of its own on stderr, naming its key."""
    where, left = esc(result.path) if result.path else "stdout", len(result.left_out)
    for problem in result.left_out:
        stderr().print(f"{BAD} left out: {esc(problem)}", soft_wrap=True)
    console.print(f"{BAD if left else OK} exported {result.count} job(s) from "
                  f"{esc(result.table)} to {where}" + (f", {left} left out" if left else ""),
                  soft_wrap=True)


def imported(result: ImportResult) -> None:
    stdout().print(
        f"{OK} imported {esc(result.path)} into {esc(result.table)}: {result.inserted} "
        f"inserted, {result.updated} updated, {result.kept} kept (the database's row was as "
        "new or newer)")
