"""Control rows changed the way an operator (or a campaign) changes them: with the database's
own client, no jobstore code in between; and what the CLI then says about them."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from click.testing import CliRunner, Result
from sqlalchemy import create_engine, text

from jobstore.cli import cli

WAIT_S = 15.0


def tamper(url: str, statement: str, **params: Any) -> None:
    """Run one statement with the database's own client: sqlite3 on SQLite; on PostgreSQL,
    SQLAlchemy's ``text()`` (no jobstore code in between)."""
    if url.startswith("sqlite:///"):
        own = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=10)
        try:
            with own:
                own.execute(statement, params)
        finally:
            own.close()
        return
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(statement), params)
    finally:
        engine.dispose()


def query(url: str, statement: str, **params: Any) -> list[tuple[Any, ...]]:
    """The rows of one read, through SQLAlchemy's ``text()``."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(statement), params)]
    finally:
        engine.dispose()


def jobstore(url: str, table: str, *args: str) -> Result:
    """``jobstore --url URL --table TABLE ARGS...``, run to its end."""
    return CliRunner().invoke(cli, ["--url", url, "--table", table, *args])


def wait_until(check: Callable[[], Any], what: str, timeout: float = WAIT_S) -> Any:
    """``check()``'s first truthy answer, asked every 50 ms; fails after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.05)


def instance(url: str, table: str, instance_id: str) -> dict[str, Any]:
    """One instance as ``jobstore status --json`` lists it."""
    listed = json.loads(jobstore(url, table, "status", "--json").stdout)["instances"]
    found: dict[str, Any] = next(i for i in listed if i["instance_id"] == instance_id)
    return found
