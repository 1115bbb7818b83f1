"""In-place changes under the timing a live service has: readers racing write-backs, a caller
dropping its object right after its last change, a stage change under a running render, and
verify while a change waits for its write-back. The example's stage walk found each of these."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from jobstore import JobStore, Stage, admin
from workers.loop_rounds import wait_for_first_loop_round


def stored(path: Path, key: str) -> dict[str, object]:
    with sqlite3.connect(path) as conn:
        (payload,) = conn.execute("SELECT payload FROM jobs WHERE key = ?", (key,)).fetchone()
    conn.close()
    return dict(json.loads(payload))


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "jobs.db"


@pytest.mark.parametrize("stage", [Stage.DB_PRIMARY, Stage.DB_ONLY])
def test_a_handed_out_job_stays_tracked_while_another_thread_reads_it(
        path: Path, stage: Stage) -> None:
    """A read that raced a write-back of the same job does not replace the tracked object with
    an older copy, so the job's later in-place changes still reach the database."""
    jobs: JobStore[str, dict[str, object]] = JobStore(
        f"sqlite:///{path}", table="jobs", stage=stage, sync_interval=0.01)
    with jobs:
        for n in range(6):
            key = f"job{n}"
            jobs[key] = {"status": "queued", "progress": 0}
            job = jobs[key]
            stop = threading.Event()

            def poll(key: str = key, stop: threading.Event = stop) -> None:
                while not stop.is_set():
                    jobs.get(key)

            reader = threading.Thread(target=poll)
            reader.start()
            try:
                for step in range(1, 16):
                    job["progress"] = step
                    time.sleep(0.003)
                job["status"] = "completed"
                time.sleep(0.1)
            finally:
                stop.set()
                reader.join(timeout=10)
            del job
            jobs.sync()
            assert stored(path, key) == {"status": "completed", "progress": 15}, key


@pytest.mark.parametrize("stage", [Stage.DUAL_WRITE, Stage.DB_ONLY])
def test_a_change_made_just_before_the_caller_drops_the_job_reaches_the_database(
        path: Path, stage: Stage) -> None:
    """The loop decides an object is no longer referenced before it encodes it for the last
    time, so a change made between a write-back and the caller letting go is not lost."""
    jobs: JobStore[str, dict[str, object]] = JobStore(
        f"sqlite:///{path}", table="jobs", stage=stage, sync_interval=0.001)
    with jobs:
        keys = [f"job{n}" for n in range(250)]
        for key in keys:
            jobs[key] = {"status": "queued", "progress": 0}
            job = jobs[key]
            for step in range(1, 4):
                job["progress"] = step
                time.sleep(0.0005)
            job["status"] = "completed"
            del job
        jobs.sync()
        lost = [key for key in keys if stored(path, key)["status"] != "completed"]
        assert lost == []


def test_a_job_taken_in_memory_and_changed_after_the_move_to_dual_write_reaches_the_database(
        path: Path) -> None:
    """A render that took its job from the dict in ``memory`` goes on changing it after the
    fleet moves to ``dual_write``; those changes are written back like any other."""
    jobs: JobStore[str, dict[str, object]] = JobStore(
        f"sqlite:///{path}", table="jobs", stage=Stage.MEMORY, sync_interval=60)
    with jobs:
        jobs["abc123"] = {"status": "processing", "progress": 0.5}
        job = jobs["abc123"]
        admin.set_stage(Stage.DUAL_WRITE, f"sqlite:///{path}", table="jobs", wait=False)
        jobs.sync()
        assert jobs.stage is Stage.DUAL_WRITE
        assert stored(path, "abc123") == {"status": "processing", "progress": 0.5}
        job["status"], job["progress"] = "completed", 1.0
        jobs.sync()
        assert stored(path, "abc123") == {"status": "completed", "progress": 1.0}


@pytest.mark.parametrize("stage", [Stage.DUAL_WRITE, Stage.DB_PRIMARY])
def test_verify_does_not_call_an_in_place_change_awaiting_its_write_back_drift(
        path: Path, stage: Stage) -> None:
    """A job changed in place since its last write-back is not drift (the next round writes
    it); the same job changed in the database behind the process's back is."""
    jobs: JobStore[str, dict[str, object]] = JobStore(
        f"sqlite:///{path}", table="jobs", stage=stage, sync_interval=60)
    with jobs:
        jobs["abc123"] = {"status": "processing", "progress": 0.5}
        wait_for_first_loop_round(jobs)  # no round writes the change back during the test
        job = jobs["abc123"]
        job["progress"] = 0.75
        assert jobs.verify().consistent
        jobs.sync()  # the change lands now, so no later write-back races the edit below
        with sqlite3.connect(path) as conn:
            conn.execute("UPDATE jobs SET payload = ? WHERE key = 'abc123'",
                         (json.dumps({"status": "failed", "progress": 0.5}),))
        conn.close()
        report = jobs.verify()
        assert [d.key for d in report.drifts] == ["abc123"]
        del job
