"""Commands for tables and rows in bulk: init, export, import."""

from __future__ import annotations

import sys

import click

from .. import admin
from ..stages import Stage
from . import render
from .context import finish, report, settings

JSON_HELP = "Print one JSON document on stdout instead of text."


@click.command()
@click.option("--stage", type=click.Choice([s.value for s in Stage]), default=None,
              metavar="S",
              help="The stage to start in, when the table has none yet (default dual_write); "
                   "the stage to repair an invalid control row to.")
@click.option("--sql", "as_sql", is_flag=True,
              help="Print the CREATE statements for the URL's database instead of running "
                   "them (nothing is connected to).")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def init(stage: str | None, as_sql: bool, as_json: bool) -> None:
    """Create the job table, its history and the control tables (idempotent).

    An SQLite file is created (mode 0600) if missing. An existing stage is left as it is; a
    control row that holds no valid stage is repaired: to --stage if given, else to the stage
    every live instance runs, else dual_write.
    With --sql, print the DDL for a DBA to run instead. Exit 0.
    """
    s = settings()
    if as_sql:
        report(admin.ddl(s.url, table=s.table), as_json, _print_script)
    result = admin.init(s.url, table=s.table, stage=stage)
    report(result, as_json, render.init)


def _print_script(result: admin.DdlResult) -> None:
    """The script as it is: not through the console, which would wrap or style it."""
    sys.stdout.write(result.script)


@click.command()
@click.argument("file", required=False, type=click.Path(dir_okay=False, allow_dash=True))
def export(file: str | None) -> None:
    """Write every job as JSON lines to FILE (mode 0600), or to stdout without FILE or with -.

    In insertion order, as a store lists them. Each line has key, payload, status, version,
    created_at, updated_at and written_by. A row whose payload cannot be decoded (not JSON,
    nested too deeply) is left out and named on stderr, and the export goes on. Exit 0; 1 when
    rows were left out.
    """
    s = settings()
    if file is None or file == "-":
        result = admin.export(sys.stdout, s.url, table=s.table)
        render.exported(result, render.stderr())
    else:
        result = admin.export(file, s.url, table=s.table)
        render.exported(result, render.stdout())
    finish(result.exit_code)


@click.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def import_(file: str, as_json: bool) -> None:
    """Backfill jobs from a JSON lines FILE (as export writes it).

    A row is written only where the table has no row for the key or an older one (by
    updated_at): a newer row is never overwritten. Every line is checked before anything is
    written. Exit 0; 2 when a line is malformed (nothing is written).
    """
    s = settings()
    result = admin.import_(file, s.url, table=s.table)
    report(result, as_json, render.imported)
