"""What a person may be shown of a database: its URL with the password hidden, and an error as
one line without its SQL, its parameters or the password."""

from __future__ import annotations

from urllib.parse import quote, quote_plus

from sqlalchemy import Engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

REASON_MAX = 300
"""Characters kept of an error's first line: enough to name the cause, short enough for a
heartbeat row and a log line."""


def safe_url(url: str | URL | Engine) -> str:
    """The URL with its password hidden, for every message a person may see."""
    if isinstance(url, Engine):
        return url.url.render_as_string(hide_password=True)
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        return "<unparseable URL>"


def password(url: str | URL | Engine | None) -> str | None:
    """The URL's password, only so that messages can be scrubbed of it; None without one."""
    if url is None:
        return None
    try:
        parsed = url.url if isinstance(url, Engine) else make_url(url)
    except (ArgumentError, ValueError):
        return None
    found = parsed.password
    return None if found is None else str(found)


def scrub(text: str, secret: str | None) -> str:
    """``text`` with every spelling of ``secret`` (plain, URL-quoted) replaced by ``***``."""
    if not secret:
        return text
    for spelling in {secret, quote(secret, safe=""), quote_plus(secret)}:
        text = text.replace(spelling, "***")
    return text


def reason(exc: BaseException) -> str:
    """One line about a database error: the driver's first line, without the SQL and the
    parameters SQLAlchemy appends, at most ``REASON_MAX`` characters."""
    original = getattr(exc, "orig", None)
    lines = [line.strip() for line in str(original if original is not None else exc).splitlines()]
    lines = [line for line in lines if line]
    return (lines[0] if lines else type(exc).__name__)[:REASON_MAX]
