"""How the demo speaks: act headings, narrated lines, real ``jobstore`` commands with their real
output and exit codes, and waits that fail the demo when they time out."""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Callable, Sequence

from rich.console import Console
from rich.markup import escape

from ..admin.exits import ExitCode
from .stopping import DemoFailure, checkpoint

RunCommand = Callable[[Sequence[str]], int]
"""Runs ``jobstore ARGS`` to its end, printing to this process's stdout and stderr as the console
script would, and returns its exit code. The CLI passes one, so the demo never imports the CLI."""

PAUSE_S = 0.4
RENDER_TIMEOUT_S = 30.0


class Narrator:
    """The console the demo speaks on and the command runner it was handed."""

    def __init__(self, console: Console, run_command: RunCommand, act_titles: Sequence[str], *,
                 fast: bool) -> None:
        self.console = console
        self.run_command = run_command
        self.act_titles = act_titles
        self.fast = fast
        self.act = 0
        self.commands = 0

    def heading(self) -> None:
        """Open the next act (after a pause, unless fast)."""
        checkpoint()
        self.act += 1
        if self.act > 1 and not self.fast:
            time.sleep(PAUSE_S)
        self.console.print()
        self.console.rule(
            f"[bold cyan]{self.act}/{len(self.act_titles)}  "
            f"{escape(self.act_titles[self.act - 1])}",
            align="left")

    def say(self, text: str) -> None:
        checkpoint()
        self.console.print(f"[italic]{text}[/]")

    def step(self, text: str) -> None:
        checkpoint()
        self.console.print(f"  [blue]▸[/] {text}")

    def ok(self, text: str) -> None:
        checkpoint()
        self.console.print(f"  [bold green]✓[/] {text}")

    def lost(self, text: str) -> None:
        checkpoint()
        self.console.print(f"  [bold red]✗[/] {text}")

    def cli(self, *args: str, expect: int = 0, meaning: str | None = None) -> None:
        """Run a real ``jobstore`` command and show its real output.

        It goes through the command runner the demo was handed: the CLI's own entry point in
        this process (the same parsing, library calls, rendering and exit code as the console
        script, without starting and importing a second interpreter each time, which costs a
        second or two apiece).
        """
        shown = "jobstore " + shlex.join(args)
        self.console.print(f"[bold]$ {escape(shown)}[/]")
        sys.stdout.flush()
        started = time.monotonic()
        try:
            code = self.run_command([str(arg) for arg in args])
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
        if code == ExitCode.INTERRUPTED:
            raise KeyboardInterrupt
        checkpoint()
        self.commands += 1
        took = time.monotonic() - started
        if code != expect:
            raise DemoFailure(f"`{shown}` exited {code}; expected {expect}")
        note = f" ({meaning})" if meaning else ""
        self.console.print(f"[dim]  ↳ exit {code}{escape(note)}, {took:.1f} s[/]")

    def wait_for(self, what: str, check: Callable[[], bool],
                 timeout: float = RENDER_TIMEOUT_S) -> float:
        """Poll ``check`` until it holds; the seconds it took."""
        started = time.monotonic()
        deadline = started + timeout
        while not check():
            checkpoint()
            if time.monotonic() > deadline:
                raise DemoFailure(f"timed out after {timeout:g} s waiting for {what}")
            time.sleep(0.05)
        return time.monotonic() - started
