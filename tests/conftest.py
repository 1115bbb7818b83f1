"""Shared fixtures: the backends every contract test runs on, and stores that clean up.

SQLite always runs. PostgreSQL and MariaDB run when reachable; otherwise their tests skip with
the reason, except under CI (``CI=true``), where an unreachable server fails them.
"""

from __future__ import annotations

import contextlib
import functools
import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from jobstore import JobStore, StoreUnavailableError
from workers.pg_cluster import PgCluster, unavailable_reason

SERVER_URLS = {
    "postgresql": os.environ.get(
        "JOBSTORE_TEST_POSTGRESQL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
    "mysql": os.environ.get("JOBSTORE_TEST_MYSQL", "mysql+pymysql://root@127.0.0.1:3306/test"),
}
BACKENDS = ["sqlite", "postgresql", "mysql"]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


LISTINGS: dict[str, Callable[[JobStore[Any]], object]] = {
    "len": len,
    "iter": lambda jobs: next(iter(jobs)),
    "keys": lambda jobs: next(iter(jobs.keys())),
    "items": lambda jobs: next(iter(jobs.items())),
    "values": lambda jobs: next(iter(jobs.values())),
}
"""Each way to list a store's jobs, taken one step (``list()`` would ask ``len`` first)."""


def listings_that_answer(jobs: JobStore[Any]) -> list[str]:
    """The listings of `LISTINGS` that answer rather than raise `StoreUnavailableError`."""
    answered = []
    for what, listing in LISTINGS.items():
        try:
            listing(jobs)
        except StoreUnavailableError:
            continue
        answered.append(what)
    return answered


@functools.cache
def unreachable_reason(backend: str) -> str | None:
    """Why the test server for ``backend`` cannot be used, or None when it can."""
    url = SERVER_URLS[backend]
    timeout = {"postgresql": {"connect_timeout": 3}, "mysql": {"connect_timeout": 3}}[backend]
    engine = create_engine(url, connect_args=timeout)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        return f"{backend} at {engine.url.render_as_string(hide_password=True)}: {exc}"
    finally:
        engine.dispose()
    return None


def require_backend(backend: str) -> None:
    if backend == "sqlite":
        return
    reason = unreachable_reason(backend)
    if reason is None:
        return
    if IN_CI:
        pytest.fail(f"CI needs this server and cannot reach it: {reason}")
    pytest.skip(f"server not reachable: {reason}")


def backend_url(backend: str, tmp_path: Any) -> str:
    require_backend(backend)
    if backend == "sqlite":
        return f"sqlite:///{tmp_path}/jobs.db"
    return SERVER_URLS[backend]


def drop_table(url: str, table: str) -> None:
    """Remove a test's job table, its history and its control rows from a shared server."""
    engine = create_engine(url)
    statements = [f"DROP TABLE IF EXISTS {table}_events", f"DROP TABLE IF EXISTS {table}",
                  "DELETE FROM jobstore_verify_reports WHERE request_id IN "
                  "(SELECT id FROM jobstore_verify_requests WHERE job_table = :t)"] + [
        f"DELETE FROM {control} WHERE job_table = :t"
        for control in ("jobstore_control", "jobstore_instances", "jobstore_verify_requests")
    ]
    try:
        for statement in statements:
            with contextlib.suppress(Exception), engine.begin() as conn:
                conn.execute(text(statement), {"t": table})
    finally:
        engine.dispose()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec and callspec.params.get("backend") in ("postgresql", "mysql"):
            item.add_marker(pytest.mark.server)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Each backend in turn: sqlite, postgresql, mysql."""
    return str(request.param)


@pytest.fixture
def table_name() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def db_url(backend: str, tmp_path: Any, table_name: str) -> Iterator[str]:
    """A database URL for ``backend``; on servers, the test's table is dropped afterwards."""
    url = backend_url(backend, tmp_path)
    yield url
    if backend != "sqlite":
        drop_table(url, table_name)


@pytest.fixture
def make_store(db_url: str, table_name: str) -> Iterator[Callable[..., JobStore[Any]]]:
    """Open stores on the test's database and table; each is closed afterwards, and none may
    leave a pooled connection checked out."""
    opened: list[JobStore[Any]] = []

    def make(**kwargs: Any) -> JobStore[Any]:
        kwargs.setdefault("table", table_name)
        store: JobStore[Any] = JobStore(kwargs.pop("url", db_url), **kwargs)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()
        # internal: a closed store leaves no connection of its own engine's pool checked out
        checked_out = store._engine.pool.checkedout()  # type: ignore[attr-defined]
        assert checked_out == 0, f"{store!r} left {checked_out} connection(s) checked out"


@pytest.fixture(scope="module")
def own_pg() -> Iterator[PgCluster]:
    """A private PostgreSQL server, running; stopped and deleted after the module."""
    reason = unavailable_reason()
    if reason is not None:
        if IN_CI:
            pytest.fail(f"CI needs a private PostgreSQL server and cannot make one: {reason}")
        pytest.skip(f"cannot make a private PostgreSQL server: {reason}")
    cluster = PgCluster()
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def running_pg(own_pg: PgCluster) -> PgCluster:
    """The private server, started again if an earlier test left it stopped."""
    if not own_pg.is_running():
        own_pg.start()
    return own_pg
