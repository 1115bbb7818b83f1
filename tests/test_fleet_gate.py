"""The gate sees the whole fleet (issue 12, points 1 to 3).

Service processes (``tests/workers/agent.py``) run on one database; the operator runs the
real ``jobstore`` command (click's runner). A store is listed from the moment it opens, also
in a forked child that has served nothing; a hung instance (SIGSTOP) stops ``cutover`` with
exit 3 and the stage unchanged until ``--skip`` names it; a killed one (SIGKILL) is named,
a rerun passes, and its row is pruned; rows dated in the future or long gone, written with
the database's own client, neither count as live nor stay listed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from click.testing import Result

from _tamper import jobstore, query, tamper, wait_until
from _workers import Agent
from jobstore import Stage, admin

BACKENDS = ["sqlite", "postgresql"]
INTERVAL = 0.2

Agents = Callable[..., list[Agent]]


@pytest.fixture
def agents(db_url: str, table_name: str) -> Iterator[Agents]:
    """Start N service processes that open the store and call nothing; each is continued
    (if stopped) and closed afterwards, and the children they forked are killed."""
    started: list[Agent] = []
    children: list[int] = []

    def start(count: int, stage: str = Stage.DUAL_WRITE.value) -> list[Agent]:
        made = [Agent(db_url, table_name, stage, INTERVAL) for _ in range(count)]
        started.extend(made)
        return made

    start.children = children  # type: ignore[attr-defined]
    try:
        yield start
    finally:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for agent in started:
            with contextlib.suppress(ProcessLookupError):
                agent.process.send_signal(signal.SIGCONT)
            agent.close()


def document(result: Result, code: int) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(result.stdout)
    assert result.exit_code == code, (result.exit_code, found)
    return found


def listed(url: str, table: str) -> dict[str, dict[str, Any]]:
    """``jobstore status --json``'s instances, by id."""
    instances = document(jobstore(url, table, "status", "--json"), 0)["instances"]
    return {i["instance_id"]: i for i in instances}


