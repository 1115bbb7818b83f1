"""``max_memory_items`` bounds the dict tier: least recently used jobs leave it, only once they
are safely in the database, and every job still reads back."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from jobstore import JobStore, Stage
from workers.models import PresentationJob, sample_job

BOUND = 50
JOBS = 1000
KEEPING_STAGES = [Stage.DUAL_WRITE, Stage.SHADOW, Stage.DB_PRIMARY]


def open_store(path: Path, stage: Stage, legacy: dict[str, PresentationJob],
               timeout: str = "") -> JobStore[str, PresentationJob]:
    return JobStore(f"sqlite:///{path}{timeout}", table="jobs", model=PresentationJob,
                    stage=stage, legacy=legacy, max_memory_items=BOUND, sync_interval=600)


def rows_in_db(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT count(*) FROM jobs").fetchone()[0])
    finally:
        conn.close()


@pytest.mark.parametrize("stage", KEEPING_STAGES)
def test_a_thousand_jobs_through_a_bound_of_50_leave_at_most_50_in_the_dict_and_all_read_back(
        tmp_path: Path, stage: Stage) -> None:
    legacy: dict[str, PresentationJob] = {}
    with open_store(tmp_path / "jobs.db", stage, legacy) as jobs:
        largest = 0
        for n in range(JOBS):
            jobs[f"job-{n}"] = sample_job(f"job-{n}", n)
            largest = max(largest, len(legacy))
        assert largest <= BOUND
        assert len(jobs) == JOBS
        assert rows_in_db(tmp_path / "jobs.db") == JOBS

        for n in range(JOBS):
            assert jobs[f"job-{n}"] == sample_job(f"job-{n}", n)
            largest = max(largest, len(legacy))
        assert largest <= BOUND, "reads of evicted jobs grew the dict past the bound"
        assert sorted(jobs) == sorted(f"job-{n}" for n in range(JOBS))
        assert {k: v for k, v in jobs.items()} == {
            f"job-{n}": sample_job(f"job-{n}", n) for n in range(JOBS)}
        assert len(legacy) <= BOUND

        jobs.sync()
        # internal: the tracker lets go of what nobody holds, so it is bounded like the dict
        assert len(jobs._parts.tier.tracker) <= BOUND, "objects nobody holds are still tracked"


def test_the_most_recently_used_jobs_are_the_ones_kept(tmp_path: Path) -> None:
    legacy: dict[str, PresentationJob] = {}
    with open_store(tmp_path / "jobs.db", Stage.DUAL_WRITE, legacy) as jobs:
        jobs.update({f"job-{n}": sample_job(f"job-{n}", n) for n in range(200)})
        assert len(legacy) <= BOUND
        for n in range(10):
            assert jobs[f"job-{n}"].job_id == f"job-{n}"  # read from the DB, now the newest
        assert {f"job-{n}" for n in range(10)} <= set(legacy)
        assert "job-10" not in legacy
        assert f"job-{199}" in legacy


def test_a_legacy_dict_of_a_thousand_jobs_shrinks_to_the_bound_once_they_are_in_the_db(
        tmp_path: Path) -> None:
    legacy = {f"job-{n}": sample_job(f"job-{n}", n) for n in range(JOBS)}
    with open_store(tmp_path / "jobs.db", Stage.DUAL_WRITE, legacy) as jobs:
        jobs.sync()
        assert rows_in_db(tmp_path / "jobs.db") == JOBS
        assert len(legacy) <= BOUND
        for n in range(0, JOBS, 7):
            assert jobs[f"job-{n}"] == sample_job(f"job-{n}", n)
        assert len(legacy) <= BOUND


def test_jobs_the_database_has_not_taken_stay_in_the_dict_past_the_bound(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    legacy: dict[str, PresentationJob] = {}
    with open_store(path, Stage.DUAL_WRITE, legacy, timeout="?timeout=0.2") as jobs:
        jobs["first"] = sample_job("first")
        lock = sqlite3.connect(path, isolation_level=None)
        try:
            lock.execute("BEGIN IMMEDIATE")          # the DB takes no write for now
            for n in range(2 * BOUND):
                jobs[f"job-{n}"] = sample_job(f"job-{n}", n)
            assert jobs.queued_writes == 2 * BOUND
            assert {f"job-{n}" for n in range(2 * BOUND)} <= set(legacy)
            lock.execute("ROLLBACK")
        finally:
            lock.close()
        jobs.sync()
        assert jobs.queued_writes == 0
        assert len(legacy) <= BOUND
        assert rows_in_db(path) == 2 * BOUND + 1
        assert all(jobs[f"job-{n}"] == sample_job(f"job-{n}", n) for n in range(2 * BOUND))
