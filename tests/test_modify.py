"""`JobStore.modify`: an atomic read-modify-write, where ``job.n += 1`` from several processes
loses updates.

Against the row under its lock in every stage that writes the database (several real processes
on SQLite, PostgreSQL and MariaDB end at exactly the sum of their increments), under the store's
lock in ``memory``; ``fn`` gets a copy, and what it returns becomes the job's object.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text

from _workers import WAIT_S, worker
from jobstore import EncodeError, JobStore, Stage, StoreUnavailableError
from jobstore.db.schema import build_schema

MakeStore = Callable[..., JobStore[Any]]
DB_STAGES = [Stage.DUAL_WRITE, Stage.SHADOW, Stage.DB_PRIMARY, Stage.DB_ONLY]
PROCESSES = 4
INCREMENTS = 250


def increment(job: dict[str, Any]) -> dict[str, Any]:
    job["n"] += 1
    return job


def stored(url: str, table: str, key: str) -> Any:
    """The job's row as another connection reads it, decoded; None when there is none."""
    jobs = build_schema(table).jobs
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            payload = conn.execute(select(jobs.c.payload).where(jobs.c.key == key)).scalar()
    finally:
        engine.dispose()
    return None if payload is None else json.loads(payload)


@contextlib.contextmanager
def table_renamed_away(url: str, table: str) -> Iterator[None]:
    """The job table is gone (renamed) until the block ends: every statement on it fails."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(f"ALTER TABLE {table} RENAME TO {table}_away"))
        yield
        with engine.begin() as conn:
            conn.execute(text(f"ALTER TABLE {table}_away RENAME TO {table}"))
    finally:
        engine.dispose()


@contextlib.contextmanager
def write_lock_held(url: str) -> Iterator[None]:
    """Another connection holds SQLite's write lock until the block ends."""
    conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None, timeout=5)
    try:
        conn.execute("BEGIN IMMEDIATE")
        yield
        conn.execute("ROLLBACK")
    finally:
        conn.close()


def run_counters(url: str, table: str, pins: list[str], key: str, tmp_path: Path,
                 mode: str = "modify") -> list[dict[str, Any]]:
    """``len(pins)`` processes, each pinned to its stage, each doing `INCREMENTS` increments
    of ``key`` at once; their summaries."""
    go = tmp_path / "go"
    processes = [worker("counter", url, table, key, INCREMENTS, go, mode, stage_pin=pin,
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE) for pin in pins]
    summaries = []
    try:
        for process in processes:
            assert process.stdout is not None
            assert process.stderr is not None
            assert process.stdout.readline().strip() == "ready", process.stderr.read()
        go.touch()
        for process in processes:
            out, err = process.communicate(timeout=WAIT_S * 3)
            assert process.returncode == 0, err
            summaries.append(json.loads(out))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.communicate()
    return summaries


@pytest.mark.slow
def test_four_processes_one_in_each_database_stage_modifying_one_job_lose_no_increment(
        make_store: MakeStore, db_url: str, table_name: str, tmp_path: Path) -> None:
    pins = [str(stage) for stage in DB_STAGES]
    seed = make_store(stage=pins[0])
    seed["counter"] = {"n": 0}
    seed.close()

    summaries = run_counters(db_url, table_name, pins, "counter", tmp_path)

    assert [s["stage"] for s in summaries] == pins
    assert [s["errors"] for s in summaries] == [{}] * PROCESSES
    assert stored(db_url, table_name, "counter") == {"n": PROCESSES * INCREMENTS}
    with make_store(stage=pins[0]) as jobs:
        history = jobs.history("counter")
        assert jobs["counter"] == {"n": PROCESSES * INCREMENTS}
    assert [event.version for event in history] == list(range(1, PROCESSES * INCREMENTS + 2))
    assert [event.value for event in history] == [
        {"n": n} for n in range(PROCESSES * INCREMENTS + 1)]
    assert {event.op for event in history} == {"set"}


