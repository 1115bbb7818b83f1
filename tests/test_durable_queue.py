"""A write the database refused, in a dict-first stage, is kept on local disk before the call
returns: a SIGKILL or a ``close()`` does not lose it, and the next store opened on the database
replays it through the same merge as any write (DESIGN §2).

The refusal is real: another connection holds SQLite's write lock longer than the store's busy
timeout. The processes are real and are killed with SIGKILL.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from _workers import Agent, run_worker
from jobstore import JobStore, Stage
from jobstore.cli import cli
from test_crash import Zygote, acknowledged, kill_at_random
from test_db_failure import write_lock_held
from workers.models import PresentationJob, sample_job

BUSY = 0.1


def url_of(path: Path) -> str:
    return f"sqlite:///{path}?timeout={BUSY}"


def stored(path: Path) -> dict[str, Any]:
    conn = sqlite3.connect(path)
    try:
        return {k: json.loads(p) for k, p in conn.execute("SELECT key, payload FROM jobs")}
    finally:
        conn.close()


def queue_files(path: Path) -> list[Path]:
    directory = Path(f"{path}.jobstore-queue")
    return sorted(directory.glob("*.queue")) if directory.exists() else []


def killed(agent: Agent) -> None:
    os.kill(agent.process.pid, signal.SIGKILL)
    agent.process.wait(30)
    agent.close()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "jobs.db"


def test_a_write_queued_while_the_database_was_locked_survives_a_sigkill(path: Path) -> None:
    with JobStore(url_of(path), table="jobs") as seed:
        seed["a"] = {"n": 0}
    agent = Agent(url_of(path), "jobs", "dual_write", 600)
    try:
        with write_lock_held(path):
            agent("set", key="a", value={"n": 1})
            assert agent("stats")["queued_writes"] == 1
            killed(agent)
    finally:
        agent.close()
    assert stored(path)["a"] == {"n": 0}
    listed = CliRunner().invoke(cli, ["--url", url_of(path), "--table", "jobs", "status",
                                      "--json"])
    assert json.loads(listed.stdout)["queue_journals"] == [
        {"path": str(queue_files(path)[0]), "writes": 1, "held": False}]
    with JobStore(url_of(path), table="jobs") as reopened:
        reopened.sync()
        assert reopened.queued_writes == 0
    assert stored(path)["a"] == {"n": 1}
    assert queue_files(path) == []


def test_close_leaves_what_cannot_land_in_the_journal_and_the_next_store_lands_it(
        path: Path, caplog: pytest.LogCaptureFixture) -> None:
    jobs: JobStore[str, Any] = JobStore(url_of(path), table="jobs", sync_interval=600)
    with write_lock_held(path):
        for n in range(20):
            jobs[f"job-{n}"] = {"n": n}
        assert jobs.queued_writes == 20
        started = time.monotonic()
        jobs.close()
        took = time.monotonic() - started
    print(f"close() with 20 writes it could not land took {took:.3f} s")
    assert took < 2.0
    assert "stay in" in caplog.text
    assert len(queue_files(path)) == 1
    assert stored(path) == {}
    with JobStore(url_of(path), table="jobs") as reopened:
        reopened.sync()
        assert dict(reopened.items()) == {f"job-{n}": {"n": n} for n in range(20)}
    assert stored(path) == {f"job-{n}": {"n": n} for n in range(20)}
    assert queue_files(path) == []


def test_a_replayed_change_keeps_another_servers_newer_field_and_is_not_dropped_as_older(
        path: Path) -> None:
    with JobStore(url_of(path), table="jobs") as seed:
        seed["a"] = {"status": "queued", "progress": 0, "note": ""}
    agent = Agent(url_of(path), "jobs", "dual_write", 600)
    try:
        assert agent("get", key="a")["value"]["status"] == "queued"
        with write_lock_held(path):
            agent("set", key="a", value={"status": "processing", "progress": 0, "note": ""})
            killed(agent)
    finally:
        agent.close()
    with JobStore(url_of(path), table="jobs", sync_interval=600) as other:
        other["a"] = {**other["a"], "note": "seen by another server"}
    with JobStore(url_of(path), table="jobs", sync_interval=600) as replaying:
        replaying.sync()
    assert stored(path)["a"] == {"status": "processing", "progress": 0,
                                 "note": "seen by another server"}


def test_two_live_processes_keep_journals_of_their_own_and_a_later_store_adopts_both(
        path: Path) -> None:
    with JobStore(url_of(path), table="jobs") as seed:
        seed["x"] = {"n": 0}
    agents = [Agent(url_of(path), "jobs", "dual_write", 0.05) for _ in range(2)]
    try:
        with write_lock_held(path):
            agents[0]("set", key="a", value={"by": 0})
            agents[1]("set", key="b", value={"by": 1})
            assert len(queue_files(path)) == 2
            time.sleep(0.3)  # several rounds of each loop: neither takes the other's journal
            assert [agent("stats")["queued_writes"] for agent in agents] == [1, 1]
            for agent in agents:
                killed(agent)
    finally:
        for agent in agents:
            agent.close()
    with JobStore(url_of(path), table="jobs") as reopened:
        reopened.sync()
    assert stored(path) == {"x": {"n": 0}, "a": {"by": 0}, "b": {"by": 1}}
    assert queue_files(path) == []


def test_a_queued_deletion_and_clear_survive_a_sigkill(path: Path) -> None:
    with JobStore(url_of(path), table="jobs") as seed:
        seed.update({"a": {"n": 1}, "b": {"n": 2}})
    agent = Agent(url_of(path), "jobs", "dual_write", 600)
    try:
        with write_lock_held(path):
            agent("delete", key="a")
            killed(agent)
    finally:
        agent.close()
    with JobStore(url_of(path), table="jobs") as reopened:
        reopened.sync()
        assert "a" not in reopened
    assert stored(path) == {"b": {"n": 2}}
    jobs: JobStore[str, Any] = JobStore(url_of(path), table="jobs", sync_interval=600)
    with write_lock_held(path):
        jobs.clear()
        jobs["c"] = {"n": 3}
        jobs.close()
    with JobStore(url_of(path), table="jobs") as reopened:
        reopened.sync()
    assert stored(path) == {"c": {"n": 3}}


def test_the_journal_is_private_and_empty_once_the_database_takes_its_writes(
        path: Path) -> None:
    with JobStore(url_of(path), table="jobs", sync_interval=600) as jobs:
        with write_lock_held(path):
            jobs["a"] = {"n": 1}
        [journal] = queue_files(path)
        assert journal.stat().st_mode & 0o777 == 0o600
        assert journal.parent.stat().st_mode & 0o777 == 0o700
        assert journal.stat().st_size > 0
        jobs.sync()
        assert jobs.queued_writes == 0
        assert journal.stat().st_size == 0
    assert queue_files(path) == []


QUEUED_KILLS = 50


@pytest.mark.slow
def test_writers_killed_50_times_while_the_database_refuses_lose_no_acknowledged_write(
        tmp_path: Path) -> None:
    """Each writer writes while another connection holds the write lock, so every write it
    acknowledges is a queued one; it is SIGKILLed at a random moment, the lock is released, and
    a store opened afterwards must land every acknowledged write."""
    path = tmp_path / "jobs.db"
    with JobStore(url_of(path), table="jobs") as seed:
        seed["seed"] = {"n": 0}
    zygote = Zygote(url_of(path))
    rng = random.Random()
    acked_in_all: dict[str, int] = {}
    queued_in_all = 0
    try:
        for run in range(QUEUED_KILLS):
            log = tmp_path / f"run{run}.log"
            with write_lock_held(path):
                kill_at_random(zygote, Stage.DUAL_WRITE, f"r{run}", log, rng,
                               while_opening=run % 10 == 0)
            acked = acknowledged(log)
            queued_in_all += len(acked)
            with JobStore(url_of(path), table="jobs", model=PresentationJob) as replaying:
                replaying.sync()
                assert replaying.queued_writes == 0, replaying.last_error
                rows = stored(path)
                lost = sorted(key for key in acked if key not in rows)
                assert not lost, f"run {run}: {len(lost)} acknowledged writes lost: {lost[:5]}"
                wrong = [key for key, n in acked.items() if replaying[key] != sample_job(key, n)]
                assert not wrong, f"run {run}: acknowledged writes replayed wrong: {wrong[:5]}"
            acked_in_all.update(acked)
    finally:
        zygote.close()
    print(f"{QUEUED_KILLS} writers SIGKILLed while the database refused writes: "
          f"{queued_in_all} acknowledged (queued) writes, 0 lost")
    assert queued_in_all >= QUEUED_KILLS, "the writers were killed before they wrote anything"


def test_a_full_disk_queues_writes_on_disk_and_close_leaves_them_for_the_next_store(
        path: Path) -> None:
    """The database file may not grow past 512 KiB (RLIMIT_FSIZE in the writer): it takes
    the first writes, refuses the rest ("database or disk is full"), and the journal keeps them."""
    report = json.loads(run_worker("fill_disk", url_of(path), 512 * 1024, 400))
    print(f"disk full: {report}")
    assert report["acked"] == 400
    assert report["errors"] == []
    assert report["queued"] == report["journaled"] > 300
    assert report["close_s"] < 2.0
    assert len(stored(path)) == 400 - report["queued"]
    with JobStore(url_of(path), table="jobs") as reopened:
        reopened.sync()
        assert reopened.queued_writes == 0
    assert stored(path) == {f"job-{n}": {"n": n, "text": "x" * 1000} for n in range(400)}


def test_when_the_journal_cannot_be_written_either_the_write_raises_instead_of_returning(
        path: Path) -> None:
    """Past the limit the journal refuses too: a write that cannot be kept does not return as
    if it had been; every write that did return lands."""
    report = json.loads(run_worker("fill_disk", url_of(path), 512 * 1024, 1200))
    assert report["errors"], report
    assert all(e.startswith("StoreUnavailableError") and "journal could not keep it" in e
               for e in report["errors"])
    with JobStore(url_of(path), table="jobs") as reopened:
        reopened.sync()
    rows = stored(path)
    returned = {f"job-{n}" for n in range(1200)} - {f"job-{n}" for n in report["failed"]}
    assert len(returned) == report["acked"]
    assert sorted(returned - set(rows)) == []


def test_queued_writes_of_int_keys_come_back_as_int_keys(path: Path) -> None:
    jobs: JobStore[int, Any] = JobStore(url_of(path), table="jobs", key_type=int,
                                        sync_interval=600)
    with write_lock_held(path):
        jobs[7] = {"n": 7}
        jobs.close()
    with JobStore(url_of(path), table="jobs", key_type=int) as reopened:
        reopened.sync()
        assert dict(reopened.items()) == {7: {"n": 7}}


def test_a_read_only_database_file_queues_writes_that_land_once_it_is_writable(
        path: Path) -> None:
    """The writer process cannot open the file for writing (mode 0444; as root, for whom a
    mode is no bar, the file is made immutable with ``chattr +i``): its writes return queued,
    and close() leaves them journaled for the store that opens it once it is writable."""
    with JobStore(url_of(path), table="jobs") as seed:
        seed["seed"] = {"n": 0}
    with read_only(path):
        out = run_worker("write_jobs", url_of(path), "jobs", "dual_write", "ro", 5)
        assert out.count("ack ") == 5
        assert "closed" in out
        assert set(stored(path)) == {"seed"}
        assert len(queue_files(path)) == 1
    with JobStore(url_of(path), table="jobs", model=PresentationJob) as reopened:
        reopened.sync()
        assert reopened.queued_writes == 0
        assert all(reopened[f"ro-{n}"] == sample_job(f"ro-{n}", n) for n in range(5))


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    os.chmod(path, 0o444)
    immutable = os.geteuid() == 0
    if immutable:
        done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
        if done.returncode:
            os.chmod(path, 0o644)
            pytest.skip(f"as root a read-only file needs chattr +i, which failed: {done.stderr}")
    try:
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        os.chmod(path, 0o644)
