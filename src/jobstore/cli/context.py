"""What every command shares: the options of the group, and turning a failure into one line."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol, TypeVar

import click
from sqlalchemy.exc import SQLAlchemyError

from .. import config
from ..admin.exits import ExitCode
from ..db.redact import password, reason, scrub
from ..exceptions import JobStoreError
from . import render


@dataclass(frozen=True)
class Settings:
    """The group's options: where the jobs are, and whether to show tracebacks."""

    url: str | None
    table: str | None
    debug: bool

    @property
    def secret(self) -> str | None:
        """The URL's password, only to scrub it from messages."""
        return password(config.url(self.url))


def settings() -> Settings:
    ctx = click.get_current_context()
    found = ctx.find_object(Settings)
    return found if found is not None else Settings(None, None, False)


class CommandFailed(click.ClickException):
    """A failure already phrased for a person: printed as one line, exit code 2."""

    exit_code = ExitCode.ERROR


def one_line(exc: BaseException, secret: str | None) -> str:
    """What went wrong, in one line, without a password."""
    if isinstance(exc, JobStoreError):
        text = str(exc)
    elif isinstance(exc, SQLAlchemyError):
        text = f"database error: {reason(exc)}"
    elif isinstance(exc, OSError):
        text = f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
    elif isinstance(exc, ValueError):
        text = str(exc)
    else:
        text = f"unexpected {type(exc).__name__}: {exc} (rerun with --debug for the traceback)"
    return scrub(" ".join(text.split()), secret) or type(exc).__name__


def finish(code: ExitCode) -> NoReturn:
    """Leave the command with ``code``."""
    click.get_current_context().exit(code)


class Result(Protocol):
    """What every `jobstore.admin` function returns."""

    @property
    def exit_code(self) -> ExitCode: ...

    def to_dict(self) -> dict[str, Any]: ...


R = TypeVar("R", bound=Result)


def report(result: R, as_json: bool, show: Callable[[R], None]) -> NoReturn:
    """Print ``result`` (as one JSON document, or as ``show`` draws it), and exit with its
    code."""
    if as_json:
        render.emit_json(result.to_dict())
    else:
        show(result)
    finish(result.exit_code)
