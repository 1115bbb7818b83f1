"""A write the database refuses for its data is told from a database that is unavailable.

Every error here is provoked on the real database (SQLite files, the shared PostgreSQL and
MariaDB, a private PostgreSQL that the test stops): a trigger's refusal, values too long or
too big, constraints; and a locked, read-only or full database, timeouts, a stopped server.
Where the database is the authority, a refused write raises `WriteRefusedError` naming the key
and the server's reason; an unavailable one stays `StoreUnavailableError`.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from _refusal import REASON, refusing
from conftest import SERVER_URLS, backend_url, require_backend
from jobstore import JobStore, StoreUnavailableError, WriteRefusedError
from jobstore.db.refusal import refuses_value
from workers.pg_cluster import PgCluster

Store = Callable[..., JobStore[Any]]
SQLITE_LIMIT_LENGTH = 0
"""``sqlite3.SQLITE_LIMIT_LENGTH`` (Python 3.11+; the checker reads 3.10's stubs)."""


def error_of(url: str, *statements: str, params: dict[str, Any] | None = None,
             connect_args: dict[str, Any] | None = None) -> DBAPIError:
    """The database error the last of ``statements`` raises, run in turn on one connection."""
    engine = create_engine(url, connect_args=connect_args or {})
    try:
        with engine.connect() as conn:
            for statement in statements[:-1]:
                conn.execute(text(statement))
            try:
                conn.execute(text(statements[-1]), params or {})
                conn.commit()
            except DBAPIError as exc:
                error = exc
            else:
                pytest.fail(f"the database took {statements[-1]!r}: the test proves nothing")
            with contextlib.suppress(DBAPIError):  # MariaDB closes it after a 1153
                conn.rollback()
    finally:
        engine.dispose()
    return error


def cause(error: BaseException) -> DBAPIError:
    """The database error that ``error`` was raised from."""
    found = error.__cause__
    assert isinstance(found, DBAPIError), f"{error!r} was not raised from a database error"
    return found


def rows(url: str, table: str) -> dict[str, Any]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {key: json.loads(payload) for key, payload in
                    conn.execute(text(f"SELECT {quoted(url)}, payload FROM {table}"))}
    finally:
        engine.dispose()


def events(url: str, table: str, key: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(f"SELECT count(*) FROM {table}_events "
                                         f"WHERE {quoted(url)} = :k"), {"k": key}).scalar_one())
    finally:
        engine.dispose()


def quoted(url: str) -> str:
    return "`key`" if url.startswith("mysql") else '"key"'


# the trigger: refused on every backend -------------------------------------------------------

@pytest.mark.parametrize("stage", ["db_primary", "db_only"])
def test_a_value_the_database_refuses_raises_write_refused_naming_the_key(
        make_store: Store, db_url: str, table_name: str, stage: str) -> None:
    """The trigger's refusal reaches the caller as the database's reason for that key, the row
    and its history stay as they were, and other keys are written as before."""
    jobs = make_store(stage=stage)
    jobs["a"] = {"n": 0}
    with refusing(db_url, table_name):
        with pytest.raises(WriteRefusedError) as refused:
            jobs["a"] = {"n": 1, "note": "poison"}
        jobs["b"] = {"n": 2}
    message = str(refused.value)
    assert "'a'" in message
    assert REASON in message
    assert refuses_value(cause(refused.value))
    assert jobs["a"] == {"n": 0}
    assert rows(db_url, table_name) == {"a": {"n": 0}, "b": {"n": 2}}
    assert events(db_url, table_name, "a") == 1


