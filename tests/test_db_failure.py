"""A real database failure: where the dict is the authority the caller never notices and the write
lands once the fault clears; where the database is, the caller gets `StoreUnavailableError` and
nothing changes.

The faults are real: another connection holding SQLite's write lock (``BEGIN IMMEDIATE``) longer
than the store's busy timeout, or the job table renamed away under the store. (Making the file
read-only does not stop root, whom these tests may run as.)
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from jobstore import JobStore, Stage, StoreUnavailableError
from jobstore.verify import DriftKind
from workers.loop_rounds import wait_for_first_loop_round
from workers.models import PresentationJob, sample_job

OpenStore = Callable[..., JobStore[str, PresentationJob]]
BUSY_TIMEOUT = 0.2


@contextlib.contextmanager
def write_lock_held(path: Path) -> Iterator[None]:
    """Another connection holds the write lock until the block ends."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=5)
    try:
        conn.execute("BEGIN IMMEDIATE")
        yield
        conn.execute("ROLLBACK")
    finally:
        conn.close()


@contextlib.contextmanager
def table_renamed_away(path: Path) -> Iterator[None]:
    """The job table is gone (renamed) until the block ends."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=5)
    try:
        conn.execute("ALTER TABLE jobs RENAME TO jobs_away")
        yield
        conn.execute("ALTER TABLE jobs_away RENAME TO jobs")
    finally:
        conn.close()


FAULTS: dict[str, Callable[[Path], contextlib.AbstractContextManager[None]]] = {
    "write_lock_held": write_lock_held,
    "table_renamed_away": table_renamed_away,
}


def stored(path: Path) -> dict[str, str]:
    """Every job's payload, read by another connection."""
    conn = sqlite3.connect(path)
    try:
        return dict(conn.execute("SELECT key, payload FROM jobs").fetchall())
    finally:
        conn.close()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "jobs.db"


@pytest.fixture
def open_store(path: Path) -> Iterator[OpenStore]:
    stores: list[JobStore[str, PresentationJob]] = []

    def make(stage: Stage, **kwargs: object) -> JobStore[str, PresentationJob]:
        kwargs.setdefault("sync_interval", 600)
        store: JobStore[str, PresentationJob] = JobStore(
            f"sqlite:///{path}?timeout={BUSY_TIMEOUT}", table="jobs", model=PresentationJob,
            stage=stage, **kwargs)  # type: ignore[arg-type]
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


@pytest.mark.parametrize("fault", sorted(FAULTS))
@pytest.mark.parametrize("stage", [Stage.DUAL_WRITE, Stage.SHADOW])
def test_in_a_dict_first_stage_a_failing_db_is_invisible_and_the_writes_land_afterwards(
        open_store: OpenStore, path: Path, stage: Stage, fault: str) -> None:
    legacy: dict[str, PresentationJob] = {}
    jobs = open_store(stage, legacy=legacy)
    jobs["a"] = sample_job("a", 1)
    jobs["gone"] = sample_job("gone", 2)
    a = jobs["a"]
    wait_for_first_loop_round(jobs)  # its next round is an interval (600 s) away
    before = stored(path)

    with FAULTS[fault](path):
        started = time.monotonic()
        jobs["b"] = sample_job("b", 3)                  # the caller is unaffected...
        assert time.monotonic() - started < 3.0
        jobs.update({"c": sample_job("c", 4)})
        a.status = "completed"                          # ...in place too
        jobs.sync()
        del jobs["gone"]
        assert jobs["b"] == sample_job("b", 3)
        assert jobs.get("c") == sample_job("c", 4)
        assert "gone" not in jobs
        assert jobs["a"].status == "completed"
        assert sorted(legacy) == ["a", "b", "c"]
        assert jobs.queued_writes >= 4                  # ...the writes wait in the queue
        assert jobs.last_error is not None
        report = jobs.verify()
        assert not report.consistent
        assert {d.kind for d in report.drifts} <= {DriftKind.WRITE_FAILED,
                                                   DriftKind.WRITE_PENDING}
        assert {d.key for d in report.drifts} >= {"a", "b", "c"}
    assert stored(path) == before, "a write got through the fault: the test proves nothing"

    jobs.sync()                                         # the fault has cleared
    assert jobs.queued_writes == 0
    rows = stored(path)
    assert sorted(rows) == ["a", "b", "c"]
    assert '"status":"completed"' in rows["a"]
    assert jobs.verify().consistent
    fresh: JobStore[str, PresentationJob] = JobStore(
        f"sqlite:///{path}", table="jobs", model=PresentationJob)
    with fresh:
        assert fresh["b"] == sample_job("b", 3)
        assert fresh["c"] == sample_job("c", 4)
        assert "gone" not in fresh


@pytest.mark.slow
def test_the_background_loop_drains_the_queue_within_a_few_intervals_once_the_fault_clears(
        open_store: OpenStore, path: Path) -> None:
    jobs = open_store(Stage.DUAL_WRITE, sync_interval=0.2)
    jobs["a"] = sample_job("a", 1)
    with write_lock_held(path):
        jobs["b"] = sample_job("b", 2)
        assert jobs.queued_writes == 1
        jobs.sync()                                     # a drain that fails keeps it queued
        assert jobs.queued_writes == 1
    cleared = time.monotonic()
    while jobs.queued_writes:
        assert time.monotonic() - cleared < 5.0, f"still queued: {jobs.last_error}"
        time.sleep(0.01)
    print(f"queue drained {time.monotonic() - cleared:.3f} s after the fault cleared "
          "(sync_interval 0.2 s)")
    assert "b" in stored(path)
    assert jobs.verify().consistent


@pytest.mark.parametrize("fault", sorted(FAULTS))
@pytest.mark.parametrize("stage", [Stage.DB_PRIMARY, Stage.DB_ONLY])
def test_where_the_db_is_the_authority_its_failure_is_the_callers_and_changes_nothing(
        open_store: OpenStore, path: Path, stage: Stage, fault: str) -> None:
    legacy: dict[str, PresentationJob] = {}
    jobs = open_store(stage, legacy=legacy)
    jobs["a"] = sample_job("a", 1)
    a = jobs["a"]
    before_rows = stored(path)
    before_dict = dict(legacy)

    with FAULTS[fault](path):
        with pytest.raises(StoreUnavailableError):
            jobs["a"] = sample_job("a", 9)
        with pytest.raises(StoreUnavailableError):
            jobs["b"] = sample_job("b", 2)
        with pytest.raises(StoreUnavailableError):
            jobs.update({"b": sample_job("b", 2), "c": sample_job("c", 3)})
        with pytest.raises(StoreUnavailableError):
            del jobs["a"]
        with pytest.raises(StoreUnavailableError):
            jobs.pop("a")
        with pytest.raises(StoreUnavailableError):
            jobs.setdefault("d", sample_job("d", 4))
        a.status = "completed"
        with pytest.raises(StoreUnavailableError):
            jobs.sync()
        assert legacy == before_dict
        assert jobs.queued_writes == 0
    assert stored(path) == before_rows

    a.status = "queued"                                 # the app undoes its change
    jobs.sync()
    assert stored(path) == before_rows
    assert jobs["a"] == sample_job("a", 1)
    assert "b" not in jobs
    assert "d" not in jobs
    assert legacy == before_dict
