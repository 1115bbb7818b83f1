"""`run_demo`: one narrated run in a folder of its own, with its servers always stopped after.

Only the exit code leaves it: 0 the demo ran to its end, 1 a step failed (the folder is kept,
with the servers' logs), 130 interrupted.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from ..admin.exits import ExitCode
from .acts import Demo
from .narrator import RunCommand
from .service import TABLE
from .stopping import (
    DemoFailure,
    Interrupted,
    signals_ignored,
    signals_interrupt,
)


class FolderNotEmpty(ValueError):
    """The folder given to run in already holds files."""


def run_demo(run_command: RunCommand, *, directory: Path | None = None, keep: bool = False,
             fast: bool = False) -> int:
    """Run the whole demo and return its exit code.

    ``run_command`` runs the ``jobstore`` commands the demo shows. It runs in ``directory``
    (created if need be and kept) or in a fresh temporary folder, removed afterwards unless
    ``keep`` or the demo failed. `FolderNotEmpty` if ``directory`` holds anything.
    """
    console = Console(highlight=False)
    folder, created = _prepare_folder(directory)
    keep = keep or directory is not None
    runner = Demo(console, folder, run_command, fast=fast)
    code = 0
    try:
        with signals_interrupt(), _environment(JOBSTORE_URL=runner.url, JOBSTORE_TABLE=TABLE):
            try:
                runner.run()
            finally:
                with signals_ignored():
                    runner.stop_servers()
    except DemoFailure as exc:
        code = ExitCode.REFUSED
        console.print(f"\n[bold red]The demo stopped: {escape(str(exc))}[/]")
        logs = {server.log_path: server for server in runner.spawned}  # A restarts: one log
        for server in logs.values():
            tail = server.log_tail()
            if tail.strip():
                console.print(f"[dim]server {server.name}'s log ({server.log_path}):[/]")
                console.print(escape(tail), style="dim")
        keep = True
    except (KeyboardInterrupt, Interrupted):
        code = ExitCode.INTERRUPTED
        console.print("\n[bold yellow]Interrupted: the demo's servers are stopped.[/]")
    finally:
        if keep:
            console.print(f"[dim]The folder is kept: {escape(str(folder))}  (try: jobstore "
                          f"--url {escape(runner.url)} --table {TABLE} status)[/]")
        elif created:
            shutil.rmtree(folder, ignore_errors=True)
    return code


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    """The demo's database for the ``jobstore`` commands it runs, as a user would export it."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


def _prepare_folder(directory: Path | None) -> tuple[Path, bool]:
    """The folder to run in and whether the demo created it."""
    if directory is None:
        return Path(tempfile.mkdtemp(prefix="jobstore-demo-")), True
    folder = directory.resolve()
    if folder.exists() and any(folder.iterdir()):
        raise FolderNotEmpty(f"{folder} is not empty; give a new or empty folder")
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    return folder, created