@pytest.mark.slow
def test_four_processes_creating_one_job_by_modify_with_a_default_lose_no_increment(
        make_store: MakeStore, db_url: str, table_name: str, tmp_path: Path) -> None:
    make_store(stage=Stage.DB_ONLY).close()      # the tables exist; the job does not
    pins = ["db_only", "dual_write"] * (PROCESSES // 2)

    summaries = run_counters(db_url, table_name, pins, "counter", tmp_path, mode="create")

    assert [s["errors"] for s in summaries] == [{}] * PROCESSES
    assert stored(db_url, table_name, "counter") == {"n": PROCESSES * INCREMENTS}
    with make_store(stage=Stage.DB_ONLY) as jobs:
        history = jobs.history("counter")
    assert [event.value for event in history] == [
        {"n": n} for n in range(1, PROCESSES * INCREMENTS + 1)]
    assert [event.version for event in history] == list(range(1, PROCESSES * INCREMENTS + 1))


@pytest.mark.parametrize("stage", DB_STAGES)
def test_modify_stores_what_fn_returns_and_hands_it_out(
        make_store: MakeStore, db_url: str, table_name: str, stage: Stage) -> None:
    jobs = make_store(stage=stage, sync_interval=600)
    jobs["a"] = {"n": 0, "status": "queued"}
    held = jobs["a"]

    result = jobs.modify("a", increment)

    assert result == {"n": 1, "status": "queued"}
    assert result is held, "the held object is brought up to date and stays the job's object"
    assert jobs["a"] is result
    assert stored(db_url, table_name, "a") == result
    assert [(e.version, e.value) for e in jobs.history("a")] == [
        (1, {"n": 0, "status": "queued"}), (2, result)]
    jobs.sync()
    assert stored(db_url, table_name, "a") == result, "the stale object was written back"
    assert len(jobs.history("a")) == 2


@pytest.mark.parametrize("stage", DB_STAGES)
def test_an_in_place_change_made_before_modify_is_kept_and_not_written_back_stale(
        make_store: MakeStore, db_url: str, table_name: str, stage: Stage) -> None:
    jobs = make_store(stage=stage, sync_interval=600)
    jobs["a"] = {"n": 0, "status": "queued"}
    held = jobs["a"]
    held["status"] = "running"                  # not written back yet

    assert jobs.modify("a", increment) == {"n": 1, "status": "running"}
    jobs.sync()

    assert stored(db_url, table_name, "a") == {"n": 1, "status": "running"}
    assert jobs["a"] == {"n": 1, "status": "running"}


@pytest.mark.parametrize("stage", DB_STAGES)
def test_modify_of_a_missing_key_needs_a_default(
        make_store: MakeStore, db_url: str, table_name: str, stage: Stage) -> None:
    jobs = make_store(stage=stage)
    with pytest.raises(KeyError):
        jobs.modify("nobody", increment)
    assert "nobody" not in jobs
    assert jobs.history("nobody") == []

    default = {"n": 10}
    assert jobs.modify("new", increment, default=default) == {"n": 11}
    assert default == {"n": 10}, "fn got the default itself, not a copy"
    assert stored(db_url, table_name, "new") == {"n": 11}
    assert jobs["new"] == {"n": 11}
    assert jobs.modify("count", lambda n: n + 1, default=0) == 1
    assert jobs.modify("count", lambda n: n + 1, default=0) == 2
    assert jobs["count"] == 2


@pytest.mark.parametrize("stage", DB_STAGES)
def test_modify_of_a_job_another_store_deleted_raises_key_error_and_lets_the_job_go(
        make_store: MakeStore, stage: Stage) -> None:
    here = make_store(stage=stage, sync_interval=600)
    there = make_store(stage=stage, sync_interval=600)
    here["a"] = {"n": 0}
    del there["a"]

    with pytest.raises(KeyError):
        here.modify("a", increment)

    assert "a" not in here
    assert here.get("a") is None
    assert here.history("a")[-1].op == "delete"


@pytest.mark.parametrize("stage", DB_STAGES)
def test_fn_raising_changes_nothing(make_store: MakeStore, db_url: str, table_name: str,
                                    stage: Stage) -> None:
    jobs = make_store(stage=stage, sync_interval=600)
    jobs["a"] = {"n": 0}
    held = jobs["a"]

    def boom(job: dict[str, Any]) -> dict[str, Any]:
        job["n"] = 99
        raise RuntimeError("no")

    with pytest.raises(RuntimeError, match="no"):
        jobs.modify("a", boom)
    with pytest.raises(KeyError, match="missing"):
        jobs.modify("a", lambda job: job["missing"])
    jobs.sync()

    assert held == {"n": 0}
    assert jobs["a"] == {"n": 0}
    assert stored(db_url, table_name, "a") == {"n": 0}
    assert len(jobs.history("a")) == 1
    assert jobs.modify("a", increment) == {"n": 1}, "the failed modify left a lock behind"


@pytest.mark.parametrize("stage", DB_STAGES)
def test_an_unencodable_result_raises_encode_error_and_writes_nothing(
        make_store: MakeStore, db_url: str, table_name: str, stage: Stage) -> None:
    jobs = make_store(stage=stage, sync_interval=600)
    jobs["a"] = {"n": 0}

    def to_a_set(job: dict[str, Any]) -> Any:
        job["n"] = 1
        job["tags"] = {"x", "y"}
        return job

    with pytest.raises(EncodeError):
        jobs.modify("a", to_a_set)
    with pytest.raises(EncodeError):
        jobs.modify("b", lambda _job: object(), default={"n": 0})
    jobs.sync()

    assert jobs["a"] == {"n": 0}
    assert stored(db_url, table_name, "a") == {"n": 0}
    assert stored(db_url, table_name, "b") is None
    assert "b" not in jobs
    assert len(jobs.history("a")) == 1
    assert jobs.failed_writes == 0


@pytest.mark.parametrize("stage", [Stage.DUAL_WRITE, Stage.DB_ONLY])
def test_modify_raises_when_the_database_is_unreachable_and_queues_nothing(
        make_store: MakeStore, db_url: str, table_name: str, stage: Stage) -> None:
    jobs = make_store(stage=stage, sync_interval=600)
    jobs["a"] = {"n": 0}

    with table_renamed_away(db_url, table_name):
        with pytest.raises(StoreUnavailableError, match="cannot modify 'a'"):
            jobs.modify("a", increment)
        assert jobs.queued_writes == 0

    assert jobs["a"] == {"n": 0}
    assert stored(db_url, table_name, "a") == {"n": 0}
    assert jobs.modify("a", increment) == {"n": 1}


@pytest.mark.parametrize("stage", [Stage.DUAL_WRITE, Stage.DB_ONLY])
def test_modify_raises_while_another_connection_holds_the_sqlite_write_lock(
        tmp_path: Path, stage: Stage) -> None:
    url = f"sqlite:///{tmp_path}/jobs.db"
    with JobStore[Any](f"{url}?timeout=0.2", table="jobs", stage=stage, sync_interval=600) as jobs:
        jobs["a"] = {"n": 0}
        with write_lock_held(url), pytest.raises(StoreUnavailableError):
            jobs.modify("a", increment)
        assert jobs.queued_writes == 0
        assert jobs["a"] == {"n": 0}
        assert jobs.modify("a", increment) == {"n": 1}
    assert stored(url, "jobs", "a") == {"n": 1}


def test_a_queued_write_lands_before_modify_reads_the_row(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/jobs.db"
    with JobStore[Any](f"{url}?timeout=0.2", table="jobs", stage=Stage.DUAL_WRITE,
                  sync_interval=600) as jobs:
        jobs["a"] = {"n": 0}
        with table_renamed_away(url, "jobs"):
            jobs["a"] = {"n": 5}                    # queued: the dict is the authority
            assert jobs.queued_writes == 1
            with pytest.raises(StoreUnavailableError):
                jobs.modify("a", increment)
        assert jobs.modify("a", increment) == {"n": 6}
        assert jobs.queued_writes == 0
    assert stored(url, "jobs", "a") == {"n": 6}


def test_in_memory_eight_threads_modifying_one_job_lose_no_increment(tmp_path: Path) -> None:
    threads, rounds = 8, 250
    with JobStore[Any](f"sqlite:///{tmp_path}/jobs.db", table="jobs", stage=Stage.MEMORY) as jobs:
        jobs["counter"] = {"n": 0}
        held = jobs["counter"]

        def work() -> None:
            for _ in range(rounds):
                jobs.modify("counter", increment)

        workers = [threading.Thread(target=work) for _ in range(threads)]
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join()

        assert jobs["counter"] == {"n": threads * rounds}
        assert held is jobs["counter"], "the held object is brought up to date in place"
        with pytest.raises(KeyError):
            jobs.modify("nobody", increment)
        assert jobs.modify("new", increment, default={"n": 0}) == {"n": 1}
        with pytest.raises(EncodeError):
            jobs.modify("counter", lambda _job: {"bad": {1}})
        assert jobs["counter"] == {"n": threads * rounds}
