"""The ``jobstore`` command: a click group over `jobstore.admin`.

Exit codes: 0 done and consistent; 1 drift found or a change refused; 2 usage, configuration
or connection error (one line on stderr, no traceback unless --debug, never a password);
3 no live instance answered in time, or the instances did not all switch in time.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Sequence
from typing import Any, NoReturn

import click

from .. import __version__
from ..admin.exits import ExitCode
from ..db.redact import scrub
from . import data, demo, inspect, migrate
from .context import CommandFailed, Settings, one_line
from .log_output import show_log_records


class JobstoreGroup(click.Group):
    """A group whose failures are one line on stderr with the documented exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exc:
            found = ctx.find_object(Settings)
            secret = found.secret if found else None
            if found is not None and found.debug:
                click.echo(scrub(traceback.format_exc(), secret), err=True, nl=False)
            raise CommandFailed(one_line(exc, secret)) from exc

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             windows_expand_args: bool = True, **extra: Any) -> NoReturn:
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False,
                                windows_expand_args=windows_expand_args, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.ctx.get_help() if exc.ctx else exc.format_message())
            sys.exit(0)
        except click.UsageError as exc:
            hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx else ""
            _fail(f"{exc.format_message()}{hint}", exc.exit_code)
        except click.ClickException as exc:
            _fail(exc.format_message(), exc.exit_code)
        except click.Abort:
            _fail("interrupted", ExitCode.INTERRUPTED)
        sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"error: {' '.join(message.split())}", err=True)
    sys.exit(code)


@click.group(cls=JobstoreGroup, name="jobstore",
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--url", envvar="JOBSTORE_URL", metavar="URL",
              help="The database (any SQLAlchemy URL). Default: $JOBSTORE_URL, else "
                   "sqlite:///jobstore.db.")
@click.option("--table", envvar="JOBSTORE_TABLE", metavar="NAME",
              help="The job table. Default: $JOBSTORE_TABLE, else jobs.")
@click.option("--debug", is_flag=True,
              help="Print the library's log records on stderr, and the traceback of an error.")
@click.version_option(__version__, prog_name="jobstore")
@click.pass_context
def cli(ctx: click.Context, url: str | None, table: str | None, debug: bool) -> None:
    """Move a service's in-memory jobs into a database in stages you can roll back.

    The stages, in order: memory, dual_write, shadow, db_primary, db_only. Every process
    using the table follows the stage set here within about one sync interval.

    Exit codes: 0 done and consistent; 1 drift found or a change refused; 2 usage,
    configuration or connection error; 3 no live instance answered in time.
    """
    ctx.obj = Settings(url, table, debug)
    if debug:
        show_log_records(ctx, ctx.obj.secret)


for _command in (
    data.init,
    demo.demo,
    inspect.status,
    migrate.stage,
    migrate.verify,
    migrate.cutover,
    migrate.rollback,
    inspect.show,
    inspect.history,
    inspect.ls,
    data.export,
    data.import_,
):
    cli.add_command(_command)


def main() -> NoReturn:
    """The ``jobstore`` console script."""
    cli.main(prog_name="jobstore")


__all__ = ["cli", "main"]
