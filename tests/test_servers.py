"""Connections and dialects: what each backend must do the same way through the same code.

Every test runs on SQLite, PostgreSQL and MariaDB (the ``backend`` fixture). The pool checks
look at the store's engine directly: a connection still checked out after ``close()`` is one a
long-running service would leak on every store it opens.
"""

from __future__ import annotations

import contextlib
import gc
import time
import tracemalloc
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, select, text
from sqlalchemy.exc import DBAPIError

from jobstore import EncodeError, JobStore, Stage, StoreUnavailableError, config
from jobstore.db.engine import create_store_engine
from jobstore.db.schema import build_schema
from workers.pg_cluster import wait_until

MakeStore = Callable[..., JobStore[Any]]
MANY = 2_100
"""More rows than one scan batch (2,000), so iteration crosses a batch boundary."""


def checked_out(store: JobStore[Any]) -> int:
    # internal: what the store's own engine's pool has checked out (no public count exists)
    return int(store._engine.pool.checkedout())  # type: ignore[attr-defined]


def settles_at_or_below(store: JobStore[Any], baseline: int) -> bool:
    """Whether the store's checked-out connections come back to ``baseline`` within 2 s (the
    background loop may hold one for a moment; a leak holds it for good)."""
    return wait_until(lambda: checked_out(store) <= baseline, 2.0)


def fill(store: JobStore[Any], n: int = MANY) -> None:
    store.update({f"k{i:05d}": {"status": "queued", "n": i} for i in range(n)})


@pytest.mark.parametrize("stage", [Stage.DUAL_WRITE, Stage.DB_ONLY])
def test_close_returns_every_connection_after_ordinary_use(make_store: MakeStore,
                                                           stage: Stage) -> None:
    """After writes, reads, iteration, verify, history and sync, close() leaves none out."""
    jobs = make_store(stage=stage)
    fill(jobs, 50)
    jobs["k00001"]["status"] = "running"
    assert jobs["k00001"]["status"] == "running"
    assert len(jobs) == 50
    assert sum(1 for _ in jobs.items()) == 50
    assert "missing" not in jobs
    jobs.sync()
    jobs.verify()
    jobs.history("k00001")
    del jobs["k00002"]
    jobs.close()
    assert checked_out(jobs) == 0


@pytest.mark.parametrize("stage", [Stage.DUAL_WRITE, Stage.DB_ONLY])
def test_an_iteration_abandoned_half_way_holds_no_connection(make_store: MakeStore,
                                                             stage: Stage) -> None:
    """Leaving items(), keys() and values() after one batch boundary keeps no connection out,
    neither while the generators are suspended nor after close()."""
    jobs = make_store(stage=stage)
    fill(jobs)
    baseline = checked_out(jobs)
    suspended = [iter(jobs.items()), iter(jobs), iter(jobs.values())]
    for iterator in suspended:
        for _ in range(2_050):
            next(iterator)
    assert settles_at_or_below(jobs, baseline)
    jobs["after"] = {"status": "queued"}
    jobs.close()
    assert checked_out(jobs) == 0
    del suspended


@pytest.mark.parametrize("stage", [Stage.DUAL_WRITE, Stage.DB_ONLY])
def test_errors_leave_no_connection_checked_out(make_store: MakeStore, db_url: str,
                                                table_name: str, stage: Stage) -> None:
    """An encode error, a missing key, and a database error (the table dropped under the
    store) each return their connection, open and after close()."""
    jobs = make_store(stage=stage, sync_interval=60)
    jobs["a"] = {"status": "queued"}
    jobs.sync()
    # The hot path's kept connection, which the loop may have borrowed back for the sync.
    baseline = 1
    assert checked_out(jobs) <= baseline
    with pytest.raises(EncodeError):
        jobs["b"] = {"status": object()}
    with pytest.raises(KeyError):
        jobs["missing"]
    assert settles_at_or_below(jobs, baseline)

    _drop(db_url, table_name)
    if stage is Stage.DB_ONLY:
        with pytest.raises(StoreUnavailableError):
            jobs["c"] = {"status": "queued"}
        with pytest.raises(StoreUnavailableError):
            jobs["a"]
    else:
        jobs["c"] = {"status": "queued"}
        assert jobs.queued_writes >= 1
    assert settles_at_or_below(jobs, baseline)
    jobs.close()
    assert checked_out(jobs) == 0


def _drop(url: str, table: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(f"DROP TABLE {table}"))
    finally:
        engine.dispose()


def test_keys_differing_only_in_case_or_trailing_space_are_different_jobs(
        make_store: MakeStore) -> None:
    """As in a dict, "abc", "ABC" and "abc " are three keys on every backend (MariaDB's
    default collation would fold them into one)."""
    jobs = make_store(stage=Stage.DB_ONLY)
    for key in ("abc", "ABC", "abc ", "äbc", "åbc"):
        jobs[key] = {"key": key}
    assert len(jobs) == 5
    for key in ("abc", "ABC", "abc ", "äbc", "åbc"):
        assert jobs[key] == {"key": key}
    assert sorted(jobs) == sorted(["abc", "ABC", "abc ", "äbc", "åbc"])