def fake_heartbeat(url: str, table: str, instance_id: str, at: datetime | str,
                   backend: str) -> None:
    """A heartbeat row written with the database's own client, not through jobstore."""
    if backend == "sqlite" and isinstance(at, datetime):
        at = at.astimezone(timezone.utc).replace(tzinfo=None).isoformat(sep=" ")
    tamper(url, "INSERT INTO jobstore_instances (instance_id, job_table, host, pid, stage, "
                "started_at, heartbeat_at, sync_interval, memory_items, tracked_items, "
                "queued_writes, failed_writes, shadow_mismatches) VALUES "
                "(:i, :t, 'fake-host', 4242, 'dual_write', :h, :h, '0.2', 0, 0, 0, 0, 0)",
           i=instance_id, t=table, h=at)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_store_opened_but_never_called_is_listed_and_counted_by_the_gate(
        db_url: str, table_name: str, agents: Agents) -> None:
    a, b = agents(2)
    ids = {a.instance_id, b.instance_id}
    seen = listed(db_url, table_name)
    assert ids <= {k for k, i in seen.items() if i["live"]}, "listed before any call"
    checked = document(jobstore(db_url, table_name, "verify", "--json"), 0)
    assert {r["instance_id"] for r in checked["reports"]} == ids
    moved = document(jobstore(db_url, table_name, "stage", "shadow", "--json"), 0)
    assert set(moved["barrier"]["reached"]) == ids

    child = a("fork")["pid"]
    agents.children.append(child)  # type: ignore[attr-defined]
    forked = wait_until(lambda: [k for k, i in listed(db_url, table_name).items()
                                 if i["pid"] == child and i["live"]],
                        "the forked child that served nothing is listed live")
    moved = document(jobstore(db_url, table_name, "stage", "db_primary", "--json"), 0)
    assert set(forked) | ids == set(moved["barrier"]["reached"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_hung_instance_stops_cutover_with_exit_3_until_it_is_skipped(
        db_url: str, table_name: str, agents: Agents, caplog: pytest.LogCaptureFixture) -> None:
    a, hung = agents(2)
    a("set", key="job-1", value={"status": "queued"})
    hung.process.send_signal(signal.SIGSTOP)
    refused = document(jobstore(db_url, table_name, "cutover", "--yes", "--timeout", "20",
                                "--json"), 3)
    assert refused["outcome"] == "unverified"
    assert [i["instance_id"] for i in refused["verify"]["silent"]] == [hung.instance_id]
    assert any(hung.instance_id in r and "hung or killed" in r for r in refused["reasons"])
    assert admin.status(db_url, table=table_name).stage == "dual_write", "stage unchanged"

    hung.process.send_signal(signal.SIGCONT)  # live again, so the next run expects it
    wait_until(lambda: listed(db_url, table_name)[hung.instance_id]["live"], "beating again")
    hung.process.send_signal(signal.SIGSTOP)
    with caplog.at_level(logging.WARNING, logger="jobstore.admin"):
        done = document(jobstore(db_url, table_name, "cutover", "--yes", "--timeout", "20",
                                 "--skip", hung.instance_id[:-2], "--json"), 0)
    assert done["outcome"] == "done"
    assert [i["instance_id"] for i in done["verify"]["skipped"]] == [hung.instance_id]
    assert done["barrier"]["reached"] == [a.instance_id]
    skipped = [r for r in caplog.records if getattr(r, "event", "") == "admin.skipped"]
    assert skipped
    assert all(r.__dict__["skipped"] == hung.instance_id for r in skipped)
    assert admin.status(db_url, table=table_name).stage == "db_only"


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_killed_instance_is_named_a_rerun_passes_and_a_live_store_prunes_its_row(
        db_url: str, table_name: str, agents: Agents) -> None:
    a, killed = agents(2)
    killed.process.kill()
    killed.process.wait()
    named = document(jobstore(db_url, table_name, "verify", "--timeout", "20", "--json"), 3)
    assert [i["instance_id"] for i in named["silent"]] == [killed.instance_id]
    wait_until(lambda: not listed(db_url, table_name).get(killed.instance_id,
                                                          {"live": False})["live"],
               "the killed instance is stale or pruned")
    rerun = document(jobstore(db_url, table_name, "verify", "--json"), 0)
    assert [r["instance_id"] for r in rerun["reports"]] == [a.instance_id]
    rows = "SELECT instance_id FROM jobstore_instances WHERE job_table = :t"
    wait_until(lambda: query(db_url, rows, t=table_name) == [(a.instance_id,)],
               "the live store deleted the killed one's row (10 intervals, at least 3 s)")


@pytest.mark.parametrize("backend", BACKENDS)
def test_rows_from_the_future_or_long_gone_do_not_block_stage_and_status_prunes_them(
        db_url: str, table_name: str, backend: str) -> None:
    admin.init(db_url, table=table_name)
    now = datetime.now(timezone.utc)
    fake_heartbeat(db_url, table_name, "from-2099", datetime(2099, 1, 1, tzinfo=timezone.utc),
                   backend)
    fake_heartbeat(db_url, table_name, "long-gone", now - timedelta(hours=1), backend)
    if backend == "sqlite":  # SQLite keeps whatever is written, even in a time column
        fake_heartbeat(db_url, table_name, "bad-time", "not a time", backend)
    moved = document(jobstore(db_url, table_name, "stage", "shadow", "--timeout", "3",
                              "--json"), 0)
    assert moved["barrier"]["reached"] == []
    assert moved["barrier"]["silent"] == []

    status = document(jobstore(db_url, table_name, "status", "--json"), 0)
    assert {p["instance_id"]: p["standing"] for p in status["pruned"]} == {
        "from-2099": "future", "long-gone": "gone"}
    by_id = {i["instance_id"]: i for i in status["instances"]}
    assert "from-2099" not in by_id
    assert "long-gone" not in by_id
    if backend == "sqlite":
        assert by_id["bad-time"]["malformed"]
        assert by_id["bad-time"]["standing"] == "stale"
    people = jobstore(db_url, table_name, "status")
    assert people.exit_code == 0
    assert "removed" not in people.output, "pruned once"
    left = query(db_url, "SELECT instance_id FROM jobstore_instances WHERE job_table = :t",
                 t=table_name)
    assert left == ([("bad-time",)] if backend == "sqlite" else [])
