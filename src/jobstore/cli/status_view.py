"""`jobstore status` for people: the stage, the jobs, the instances and the queue journals."""

from __future__ import annotations

from rich.table import Table

from ..admin import InstanceInfo, StatusResult
from .render import WARN, age, esc, stdout, when


def status(result: StatusResult) -> None:
    out = stdout()
    out.print(f"[bold]table[/bold]  {esc(result.table)} at {esc(result.url)}")
    if result.stage is None:
        out.print(f"[bold]stage[/bold]  {WARN} none set: run `jobstore init`")
    else:
        why = f": {esc(result.reason)}" if result.reason else ""
        out.print(f"[bold]stage[/bold]  [bold cyan]{esc(result.stage)}[/bold cyan]  "
                  f"set {when(result.changed_at)} by {esc(result.changed_by)}{why}")
    counts = ", ".join(f"{esc(k)} {v}" for k, v in result.jobs_by_status.items())
    out.print(f"[bold]jobs[/bold]   {result.jobs}" + (f"  ({counts})" if counts else ""))
    out.print()
    live, stale = result.live, result.stale
    if live:
        out.print(instance_table(f"Live instances ({len(live)})", live, result.stage))
    else:
        out.print("[bold]Live instances[/bold]: none (no heartbeat within 3 sync intervals)")
    if stale:
        out.print(instance_table(
            f"Stale instances ({len(stale)}): no heartbeat lately; figures as of their last",
            stale, None, dim=True))
    for journal in result.journals:
        whose = ("held by an open store" if journal.held
                 else "no open store holds it: the next one opened on this database replays it")
        out.print(f"{WARN} queue journal {esc(journal.path)}: {journal.writes} write(s) the "
                  f"database has not taken, {whose}")


def instance_table(title: str, items: tuple[InstanceInfo, ...], stage: str | None,
                   dim: bool = False) -> Table:
    table = Table(title=title, title_justify="left", style="dim" if dim else "")
    for name in ("host", "pid", "stage", "heartbeat", "dict", "queued", "failed",
                 "mismatches", "last error"):
        table.add_column(name, justify="right" if name in (
            "pid", "dict", "queued", "failed", "mismatches") else "left", overflow="fold")
    for i in items:
        running = esc(i.stage)
        if i.pinned:
            running += f" [yellow](pinned {esc(i.pinned)})[/yellow]"
        elif stage is not None and i.stage != stage:
            running = f"[yellow]{running}[/yellow]"
        table.add_row(
            esc(i.host), str(i.pid), running, f"{age(i.heartbeat_age_s)} ago",
            str(i.memory_items), _red_if(i.queued_writes), _red_if(i.failed_writes),
            _red_if(i.shadow_mismatches), esc(i.last_error or ""),
        )
    return table


def _red_if(count: int) -> str:
    return f"[red]{count}[/red]" if count else "0"