def test_the_longest_key_with_four_byte_characters_round_trips(make_store: MakeStore) -> None:
    """A 255-character key of emoji (1,020 bytes in UTF-8) and a 1 MB payload of them are
    stored and read back unchanged."""
    jobs = make_store(stage=Stage.DB_ONLY)
    key = "\U0001f600" * 255
    value = {"status": "queued", "blob": "\U0001f4a9" * 250_000}
    jobs[key] = value
    assert jobs[key] == value
    assert list(jobs) == [key]


def test_timestamps_keep_sub_second_order(make_store: MakeStore, db_url: str,
                                          table_name: str) -> None:
    """Two writes a few milliseconds apart get distinct, ordered updated_at values (MySQL's
    DATETIME would round both to the same second)."""
    jobs = make_store(stage=Stage.DB_ONLY)
    jobs["a"] = {"n": 1}
    jobs["b"] = {"n": 2}
    jobs_table = build_schema(table_name).jobs
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            stamps = dict(conn.execute(select(jobs_table.c.key, jobs_table.c.updated_at)).all())
    finally:
        engine.dispose()
    a, b = (_utc(stamps["a"]), _utc(stamps["b"]))
    assert a < b
    assert a.microsecond or b.microsecond


def _utc(value: str | datetime) -> datetime:
    stamp = datetime.fromisoformat(value) if isinstance(value, str) else value
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)


def test_history_keeps_every_version_in_order_under_the_same_code(
        make_store: MakeStore) -> None:
    """Five writes and a delete give six history entries, versions 1..6, on every backend."""
    jobs = make_store(stage=Stage.DB_ONLY)
    for n in range(5):
        jobs["job"] = {"n": n}
    del jobs["job"]
    history = jobs.history("job")
    assert [v.version for v in history] == [1, 2, 3, 4, 5, 6]
    assert [v.op for v in history] == ["set"] * 5 + ["delete"]
    assert history[4].value == {"n": 4}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_verify_of_20000_jobs_allocates_a_bounded_amount_not_the_table(
        make_store: MakeStore) -> None:
    """verify() of a dict of 20,000 jobs checks them all against the table in batches and
    allocates under 3 MB at its peak, where loading the table's payloads alone would take
    more than 6 MB."""
    jobs = make_store(stage=Stage.DUAL_WRITE, sync_interval=3600)
    rows, pad = 20_000, "x" * 400
    for start in range(0, rows, 5_000):
        jobs.update({f"job-{i:06d}": {"status": "queued", "n": i, "title": pad}
                     for i in range(start, start + 5_000)})
    assert rows * len(pad) > 6 * 1024 * 1024
    gc.collect()
    tracemalloc.start()
    try:
        report = jobs.verify()
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.checked == rows
    assert report.drifts == ()
    assert peak < 3 * 1024 * 1024, f"verify allocated {peak / 2**20:.1f} MB at its peak"


def hold_every_connection(engine: Engine, held: contextlib.ExitStack) -> None:
    most = config.pool_size() + config.pool_max_overflow()
    for _ in range(most):
        if engine.pool.checkedout() >= most:  # type: ignore[attr-defined]
            return
        held.enter_context(engine.connect())


def test_an_exhausted_pool_raises_a_database_error_after_the_pool_timeout(db_url: str) -> None:
    """With all of a store engine's connections checked out, the next checkout fails after
    connect_timeout with an OperationalError (a DBAPIError, which the store handles as an
    outage), not SQLAlchemy's own TimeoutError."""
    engine = create_store_engine(db_url, connect_timeout=1)
    try:
        with contextlib.ExitStack() as held:
            hold_every_connection(engine, held)
            started = time.monotonic()
            with pytest.raises(DBAPIError, match="QueuePool limit"):
                engine.connect()
            assert 0.9 < time.monotonic() - started < 3
    finally:
        engine.dispose()


@pytest.mark.parametrize("stage", [Stage.DUAL_WRITE, Stage.DB_ONLY])
def test_a_store_whose_every_connection_is_busy_fails_like_an_outage_not_a_hang(
        db_url: str, table_name: str, stage: Stage) -> None:
    """With all of the engine's pooled connections held elsewhere, len() and history() answer
    (from a connection the store keeps) or fail as an outage should (StoreUnavailableError: in
    dual_write too, where len covers the database as well as the dict), within seconds."""
    engine = create_store_engine(db_url, connect_timeout=1)
    jobs: JobStore[Any] = JobStore(engine, table=table_name, stage=stage, sync_interval=3600)
    try:
        jobs["a"] = {"status": "queued"}
        jobs.sync()
        with contextlib.ExitStack() as held:
            hold_every_connection(engine, held)
            started = time.monotonic()
            if stage is Stage.DUAL_WRITE:  # len covers the database: it never shrinks to the dict
                with pytest.raises(StoreUnavailableError):
                    len(jobs)
            else:
                _or_unavailable(len, jobs)
            _or_unavailable(jobs.history, "a")
            assert time.monotonic() - started < 5
        assert len(jobs) == 1
    finally:
        jobs.close()
        engine.dispose()


def _or_unavailable(fn: Callable[..., Any], *args: Any) -> bool:
    """Call ``fn``; True whether it answered or raised StoreUnavailableError."""
    with contextlib.suppress(StoreUnavailableError):
        fn(*args)
    return True