def test_update_setdefault_and_modify_refused_say_so_too(
        make_store: Store, db_url: str, table_name: str) -> None:
    """Every write of ``db_only`` says refused, and ``modify`` tries a refused value once: a
    trigger's refusal is no lost race to run again."""
    jobs = make_store(stage="db_only")
    jobs["a"] = {"n": 0}
    calls: list[int] = []

    def poisoned(job: dict[str, Any]) -> dict[str, Any]:
        calls.append(1)
        return {**job, "note": "poison"}

    with refusing(db_url, table_name):
        with pytest.raises(WriteRefusedError, match="'a'"):
            jobs.modify("a", poisoned)
        with pytest.raises(WriteRefusedError, match="2 jobs"):
            jobs.update({"b": {"note": "poison"}, "c": {"n": 3}})
        with pytest.raises(WriteRefusedError, match="'d'"):
            jobs.setdefault("d", {"note": "poison"})
    assert calls == [1]
    assert rows(db_url, table_name) == {"a": {"n": 0}}


# data errors: refused ------------------------------------------------------------------------

REFUSED: dict[str, list[tuple[str, ...]]] = {
    "sqlite": [
        ("NOT NULL", "CREATE TEMP TABLE r (k TEXT PRIMARY KEY, v TEXT NOT NULL)",
         "INSERT INTO r VALUES ('a', NULL)"),
        ("CHECK", "CREATE TEMP TABLE r (k TEXT PRIMARY KEY, v TEXT CHECK (length(v) < 4))",
         "INSERT INTO r VALUES ('a', 'abcd')"),
    ],
    "postgresql": [
        ("too long", "CREATE TEMP TABLE r (k text PRIMARY KEY, v varchar(3))",
         "INSERT INTO r VALUES ('a', 'abcd')"),
        ("not-null", "CREATE TEMP TABLE r (k text PRIMARY KEY, v text NOT NULL)",
         "INSERT INTO r VALUES ('a', NULL)"),
        ("NUL", "CREATE TEMP TABLE r (k text PRIMARY KEY, v text)",
         "INSERT INTO r VALUES ('a', :nul)"),
    ],
    "mysql": [
        ("too long", "CREATE TEMPORARY TABLE r (k varchar(8) PRIMARY KEY, v varchar(3))",
         "INSERT INTO r VALUES ('a', 'abcd')"),
        ("cannot be null", "CREATE TEMPORARY TABLE r (k varchar(8) PRIMARY KEY, v text NOT NULL)",
         "INSERT INTO r VALUES ('a', NULL)"),
        ("CONSTRAINT", "CREATE TEMPORARY TABLE r (k varchar(8), v text CHECK (length(v) < 4))",
         "INSERT INTO r VALUES ('a', 'abcd')"),
    ],
}
"""Per backend: what the error says, then statements whose last is refused for its data (too
long, NULL, CHECK; on PostgreSQL a NUL character too, which psycopg refuses before sending)."""


def test_data_the_database_refuses_is_a_refused_value(backend: str, tmp_path: Path) -> None:
    url = backend_url(backend, tmp_path)
    for says, *statements in REFUSED[backend]:
        error = error_of(url, *statements, params={"nul": "a\x00b"})
        assert says in str(error.orig)
        assert refuses_value(error), f"{statements[-1]}: {error.orig!r}"


def test_sqlite_string_or_blob_too_big_is_a_refused_value(tmp_path: Path) -> None:
    """A value over the connection's ``SQLITE_LIMIT_LENGTH``, sent without the size check."""
    engine = create_engine(f"sqlite:///{tmp_path}/big.db")
    try:
        with engine.connect() as conn:
            conn.connection.dbapi_connection.setlimit(  # type: ignore[union-attr]
                SQLITE_LIMIT_LENGTH, 10_000)
            conn.execute(text("CREATE TABLE r (v TEXT)"))
            with pytest.raises(DBAPIError) as caught:
                conn.execute(text("INSERT INTO r VALUES (:v)"), {"v": "x" * 20_000})
    finally:
        engine.dispose()
    assert "too big" in str(caught.value.orig)
    assert refuses_value(caught.value)


