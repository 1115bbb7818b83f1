"""Commands that read: status, show, history, ls."""

from __future__ import annotations

import click

from .. import admin
from . import render, status_view
from .context import report, settings

JSON_HELP = "Print one JSON document on stdout instead of tables."


@click.command()
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def status(as_json: bool) -> None:
    """Show the stage, every live and stale instance with its figures, and the row counts.

    The URL is printed with its password hidden. Exit 0.
    """
    s = settings()
    result = admin.status(s.url, table=s.table)
    report(result, as_json, status_view.status)


@click.command()
@click.argument("key")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def show(key: str, as_json: bool) -> None:
    """Show the job stored under KEY, as the database holds it.

    Exit 0 when found, 1 when the table has no such key or its payload cannot be decoded (a
    line naming the key says why).
    """
    s = settings()
    result = admin.show(key, s.url, table=s.table)
    report(result, as_json, render.show)


@click.command()
@click.argument("key")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def history(key: str, as_json: bool) -> None:
    """Show every version KEY has had, oldest first, with the fields each one changed.

    Exit 0 when the key has a history, 1 when it has none.
    """
    s = settings()
    result = admin.history(key, s.url, table=s.table)
    report(result, as_json, render.history)


@click.command()
@click.option("--status", "status_", metavar="S", help="Only jobs whose status is S.")
@click.option("--limit", type=click.IntRange(min=0), default=admin.inspect.DEFAULT_LS_LIMIT,
              show_default=True, metavar="N", help="At most N jobs; 0 lists them all.")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def ls(status_: str | None, limit: int, as_json: bool) -> None:
    """List jobs, most recently updated first, with how many match in all. Exit 0."""
    s = settings()
    result = admin.ls(s.url, table=s.table, status=status_, limit=limit or None)
    report(result, as_json, render.ls)
