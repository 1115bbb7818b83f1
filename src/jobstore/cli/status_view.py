"""`jobstore status` for people: the stage, the jobs, the instances and the queue journals."""

from __future__ import annotations

from rich.table import Table

from ..admin import InstanceInfo, StatusResult
from ..db.heartbeat import RECENT_WINDOW_S
from ..db.liveness import STALE_AFTER_INTERVALS, why_pruned
from .render import WARN, age, esc, stdout, when

SHADOW_STAGE = "shadow"
"""Compared reads that disagreed, of those made, since the instance's stage began..."""
SHADOW_RECENT = f"{RECENT_WINDOW_S / 60:g} min"
"""...and over the recent window, whatever the stage."""
CAPTION = (f"{SHADOW_STAGE}: compared reads that disagreed/all compared, in the instance's "
           f"stage; {SHADOW_RECENT}: the same, whatever the stage")
TABLE_ERROR_CHARS = 80
"""The most of an instance's last error the table shows (``--json`` has up to 500)."""



def status(result: StatusResult) -> None:
    out = stdout()
    out.print(f"[bold]table[/bold]  {esc(result.table)} at {esc(result.url)}")
    if result.stage_invalid is not None:
        out.print(f"[bold]stage[/bold]  {WARN} {esc(result.stage_invalid)}")
    elif result.stage is None:
        out.print(f"[bold]stage[/bold]  {WARN} none set: run `jobstore init`")
    else:
        why = f": {esc(result.reason)}" if result.reason else ""
        out.print(f"[bold]stage[/bold]  [bold cyan]{esc(result.stage)}[/bold cyan]  "
                  f"set {when(result.changed_at)} by {esc(result.changed_by)}{why}")
    counts = ", ".join(f"{esc(k)} {v}" for k, v in result.jobs_by_status.items())
    out.print(f"[bold]jobs[/bold]   {result.jobs}" + (f"  ({counts})" if counts else ""))
    out.print()
    for p in result.pruned:
        out.print(f"  removed {esc(p.heartbeat.instance_id)} ({esc(p.heartbeat.host)} pid "
                  f"{p.heartbeat.pid}) from the listing: {esc(why_pruned(p))}")
    live, stale = result.live, result.stale
    if live:
        out.print(instance_table(f"Live instances ({len(live)})", live, result.stage))
    else:
        out.print(f"[bold]Live instances[/bold]: none (no heartbeat within "
                  f"{STALE_AFTER_INTERVALS} sync intervals)")
    if stale:
        out.print(instance_table(
            f"Stale instances ({len(stale)}): no heartbeat lately; figures as of their last",
            stale, None, dim=True))
    for i in result.instances:
        if i.malformed:
            out.print(f"{WARN} the heartbeat row of {esc(i.name)} ({esc(i.instance_id)}) is "
                      f"malformed, shown with fallbacks: {esc('; '.join(i.malformed))}")
    for journal in result.journals:
        whose = ("held by an open store" if journal.held
                 else "no open store holds it: the next one opened on this database replays it")
        out.print(f"{WARN} queue journal {esc(journal.path)}: {journal.writes} write(s) the "
                  f"database has not taken, {whose}")


def instance_table(title: str, items: tuple[InstanceInfo, ...], stage: str | None,
                   dim: bool = False) -> Table:
    table = Table(title=title, title_justify="left", style="dim" if dim else "",
                  caption=None if dim else CAPTION, caption_justify="left")
    for name in ("host", "pid", "stage", "heartbeat", "dict", "queued", "failed",
                 SHADOW_STAGE, SHADOW_RECENT, "last error"):
        table.add_column(name, justify="right" if name in (
            "pid", "dict", "queued", "failed", SHADOW_STAGE, SHADOW_RECENT) else "left",
            overflow="fold")
    for i in items:
        running = esc(i.stage)
        if i.pinned:
            running += f" [yellow](pinned {esc(i.pinned)})[/yellow]"
        elif stage is not None and i.stage != stage:
            running = f"[yellow]{running}[/yellow]"
        table.add_row(
            esc(i.host), str(i.pid), running, f"{age(i.heartbeat_age_s)} ago",
            str(i.memory_items), _red_if(i.queued_writes), _red_if(i.failed_writes),
            _shadow(i.shadow_mismatches, i.shadow_checks),
            _shadow(i.recent_shadow_mismatches, i.recent_shadow_checks), _error(i),
        )
    return table


def _shadow(mismatches: int, checks: int) -> str:
    return f"{_red_if(mismatches)}/{checks}"


def _error(i: InstanceInfo) -> str:
    if not i.last_error:
        return ""
    at = "" if i.last_error_at is None else f" [dim]({when(i.last_error_at)})[/dim]"
    shown = i.last_error
    if len(shown) > TABLE_ERROR_CHARS:
        shown = shown[:TABLE_ERROR_CHARS - 1] + "…"
    return esc(shown) + at


def _red_if(count: int) -> str:
    return f"[red]{count}[/red]" if count else "0"