def test_mariadb_packet_over_max_allowed_packet_is_a_refused_value() -> None:
    """Just over ``max_allowed_packet`` MariaDB answers 1153 (far over, it resets the
    connection instead, which is why `jobstore.db.limits` checks before sending)."""
    require_backend("mysql")
    url = SERVER_URLS["mysql"]
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            packet = int(conn.execute(text("SELECT @@max_allowed_packet")).scalar_one())
    finally:
        engine.dispose()
    error = error_of(url, "SELECT LENGTH(:v)", params={"v": "x" * (packet + 1000)})
    assert "max_allowed_packet" in str(error.orig)
    assert refuses_value(error)


# unavailable or busy: not refused ------------------------------------------------------------

def test_a_locked_sqlite_database_is_not_a_refusal_and_db_only_says_unavailable(
        tmp_path: Path) -> None:
    """Another connection holds the write lock past the busy timeout: the write may go
    through later, so it is `StoreUnavailableError`, not refused."""
    path = tmp_path / "jobs.db"
    with JobStore(f"sqlite:///{path}?timeout=0.05", table="jobs", stage="db_only") as jobs:
        jobs["a"] = {"n": 0}
        holder = sqlite3.connect(path, isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")
            with pytest.raises(StoreUnavailableError) as failed:
                jobs["a"] = {"n": 1}
            holder.execute("ROLLBACK")
        finally:
            holder.close()
        assert "locked" in str(failed.value)
        assert not isinstance(failed.value, WriteRefusedError)
        assert not refuses_value(cause(failed.value))


@pytest.fixture
def sqlite_file(tmp_path: Path) -> Path:
    path = tmp_path / "db.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE r (v TEXT)")
    conn.close()
    return path


def test_a_read_only_or_full_sqlite_database_is_not_a_refusal(sqlite_file: Path) -> None:
    read_only = error_of(f"sqlite:///file:{sqlite_file}?mode=ro&uri=true",
                         "INSERT INTO r VALUES ('a')")
    assert "readonly" in str(read_only.orig)
    full = error_of(f"sqlite:///{sqlite_file}", "PRAGMA max_page_count = 2",
                    "INSERT INTO r VALUES (:v)", params={"v": "y" * 100_000})
    assert "full" in str(full.orig)
    assert not refuses_value(read_only)
    assert not refuses_value(full)


NOT_REFUSED: dict[str, list[tuple[str, ...]]] = {
    "postgresql": [
        ("statement timeout", "SET statement_timeout = 20", "SELECT pg_sleep(1)"),
        ("read-only", "SET TRANSACTION READ ONLY", "DELETE FROM {t}"),
    ],
    "mysql": [
        ("max_statement_time", "SET STATEMENT max_statement_time = 0.02 FOR SELECT SLEEP(1) "
         "FROM {t}_events RIGHT JOIN (SELECT 1 AS one) AS one ON 1 = 1"),
        ("READ ONLY", "START TRANSACTION READ ONLY", "DELETE FROM {t}"),
    ],
}
"""Per backend: what the error says, then statements whose last fails because the server is
busy (a statement timeout) or read-only, on the test's job table."""


@pytest.mark.parametrize("backend", ["postgresql", "mysql"])
def test_a_timeout_or_a_read_only_server_is_not_a_refusal(
        make_store: Store, db_url: str, table_name: str, backend: str) -> None:
    make_store(stage="db_only").close()
    for says, *statements in NOT_REFUSED[backend]:
        error = error_of(db_url, *(s.format(t=table_name) for s in statements))
        assert says in str(error.orig)
        assert not refuses_value(error), f"{statements[-1]}: {error.orig!r}"


def test_a_stopped_postgresql_server_is_not_a_refusal(running_pg: PgCluster) -> None:
    """The store's own private server, stopped under it: `StoreUnavailableError`, as
    before."""
    with JobStore(running_pg.url, table="jobs", stage="db_only") as jobs:
        jobs["a"] = {"n": 0}
        running_pg.stop("immediate")
        with pytest.raises(StoreUnavailableError) as failed:
            jobs["a"] = {"n": 1}
        assert not isinstance(failed.value, WriteRefusedError)
        assert not refuses_value(cause(failed.value))
