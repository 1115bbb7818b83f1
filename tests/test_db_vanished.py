"""The SQLite file vanishing under a running store: deleted (with its -wal and -shm) or replaced
by another file. SQLite keeps writing into the unlinked file through its open connections, so
without a check every later write "succeeds" into a file nobody will ever open again.

Here the store notices that the path no longer names the file it opened and treats the database
as unavailable: a dict-first stage queues the writes and says why, a database-first stage raises
`StoreUnavailableError` naming the cause, and no connection creates an empty file at the path.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from jobstore import JobStore, Stage, StoreUnavailableError
from workers.loop_rounds import wait_for_first_loop_round
from workers.models import PresentationJob, sample_job

OpenStore = Callable[..., JobStore[str, PresentationJob]]


def delete_database(path: Path) -> None:
    """Remove the database file and its -wal and -shm, as a careless cleanup would."""
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        name.unlink(missing_ok=True)
    assert not path.exists()


def replace_database(path: Path) -> None:
    """Put a copy of the database in the file's place (a restore from a backup, say), the way
    an atomic deploy does: ``os.replace`` of a new file over the path."""
    copy = path.with_name("copy.db")
    source = sqlite3.connect(path)
    target = sqlite3.connect(copy)
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()
    os.replace(copy, path)


FAULTS: dict[str, Callable[[Path], object]] = {
    "deleted": delete_database,
    "replaced": replace_database,
}


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "jobs.db"


@pytest.fixture
def open_store(path: Path) -> Iterator[OpenStore]:
    stores: list[JobStore[str, PresentationJob]] = []

    def make(stage: Stage, target: object = None,
             **kwargs: object) -> JobStore[str, PresentationJob]:
        kwargs.setdefault("sync_interval", 600)
        store: JobStore[str, PresentationJob] = JobStore(
            target or f"sqlite:///{path}", table="jobs", model=PresentationJob,  # type: ignore[arg-type]
            stage=stage, **kwargs)  # type: ignore[arg-type]
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


@pytest.mark.parametrize("fault", sorted(FAULTS))
@pytest.mark.parametrize("stage", [Stage.DUAL_WRITE, Stage.SHADOW])
def test_in_a_dict_first_stage_writes_after_the_file_vanished_are_queued_not_lost(
        open_store: OpenStore, path: Path, stage: Stage, fault: str) -> None:
    jobs = open_store(stage)
    jobs["a"] = sample_job("a", 1)
    wait_for_first_loop_round(jobs)
    assert jobs.queued_writes == 0

    FAULTS[fault](path)
    for n in range(10):
        jobs[f"k{n}"] = sample_job(f"k{n}", n)          # the caller is unaffected...
    assert jobs["k3"] == sample_job("k3", 3)
    assert jobs.queued_writes == 10                     # ...and no write claims the dead file
    assert jobs.last_error is not None
    assert fault in jobs.last_error, jobs.last_error
    jobs.sync()                                         # a retry does not land them either
    assert jobs.queued_writes == 10
    assert not jobs.verify().consistent


@pytest.mark.parametrize("fault", sorted(FAULTS))
@pytest.mark.parametrize("stage", [Stage.DB_PRIMARY, Stage.DB_ONLY])
def test_where_the_db_is_the_authority_a_vanished_file_is_the_callers_error_naming_it(
        open_store: OpenStore, path: Path, stage: Stage, fault: str) -> None:
    jobs = open_store(stage)
    jobs["a"] = sample_job("a", 1)

    FAULTS[fault](path)
    with pytest.raises(StoreUnavailableError, match=f"SQLite file .*{fault}"):
        jobs["b"] = sample_job("b", 2)
    with pytest.raises(StoreUnavailableError, match=fault):
        jobs["a"]                                       # reads stop too, once it is known
    with pytest.raises(StoreUnavailableError, match=fault):
        jobs.modify("a", lambda job: job)
    assert jobs.queued_writes == 0


@pytest.mark.parametrize("pool", ["queue", "null"])
def test_the_store_never_writes_into_a_file_put_in_its_place(
        open_store: OpenStore, path: Path, pool: str) -> None:
    """The replacing file's own bytes stay as they were put there. (SQLite leaves the old -wal
    beside it, which is why a file is restored only with every process stopped.)"""
    engine = create_engine(f"sqlite:///{path}", poolclass=NullPool) if pool == "null" else None
    try:
        jobs = open_store(Stage.DUAL_WRITE, engine)
        jobs["a"] = sample_job("a", 1)

        replace_database(path)
        put_there = path.read_bytes()
        jobs["a"] = sample_job("a", 2)
        jobs["b"] = sample_job("b", 3)
        del jobs["a"]
        jobs.sync()
        assert jobs.queued_writes == 2
        jobs.close()
        assert path.read_bytes() == put_there
    finally:
        if engine is not None:
            engine.dispose()


def test_the_store_creates_no_empty_file_where_its_file_was(
        open_store: OpenStore, path: Path) -> None:
    """An engine that opens a connection per checkout (NullPool) would make sqlite3 create
    a new, empty database at the path on the next statement."""
    engine = create_engine(f"sqlite:///{path}", poolclass=NullPool)
    try:
        jobs = open_store(Stage.DUAL_WRITE, engine)
        jobs["a"] = sample_job("a", 1)
        wait_for_first_loop_round(jobs)

        delete_database(path)
        jobs["b"] = sample_job("b", 2)
        del jobs["a"]
        jobs.sync()
        assert "b" in jobs
        assert not path.exists(), "a connection created a new database where the old one was"
        assert jobs.queued_writes == 2
        assert jobs.last_error is not None
        assert "deleted" in jobs.last_error
        jobs.close()
        assert not path.exists()
    finally:
        engine.dispose()


def test_the_store_creates_no_empty_file_when_its_pool_grows(
        open_store: OpenStore, path: Path) -> None:
    jobs = open_store(Stage.DB_ONLY)
    jobs["a"] = sample_job("a", 1)

    delete_database(path)
    with pytest.raises(StoreUnavailableError, match="deleted"):
        jobs["b"] = sample_job("b", 2)
    for _ in range(3):
        with pytest.raises(StoreUnavailableError, match="deleted"):
            len(jobs)
    jobs.close()
    assert not path.exists()


def test_opening_a_missing_file_beside_queued_writes_warns(
        open_store: OpenStore, path: Path, caplog: pytest.LogCaptureFixture) -> None:
    Path(f"{path}.jobstore-queue").mkdir()
    with caplog.at_level(logging.WARNING, logger="jobstore"):
        open_store(Stage.DUAL_WRITE)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("created anew" in m and str(path) in m for m in warnings), warnings


def test_opening_an_existing_file_beside_a_queue_says_nothing(
        open_store: OpenStore, path: Path, caplog: pytest.LogCaptureFixture) -> None:
    open_store(Stage.DUAL_WRITE).close()
    Path(f"{path}.jobstore-queue").mkdir()
    with caplog.at_level(logging.WARNING, logger="jobstore"):
        open_store(Stage.DUAL_WRITE)
    assert not [r for r in caplog.records if "created anew" in r.getMessage()]
