"""``--debug``: the library's log records on stderr while the command runs, every level, each
line scrubbed of the URL's password (the records carry none; this guards the rule)."""

from __future__ import annotations

import logging

import click

from ..db.redact import scrub

FORMAT = "%(levelname)s %(name)s: %(message)s"


class StderrHandler(logging.Handler):
    """Writes through click, so the line goes where the command's stderr is now."""

    def __init__(self, secret: str | None) -> None:
        super().__init__(logging.DEBUG)
        self.secret = secret
        self.setFormatter(logging.Formatter(FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            click.echo(scrub(self.format(record), self.secret), err=True)
        except Exception:  # a handler never raises into the code that logged
            self.handleError(record)


def show_log_records(ctx: click.Context, secret: str | None) -> None:
    """Until ``ctx`` closes: every ``jobstore`` record on stderr; then the logger as it was."""
    logger = logging.getLogger("jobstore")
    handler = StderrHandler(secret)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)

    def restore() -> None:
        logger.removeHandler(handler)
        logger.setLevel(level)

    ctx.call_on_close(restore)
