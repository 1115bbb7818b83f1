"""What every command shares: the options of the group, and turning a failure into one line."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import NoReturn

import click
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from ..admin._target import db_reason, scrub
from ..exceptions import JobStoreError

EXIT_OK = 0
EXIT_DRIFT = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3


@dataclass(frozen=True)
class Settings:
    """The group's options: where the jobs are, and whether to show tracebacks."""

    url: str | None
    table: str | None
    debug: bool

    @property
    def secret(self) -> str | None:
        """The URL's password, only to scrub it from messages."""
        url = self.url or os.environ.get("JOBSTORE_URL")
        if not url:
            return None
        try:
            password = make_url(url).password
        except ArgumentError:
            return None
        return None if password is None else str(password)


def settings() -> Settings:
    ctx = click.get_current_context()
    found = ctx.find_object(Settings)
    return found if found is not None else Settings(None, None, False)


class CommandFailed(click.ClickException):
    """A failure already phrased for a person: printed as one line, exit code 2."""

    exit_code = EXIT_USAGE


def one_line(exc: BaseException, secret: str | None) -> str:
    """What went wrong, in one line, without a password."""
    if isinstance(exc, JobStoreError):
        text = str(exc)
    elif isinstance(exc, SQLAlchemyError):
        text = f"database error: {db_reason(exc)}"
    elif isinstance(exc, OSError):
        text = f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
    elif isinstance(exc, ValueError):
        text = str(exc)
    else:
        text = f"unexpected {type(exc).__name__}: {exc} (rerun with --debug for the traceback)"
    return scrub(" ".join(text.split()), secret) or type(exc).__name__


def finish(code: int) -> NoReturn:
    """Leave the command with ``code``."""
    click.get_current_context().exit(code)
