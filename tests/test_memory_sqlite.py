"""In-memory SQLite (``sqlite://`` and its ``:memory:`` and ``file:`` forms): every thread of a
store shares one connection safely, in fresh processes and under threads; which stores share
a database; a ``file:`` name without ``uri=true`` is refused."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import StaticPool

from _workers import WAIT_S, worker
from jobstore import JobStore, JobStoreError
from jobstore.db.engine import create_store_engine

DB_STAGES = ("dual_write", "shadow", "db_primary", "db_only")
"""Every stage whose writes reach the database."""
MEMORY_URLS = (
    "sqlite:///:memory:",
    "sqlite:///file::memory:?uri=true",
    "sqlite:///file:burst?mode=memory&cache=shared&uri=true",
)


def _shared_url() -> str:
    return f"sqlite:///file:{uuid.uuid4().hex}?mode=memory&cache=shared&uri=true"


def _bursts(url: str, zygotes: int, children: int, keys: int) -> list[dict[str, list[str]]]:
    """Run ``workers/memory_burst.py``: ``zygotes`` interpreters forking ``children`` each."""
    processes = [worker("memory_burst", url, keys, children, stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE) for _ in range(zygotes)]
    results = []
    for process in processes:
        try:
            out, err = process.communicate(timeout=WAIT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
        assert process.returncode == 0, err
        results += [json.loads(line) for line in out.splitlines()]
    assert len(results) == zygotes * children, out + err
    return results


def test_thirty_fresh_processes_on_sqlite_memory_meet_no_error_and_miss_no_key() -> None:
    """Each process writes, reads and lists at once while its loop's first rounds run (before
    the shared connection was serialised, about half of them failed a commit or lost the
    database)."""
    results = _bursts("sqlite://", zygotes=3, children=10, keys=40)
    failed = [r for r in results if r["errors"] or r["missing"]]
    assert not failed, f"{len(failed)} of {len(results)} processes: {failed[:3]}"


@pytest.mark.parametrize("url", MEMORY_URLS)
def test_every_in_memory_url_form_is_safe_in_fresh_processes(url: str) -> None:
    results = _bursts(url, zygotes=1, children=8, keys=30)
    failed = [r for r in results if r["errors"] or r["missing"]]
    assert not failed, f"{len(failed)} of {len(results)} processes: {failed[:3]}"


def _hammer(stores: list[JobStore[Any]], threads: int, keys: int) -> list[str]:
    """``threads`` threads per store, each setting, reading and listing its own keys at once;
    what went wrong, as text."""
    problems: list[str] = []
    start = threading.Barrier(threads * len(stores))

    def run(store: JobStore[Any], name: str) -> None:
        start.wait()
        for i in range(keys):
            key = f"{name}-{i}"
            try:
                store[key] = {"n": i}
                if store.get(key) != {"n": i}:
                    problems.append(f"get {key}: {store.get(key)!r}")
                if key not in list(store):
                    problems.append(f"list misses {key}")
                store[key] = {"n": i + 1}
            except Exception as exc:  # the finding: reported by the assertion
                problems.append(f"{key}: {type(exc).__name__}: {exc}")

    workers = [threading.Thread(target=run, args=(store, f"s{s}t{t}"))
               for s, store in enumerate(stores) for t in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(WAIT_S)
    for store in stores:
        store.sync()
        if store.write_errors:
            problems.append(f"{store.write_errors} write error(s): {store.last_error}")
    return problems


@pytest.mark.parametrize("stage", DB_STAGES)
def test_threads_write_and_list_on_sqlite_memory_while_the_loop_runs(stage: str) -> None:
    store: JobStore[Any] = JobStore("sqlite://", stage=stage, sync_interval=0.001)
    try:
        problems = _hammer([store], threads=4, keys=40)
        assert not problems, problems[:5]
        report = store.verify()
        assert report.consistent, report.drifts[:3]
        assert len(store) == 4 * 40
        assert [v.value for v in store.history("s0t0-39")] == [{"n": 39}, {"n": 40}]
    finally:
        store.close()


def test_two_stores_on_sqlite_memory_are_two_databases() -> None:
    first: JobStore[Any] = JobStore("sqlite://", stage="db_only")
    second: JobStore[Any] = JobStore("sqlite://", stage="db_only")
    try:
        first["a"] = {"n": 1}
        second["b"] = {"n": 2}
        assert list(first) == ["a"]
        assert list(second) == ["b"]
    finally:
        first.close()
        second.close()


def test_two_stores_on_one_shared_cache_name_are_one_database_and_share_it_safely() -> None:
    url = _shared_url()
    first: JobStore[Any] = JobStore(url, stage="db_only", sync_interval=0.001)
    second: JobStore[Any] = JobStore(url, stage="db_only", sync_interval=0.001)
    other: JobStore[Any] = JobStore(_shared_url(), stage="db_only")
    try:
        problems = _hammer([first, second], threads=2, keys=30)
        assert not problems, problems[:5]
        assert sorted(first) == sorted(second)
        assert len(first) == 2 * 2 * 30
        assert first["s1t1-29"] == {"n": 30}
        assert len(other) == 0
    finally:
        first.close()
        second.close()
        other.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_keeps_its_own_copy_of_the_in_memory_database() -> None:
    store: JobStore[Any] = JobStore("sqlite://", stage="db_only", sync_interval=0.01)
    try:
        store["a"] = {"n": 1}
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child reports through the pipe
            os.close(read)
            try:
                store["b"] = {"n": 2}
                seen = {"keys": sorted(store), "a": store["a"]}
                store.close()
            except BaseException as exc:
                seen = {"error": repr(exc)}
            os.write(write, json.dumps(seen).encode())
            os._exit(0)
        os.close(write)
        with os.fdopen(read) as pipe:
            seen = json.loads(pipe.read() or "{}")
        os.waitpid(pid, 0)
        assert seen == {"keys": ["a", "b"], "a": {"n": 1}}
        assert list(store) == ["a"]
    finally:
        store.close()


def test_a_file_name_without_uri_true_is_refused_and_creates_no_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(JobStoreError, match="uri=true"):
        JobStore("sqlite:///file:jobs?mode=memory&cache=shared")
    assert list(tmp_path.iterdir()) == []


def test_an_invalidated_checkout_keeps_the_in_memory_database_and_ends_its_transaction() -> None:
    engine = create_store_engine("sqlite://")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
            conn.exec_driver_sql("BEGIN")
            conn.exec_driver_sql("INSERT INTO t VALUES (1)")
            conn.invalidate()
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 0
            conn.exec_driver_sql("INSERT INTO t VALUES (2)")
        engine.dispose(close=False)
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT x FROM t").scalars().all() == [2]
    finally:
        engine.dispose()


def test_one_thread_at_a_time_checks_out_the_in_memory_connection() -> None:
    """The same thread may check out again while it holds a checkout; another thread waits,
    and gives up with a database error after connect_timeout + statement_timeout."""
    engine = create_store_engine("sqlite://", connect_timeout=0.05, statement_timeout=0.05)
    outcome: list[str] = []

    def other() -> None:
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
            outcome.append("checked out")
        except OperationalError:
            outcome.append("busy")

    try:
        with engine.connect() as outer:
            with engine.connect() as inner:
                assert inner.connection.dbapi_connection is outer.connection.dbapi_connection
            thread = threading.Thread(target=other)
            thread.start()
            thread.join(WAIT_S)
        thread = threading.Thread(target=other)
        thread.start()
        thread.join(WAIT_S)
        assert outcome == ["busy", "checked out"]
    finally:
        engine.dispose()


@pytest.mark.parametrize("pool", [{}, {"poolclass": StaticPool}], ids=["default", "static"])
def test_an_in_memory_engine_of_your_own_is_refused_with_what_to_do(pool: dict[str, Any]) -> None:
    """SQLAlchemy's default pool gives each thread its own database; `StaticPool` lets threads
    interleave on one connection."""
    engine = create_engine("sqlite://", **pool)
    try:
        with pytest.raises(JobStoreError, match="create_store_engine"):
            JobStore(engine)
    finally:
        engine.dispose()
    built = create_store_engine("sqlite://")
    try:
        store: JobStore[Any] = JobStore(built, stage="db_only")
        with store:
            store["a"] = {"n": 1}
            assert list(store) == ["a"]
    finally:
        built.dispose()
