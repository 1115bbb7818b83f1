"""Commands that move a migration: stage, verify, cutover, rollback."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from .. import admin
from ..admin.exits import ExitCode
from ..admin.verify import DEFAULT_TIMEOUT_S
from ..stages import Stage
from ..timefmt import json_time
from . import render
from .context import finish, report, settings

STAGES = click.Choice([s.value for s in Stage])
JSON_HELP = "Print one JSON document on stdout instead of text."

F = TypeVar("F", bound=Callable[..., Any])
SKIP = click.option(
    "--skip", "skip", multiple=True, metavar="INSTANCE",
    help="Do not wait for this instance (its id, or a unique prefix, as `jobstore status "
         "--json` shows it); repeatable. Printed and logged (admin.skipped).")


def _moves_the_stage(command: F) -> F:
    """The options of a command that sets the stage and waits for the live instances."""
    for option in reversed((
        click.option("--timeout", type=click.FloatRange(min=0), default=DEFAULT_TIMEOUT_S,
                     show_default=True, metavar="S",
                     help="Seconds to wait until every live instance runs the new stage "
                          "(and, before a move into memory, for their held jobs)."),
        click.option("--no-wait", is_flag=True, help="Set the stage and return at once."),
        SKIP,
        click.option("--json", "as_json", is_flag=True, help=JSON_HELP),
    )):
        command = option(command)
    return command


@click.command()
@click.argument("stage", required=False, type=STAGES, metavar="[S]")
@click.option("--force", is_flag=True,
              help="Set db_only without cutover's checks, or memory while jobs in the "
                   "database are in no live dict.")
@_moves_the_stage
def stage(stage: str | None, force: bool, timeout: float, no_wait: bool,
          skip: tuple[str, ...], as_json: bool) -> None:
    """Show the stage every process follows, or set it to S and wait for the live instances.

    S is one of memory, dual_write, shadow, db_primary, db_only. Setting db_only is refused
    (use cutover, which verifies first) and so is memory while the database holds jobs that
    no live instance's dict holds (memory does not read the database), unless --force.
    Exit 0 done, 1 refused, 3 a live instance did not switch within --timeout or stopped
    beating (hung or killed) before it did.
    """
    s = settings()
    if stage is None:
        current = admin.status(s.url, table=s.table)
        if as_json:
            render.emit_json({"table": current.table, "stage": current.stage,
                              "changed_at": json_time(current.changed_at),
                              "changed_by": current.changed_by, "reason": current.reason,
                              "stage_invalid": current.stage_invalid})
        else:
            render.stage_only(current)
        finish(ExitCode.OK)
    with render.barrier_progress(timeout) as progress:
        result = admin.set_stage(stage, s.url, table=s.table, force=force, wait=not no_wait,
                                 timeout=timeout, skip=skip, progress=progress)
    report(result, as_json, render.stage_change)


@click.command()
@click.option("--timeout", type=click.FloatRange(min=0), default=DEFAULT_TIMEOUT_S,
              show_default=True, metavar="S", help="Seconds to wait for the live instances.")
@click.option("--snapshot", type=click.Path(dir_okay=False), metavar="FILE",
              help="Diff a JobStore.dump_memory file against the database instead.")
@SKIP
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def verify(timeout: float, snapshot: str | None, skip: tuple[str, ...], as_json: bool) -> None:
    """Ask every live instance to diff its dict against the database, and report each drift.

    A drift names its key and kind (missing_in_db, changed, write_pending, write_failed,
    unencodable, undecodable) and, for a changed job, each field with the memory value beside
    the database value. Each instance re-reads a key before calling it drift. It waits for
    every instance live when it began, until it answers or closes its store; one that stops
    beating (hung or killed) is named. Exit 0 consistent, 1 drift found, 3 no live instance
    (or not every one) answered in time.
    """
    s = settings()
    if snapshot is not None:
        result = admin.verify_snapshot(snapshot, s.url, table=s.table)
    else:
        with render.verify_progress(timeout) as progress:
            result = admin.verify(s.url, table=s.table, timeout=timeout, skip=skip,
                                  progress=progress)
    report(result, as_json, render.verify)


@click.command()
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--force", is_flag=True,
              help="Cut over despite drift, queued or failed writes, or silent instances.")
@click.option("--dry-run", is_flag=True, help="Verify and print the plan; change nothing.")
@click.option("--timeout", type=click.FloatRange(min=0), default=DEFAULT_TIMEOUT_S,
              show_default=True, metavar="S",
              help="Seconds to wait for verify answers, and again for the switch.")
@SKIP
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def cutover(yes: bool, force: bool, dry_run: bool, timeout: float, skip: tuple[str, ...],
            as_json: bool) -> None:
    """Verify, then set db_only and wait until every live instance runs it.

    Refused on drift, while writes are queued or failed, while an instance is pinned to
    another stage by JOBSTORE_STAGE, or when a live instance does not answer verify (or stops
    beating first: hung or killed; the stage stays), unless --force or --skip names it. Exit
    0 done, 1 refused or cancelled, 3 an instance did not answer verify or did not switch
    within --timeout.
    """
    s = settings()
    with render.cutover_progress(timeout) as display:
        def confirm(steps: tuple[str, ...]) -> bool:
            if yes:
                return True
            with display.paused():
                render.plan(steps)
                try:
                    return click.confirm("Cut over to db_only now?", default=False, err=True)
                except click.Abort:
                    click.echo("\nno answer: pass --yes to cut over without a prompt", err=True)
                    return False

        result = admin.cutover(s.url, table=s.table, force=force, dry_run=dry_run,
                               timeout=timeout, skip=skip, confirm=confirm,
                               progress=display)
    report(result, as_json, render.cutover)


@click.command()
@click.option("--to", "to", type=STAGES, metavar="S", help="Go back to S (an earlier stage).")
@click.option("--force", is_flag=True,
              help="Allow memory while jobs in the database are in no live dict.")
@_moves_the_stage
def rollback(to: str | None, force: bool, timeout: float, no_wait: bool,
             skip: tuple[str, ...], as_json: bool) -> None:
    """Move one stage back (or back to S) and wait until the live instances run it.

    Moving to memory, from any stage, is refused without --force while the database holds
    jobs that no live instance's dict holds, and says how many (the live instances are asked
    which jobs they hold). Leaving db_only, the dicts start empty and fill from the database.
    Exit 0 done, 1 refused, 2 S is not earlier, 3 an instance did not switch in time.
    """
    s = settings()
    with render.barrier_progress(timeout) as progress:
        result = admin.rollback(s.url, table=s.table, to=to, force=force, wait=not no_wait,
                                timeout=timeout, skip=skip, progress=progress)
    report(result, as_json, render.stage_change)
