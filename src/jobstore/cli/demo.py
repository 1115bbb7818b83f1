"""``jobstore demo``: the command that runs `jobstore.demo`, handing it this CLI to run commands.

The demo runs its ``jobstore`` commands in this process, through the group this command was
invoked from (the same parsing, rendering and exit codes as the console script), so it needs
no import of the CLI and the CLI needs nothing from the demo but `run_demo`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click

from ..admin.exits import ExitCode
from ..demo.narrator import RunCommand
from ..demo.run import FolderNotEmpty, run_demo


def _runner(group: click.Command) -> RunCommand:
    """Run ``jobstore ARGS`` through ``group`` and return its exit code."""
    def run(args: Sequence[str]) -> int:
        try:
            group.main(list(args), prog_name="jobstore")
        except SystemExit as exc:
            return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else
                                                               ExitCode.ERROR)
        return 0
    return run


@click.command("demo")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              help="Run in this new or empty folder (kept afterwards) instead of a fresh "
                   "temporary one.")
@click.option("--keep", is_flag=True,
              help="Keep the temporary folder (database, server logs) to look at afterwards.")
@click.option("--fast", is_flag=True, help="No pauses between the steps.")
@click.pass_context
def demo(ctx: click.Context, directory: Path | None, keep: bool, fast: bool) -> None:
    """Run the whole migration, end to end and narrated, on an SQLite file in a fresh folder.

    Two servers of the seed's presentation service run as real processes; every stage change,
    verify and cutover is the real jobstore command. About half a minute.
    """
    try:
        code = run_demo(_runner(ctx.find_root().command), directory=directory, keep=keep,
                        fast=fast)
    except FolderNotEmpty as exc:
        raise click.UsageError(str(exc)) from exc
    if code:
        raise SystemExit(code)
