"""Several processes on one SQLite file: four of two threads each writing at once, a parent and its
forked child, two service processes seeing each other's jobs."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from _workers import WAIT_S, Agent, run_worker, worker

PROCESSES = 4
THREADS = 2
ROUNDS = 100
PINNED = {0: "dual_write", 1: "dual_write", 2: "db_only", 3: "db_only"}
"""Two processes in each stage where writes go to the DB (pinned by ``$JOBSTORE_STAGE``)."""
INTERVAL = 0.3
MARGIN = 0.25
"""Scheduling slack on a shared 2-core machine."""


@pytest.mark.slow
def test_four_processes_of_two_threads_lose_no_write_and_never_see_database_is_locked(
        tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    url = f"sqlite:///{path}"
    go = tmp_path / "go"
    processes = []
    for proc in range(PROCESSES):
        processes.append(worker("hammer", url, "jobs", proc, THREADS, ROUNDS, go,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stage_pin=PINNED[proc]))
    summaries = []
    try:
        for process in processes:
            assert process.stdout is not None
            assert process.stderr is not None
            assert process.stdout.readline().strip() == "ready", process.stderr.read()
        go.touch()
        for process in processes:
            out, err = process.communicate(timeout=WAIT_S)
            assert process.returncode == 0, err
            summaries.append(json.loads(out))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.communicate()
    print("per process:", [(s["stage"], s["seconds"]) for s in summaries])

    assert [s["stage"] for s in summaries] == [PINNED[p] for p in range(PROCESSES)]
    for s in summaries:
        assert s["errors"] == {}, s
        assert s["write_errors"] == 0, s
        assert s["queued_writes"] == 0, s

    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        jobs = {k: json.loads(p) for k, p in conn.execute("SELECT key, payload FROM jobs")}
        hot_version = conn.execute("SELECT version FROM jobs WHERE key = 'hot'").fetchone()[0]
        hot_versions = [v for (v,) in conn.execute(
            "SELECT version FROM jobs_events WHERE key = 'hot' ORDER BY version")]
        events = conn.execute("SELECT count(*) FROM jobs_events").fetchone()[0]
    finally:
        conn.close()

    writers = [(p, t) for p in range(PROCESSES) for t in range(THREADS)]
    expected_jobs = {f"job-{p}-{t}-{i}" for p, t in writers for i in range(ROUNDS)}
    assert expected_jobs <= set(jobs), f"lost: {sorted(expected_jobs - set(jobs))[:5]}"
    assert {k: jobs[f"count-{p}-{t}"]["n"] for p, t in writers
            for k in [f"count-{p}-{t}"]} == {f"count-{p}-{t}": ROUNDS for p, t in writers}
    total = len(writers) * ROUNDS
    assert hot_version == total, "a concurrent upsert of the shared key lost its version bump"
    assert hot_versions == list(range(1, total + 1))
    assert events == 3 * total



@pytest.mark.slow
def test_a_forked_child_and_its_parent_both_write_after_the_fork_and_nothing_hangs(
        tmp_path: Path) -> None:
    """The store is open, its loop running, at each fork; the child gets its own connections
    and loop (its heartbeat row carries its own pid); nothing written is lost."""
    path = tmp_path / "jobs.db"
    forks, n = 8, 20
    out = run_worker("fork_writer", f"sqlite:///{path}", "jobs", forks, n, timeout=120)
    lines = [json.loads(line) for line in out.splitlines()]
    children = [line for line in lines if "child" in line]
    parent = lines[-1]
    assert len(children) == forks
    for child in children:
        assert "error" not in child, child
        assert child["heartbeat"] is True, f"child {child['child']}: no heartbeat of its own"
        assert child["loop_alive"] is True
        assert child["instance_id"] != parent["instance_id"]
    assert parent["hung"] == 0
    assert parent["exit_codes"] == [0] * forks
    assert len({c["pid"] for c in children} | {parent["parent"]}) == forks + 1

    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        rows = {k: json.loads(p) for k, p in conn.execute("SELECT key, payload FROM jobs")}
    finally:
        conn.close()
    for k in range(forks):
        for i in range(n):
            assert rows[f"child-{k}-{i}"]["i"] == i
            assert rows[f"parent-{k}-{i}"]["i"] == i
    assert rows["before-0"]["status"] == "changed-in-parent"
    assert {rows[f"before-{k}"]["status"] for k in range(1, forks)} == {"changed-in-child"}


@pytest.fixture
def agents(tmp_path: Path) -> Iterator[Callable[..., Agent]]:
    started: list[Agent] = []

    def start(stage: str = "dual_write", sync_interval: float = INTERVAL) -> Agent:
        agent = Agent(f"sqlite:///{tmp_path}/jobs.db", "jobs", stage, sync_interval)
        started.append(agent)
        return agent

    yield start
    for agent in started:
        agent.close()


@pytest.mark.slow
def test_in_dual_write_process_b_finds_a_job_process_a_created_and_sees_its_updates_in_time(
        agents: Callable[..., Agent]) -> None:
    a, b = agents(), agents()
    assert b("get", key="abc123") == {"error": "KeyError"}
    a("set", key="abc123", value={"status": "queued", "video_url": None})
    assert b("get", key="abc123") == {"value": {"status": "queued", "video_url": None}}
    assert "abc123" in b("keys")["keys"]

    delays = []
    for status in ("rendering", "encoding", "completed"):
        written = a("set", key="abc123", value={"status": status, "video_url": None})["at"]
        seen = b("wait", key="abc123", field="status", equals=status, limit=5 * INTERVAL + 2)
        assert "error" not in seen, seen
        delays.append(seen["at"] - written)
    print(f"B saw A's update after {[f'{d:.3f}' for d in delays]} s (sync_interval {INTERVAL})")
    assert max(delays) <= INTERVAL + MARGIN

    # and the other way round, a change made in place that A never assigns back: it reaches
    # the DB within one interval and B within one more
    b("set", key="from-b", value={"status": "queued"})
    assert a("get", key="from-b") == {"value": {"status": "queued"}}
    changed = b("change", key="from-b", field="status", value="completed")["at"]
    seen = a("wait", key="from-b", field="status", equals="completed", limit=5 * INTERVAL + 2)
    assert "error" not in seen, seen
    print(f"A saw B's in-place change after {seen['at'] - changed:.3f} s")
    assert seen["at"] - changed <= 2 * INTERVAL + MARGIN
