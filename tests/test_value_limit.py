"""A value larger than the database takes in one write fails before anything is written.

Issue 11 point 3: on MariaDB a 17 MB value (over ``max_allowed_packet``) failed its drain batch
as a whole in ``dual_write`` and held every later write back; in ``db_only`` the caller read
"MySQL server has gone away". Now every stage raises `ValueTooLargeError` (an `EncodeError`)
naming the key, its size and the limit, before the dict or the database changes, and later
writes land. The limits are the real ones: MariaDB's ``max_allowed_packet`` read from the
server, SQLite's ``SQLITE_LIMIT_LENGTH`` of a connection that lowered it.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, event, text

from conftest import SERVER_URLS, drop_table, require_backend
from jobstore import EncodeError, JobStore, Stage, ValueTooLargeError
from jobstore.codec import Codec
from jobstore.db.engine import create_store_engine
from jobstore.db.limits import STATEMENT_ROOM, mysql_bytes

SQLITE_LIMIT_LENGTH = 0
"""``sqlite3.SQLITE_LIMIT_LENGTH`` (Python 3.11+; the checker reads 3.10's stubs)."""
SQLITE_LIMIT = 2_000_000
WORST_KEY = "\U0001f600" * 255
"""The longest key, in characters of four bytes: the most room a key takes in a statement."""
WORST_STATUS = "\U0001f600" * 64


def stored(url: str, table: str) -> tuple[dict[str, Any], int]:
    """The job table's rows and how many history events it has, read past the store."""
    column = "`key`" if url.startswith("mysql") else '"key"'
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = {key: json.loads(payload) for key, payload in
                    conn.execute(text(f"SELECT {column}, payload FROM {table}"))}
            events = int(conn.execute(text(f"SELECT count(*) FROM {table}_events")).scalar_one())
    finally:
        engine.dispose()
    return rows, events


# MariaDB ---------------------------------------------------------------------------------------

@pytest.fixture
def mariadb() -> Iterator[tuple[str, str]]:
    """The shared MariaDB's URL and a table of the test's own, dropped afterwards; the longest
    table name there may be, so that the statement takes all the room it can."""
    require_backend("mysql")
    url = SERVER_URLS["mysql"]
    table = f"t_{uuid.uuid4().hex}"[:48].ljust(48, "x")
    yield url, table
    drop_table(url, table)


def max_allowed_packet(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT @@max_allowed_packet")).scalar_one())
    finally:
        engine.dispose()


@pytest.mark.parametrize("stage", list(Stage))
def test_a_17_mb_value_on_mariadb_raises_before_anything_is_written_and_later_writes_land(
        mariadb: tuple[str, str], stage: Stage) -> None:
    """In every stage, ``memory`` too (so a job that works there does not fail at the switch
    to ``dual_write``): the error names the key, its size and the limit; the dict, the row and
    its history keep what they had; the next write is not held back."""
    url, table = mariadb
    with JobStore(url, table=table, stage=stage) as jobs:
        jobs["a"] = {"n": 0}
        with pytest.raises(ValueTooLargeError) as too_large:
            jobs["a"] = {"n": 1, "blob": "x" * 17_000_000}
        jobs["b"] = {"n": 2}
        assert jobs["a"] == {"n": 0}
        assert jobs.stats()["queued_writes"] == 0
    error = too_large.value
    assert isinstance(error, EncodeError)
    assert error.key == "a"
    assert error.size > 17_000_000
    assert error.limit == max_allowed_packet(url) - 2 - STATEMENT_ROOM
    assert f"{error.size:,}" in str(error)
    assert "max_allowed_packet" in str(error)
    expected = ({}, 0) if stage is Stage.MEMORY else ({"a": {"n": 0}, "b": {"n": 2}}, 2)
    assert stored(url, table) == expected


def test_update_and_modify_check_every_value_first(mariadb: tuple[str, str]) -> None:
    """``update`` writes none of its jobs when one is too large; ``modify`` writes nothing
    when ``fn`` makes the job too large."""
    url, table = mariadb
    with JobStore(url, table=table, stage="db_only") as jobs:
        jobs["a"] = {"n": 0}
        with pytest.raises(ValueTooLargeError, match="'c'"):
            jobs.update({"b": {"n": 1}, "c": {"blob": "x" * 17_000_000}})
        with pytest.raises(ValueTooLargeError, match="'a'"):
            jobs.modify("a", lambda job: {**job, "blob": "x" * 17_000_000})
    assert stored(url, table) == ({"a": {"n": 0}}, 1)


def test_the_limit_counts_the_escapes_the_driver_adds(mariadb: tuple[str, str]) -> None:
    """9 MB of apostrophes is a 9 MB document that PyMySQL sends as 18 MB; MariaDB would drop
    the connection ("server has gone away"), so it is refused first."""
    url, table = mariadb
    with JobStore(url, table=table, stage="db_only") as jobs:
        with pytest.raises(ValueTooLargeError) as too_large:
            jobs["a"] = {"quote": "'" * 9_000_000}
        assert too_large.value.size > 18_000_000
        jobs["b"] = {"n": 1}
    assert stored(url, table) == ({"b": {"n": 1}}, 1)


@pytest.mark.slow
def test_a_value_of_exactly_the_limit_is_written_on_mariadb_and_one_byte_more_is_not(
        mariadb: tuple[str, str]) -> None:
    """With the longest table name, key and status there may be: the room left for the
    statement is enough, and the limit no tighter than it says. (Slow: PyMySQL escapes the
    16 MB a character at a time, twice, and the server stores it twice.)"""
    url, table = mariadb
    most = max_allowed_packet(url) - 2 - STATEMENT_ROOM
    value = {"status": WORST_STATUS, "blob": ""}
    room = most - mysql_bytes(Codec(None).encode(value))
    value["blob"] = "x" * room
    with JobStore(url, table=table, stage="db_only") as jobs:
        jobs[WORST_KEY] = value
        with pytest.raises(ValueTooLargeError):
            jobs["b"] = {**value, "blob": value["blob"] + "x"}
    assert mysql_bytes(Codec(None).encode(value)) == most
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            written = conn.execute(text(f"SELECT length(payload) FROM {table}")).scalar_one()
    finally:
        engine.dispose()
    assert written == len(Codec(None).encode(value).encode())


# SQLite with a lowered SQLITE_LIMIT_LENGTH ------------------------------------------------------

@pytest.fixture
def limited_sqlite(tmp_path: Path) -> Iterator[Engine]:
    """An SQLite file whose connections take strings and rows of at most `SQLITE_LIMIT`
    bytes (``sqlite3.Connection.setlimit``, Python 3.11+)."""
    if not hasattr(sqlite3.Connection, "setlimit"):
        pytest.skip("sqlite3 cannot lower its limits before Python 3.11")
    engine = create_store_engine(f"sqlite:///{tmp_path}/jobs.db")

    @event.listens_for(engine, "connect")
    def _lower(dbapi: Any, _record: Any) -> None:
        dbapi.setlimit(SQLITE_LIMIT_LENGTH, SQLITE_LIMIT)

    yield engine
    engine.dispose()


def test_sqlite_refuses_a_value_over_the_connections_limit_before_writing(
        limited_sqlite: Engine) -> None:
    with JobStore(limited_sqlite, stage="dual_write") as jobs:
        jobs["a"] = {"n": 0}
        with pytest.raises(ValueTooLargeError) as too_large:
            jobs["a"] = {"blob": "x" * SQLITE_LIMIT}
        jobs["b"] = {"n": 1}
        assert jobs.stats()["queued_writes"] == 0
    assert f"SQLITE_LIMIT_LENGTH {SQLITE_LIMIT:,}" in str(too_large.value)
    assert too_large.value.limit == SQLITE_LIMIT - STATEMENT_ROOM
    url = str(limited_sqlite.url)
    assert stored(url, "jobs") == ({"a": {"n": 0}, "b": {"n": 1}}, 2)


def test_a_value_of_exactly_the_limit_is_written_on_sqlite_and_one_byte_more_is_not(
        limited_sqlite: Engine) -> None:
    most = SQLITE_LIMIT - STATEMENT_ROOM
    value = {"status": WORST_STATUS, "blob": ""}
    value["blob"] = "x" * (most - len(Codec(None).encode(value).encode()))
    with JobStore(limited_sqlite, stage="db_only") as jobs:
        jobs[WORST_KEY] = value
        with pytest.raises(ValueTooLargeError):
            jobs["b"] = {**value, "blob": value["blob"] + "x"}
        assert jobs[WORST_KEY] == value
