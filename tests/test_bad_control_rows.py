"""Control rows written by hand (with the database's own client) stop nothing: a stage row that
holds no stage, heartbeat rows that do not parse or are huge, a report that is not JSON, and a
flood of verify requests. The service processes are real (tests/workers/agent.py)."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial

import pytest

from _tamper import instance, jobstore, query, tamper, wait_until
from _workers import Agent
from jobstore import JobStore, Stage, admin

pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
INTERVAL = 0.2


@pytest.fixture
def agents(db_url: str, table_name: str) -> Iterator[Callable[..., Agent]]:
    started: list[Agent] = []

    def start(stage: str = "dual_write", interval: float = INTERVAL) -> Agent:
        agent = Agent(db_url, table_name, stage, interval)
        started.append(agent)
        agent("set", key="started", value={"n": 0})  # the loop starts at the first call
        return agent

    yield start
    for agent in started:
        os.kill(agent.process.pid, signal.SIGCONT)
        agent.close()


def is_live(url: str, table: str, agent: Agent) -> bool:
    return bool(instance(url, table, agent.instance_id)["live"])


def set_bogus(url: str, table: str) -> None:
    tamper(url, "UPDATE jobstore_control SET stage = 'bogus' WHERE job_table = :t", t=table)


def test_a_running_store_keeps_its_stage_beats_and_writes_back_under_a_bogus_stage_row(
        db_url: str, table_name: str, agents: Callable[..., Agent]) -> None:
    agent = agents("dual_write")
    agent("set", key="job", value={"status": "queued"})
    set_bogus(db_url, table_name)
    seen = wait_until(lambda: (i := instance(db_url, table_name, agent.instance_id))
                      ["last_error"] and i, "the store reports the bad row")
    assert "'bogus' is not a stage" in seen["last_error"]
    assert seen["last_error_at"] is not None
    beat = seen["heartbeat_at"]
    agent("change", key="job", field="status", value="running")  # in place, never assigned
    agent("set", key="new", value={"n": 1})

    def written_back() -> bool:
        rows = dict(query(db_url, f"SELECT key, payload FROM {table_name}"))
        return '"running"' in rows.get("job", "") and "new" in rows

    wait_until(written_back, "the in-place change and the new job reach the database")
    later = instance(db_url, table_name, agent.instance_id)
    assert later["live"]
    assert later["heartbeat_at"] > beat
    assert later["stage"] == "dual_write"
    assert agent("stats")["queued_writes"] == 0

    repaired = jobstore(db_url, table_name, "stage", "shadow", "--force", "--timeout", "10")
    assert repaired.exit_code == 0, repaired.output
    assert "bogus → shadow" in repaired.output
    follows = wait_until(lambda: (i := instance(db_url, table_name, agent.instance_id))
                         ["last_error"] is None and i, "the error clears once repaired")
    assert follows["stage"] == "shadow"


def test_commands_on_a_bogus_stage_row_say_how_to_repair_it(
        db_url: str, table_name: str, agents: Callable[..., Agent]) -> None:
    agents("db_primary")
    set_bogus(db_url, table_name)
    status = jobstore(db_url, table_name, "status", "--json")
    assert status.exit_code == 0, status.output
    document = json.loads(status.stdout)
    assert document["stage"] is None
    assert "'bogus'" in document["stage_invalid"]
    refused = jobstore(db_url, table_name, "stage", "dual_write")
    assert refused.exit_code == 1, refused.output
    assert "--force" in refused.output
    for move in (["rollback"], ["cutover", "--yes"]):
        failed = jobstore(db_url, table_name, *move)
        assert failed.exit_code == 2, failed.output
        assert "jobstore stage S --force" in failed.output
        assert "jobstore init" in failed.output


def test_init_repairs_a_bogus_stage_row_to_the_stage_the_live_instances_run(
        db_url: str, table_name: str, agents: Callable[..., Agent]) -> None:
    agent = agents("db_primary")
    wait_until(lambda: instance(db_url, table_name, agent.instance_id)["live"], "a heartbeat")
    set_bogus(db_url, table_name)
    wait_until(lambda: instance(db_url, table_name, agent.instance_id)["last_error"],
               "the store reports the bad row")
    result = jobstore(db_url, table_name, "init")
    assert result.exit_code == 0, result.output
    assert "repaired" in result.output
    assert "db_primary" in result.output
    assert admin.status(db_url, table=table_name).stage == "db_primary"
    healed = wait_until(lambda: (i := instance(db_url, table_name, agent.instance_id))
                        ["last_error"] is None and i, "the error clears once repaired")
    assert healed["stage"] == "db_primary"


def test_a_new_store_opens_in_its_seed_stage_on_a_bogus_row_and_follows_the_repair(
        db_url: str, table_name: str, caplog: pytest.LogCaptureFixture) -> None:
    admin.init(db_url, table=table_name, stage="db_primary")
    set_bogus(db_url, table_name)
    with caplog.at_level(logging.WARNING, logger="jobstore.stage"), \
            JobStore(db_url, table=table_name, stage="shadow", sync_interval=60) as jobs:
        assert jobs.stage is Stage.SHADOW
        assert "'bogus' is not a stage" in (jobs.last_error or "")
        jobs["a"] = {"n": 1}
        jobs.sync()                                   # no StageError: the store goes on
        jobs.sync()
        assert admin.status(db_url, table=table_name).jobs == 1
        invalid = [r for r in caplog.records if getattr(r, "event", "") == "stage.invalid_row"]
        assert len(invalid) == 1, "logged once, not once per poll"
        admin.set_stage("dual_write", db_url, table=table_name, force=True, wait=False)
        jobs.sync()
        assert jobs.stats()["stage_shadow_checks"] == 0  # a new stage: counted from zero
        assert admin.status(db_url, table=table_name).stage == jobs.stage.value == "dual_write"
        assert jobs.last_error is None


def test_status_shows_malformed_and_huge_heartbeat_rows_in_bounded_output(
        db_url: str, table_name: str, agents: Callable[..., Agent], backend: str) -> None:
    agent = agents("dual_write")
    wait_until(lambda: instance(db_url, table_name, agent.instance_id)["live"], "a heartbeat")
    row = query(db_url, "SELECT host, pid, started_at, heartbeat_at FROM jobstore_instances "
                        "WHERE instance_id = :i", i=agent.instance_id)[0]
    insert = ("INSERT INTO jobstore_instances (instance_id, job_table, host, pid, stage, "
              "started_at, heartbeat_at, sync_interval, memory_items, tracked_items, "
              "queued_writes, failed_writes, shadow_mismatches, last_error) VALUES "
              "(:i, :t, 'fake-host', :pid, 'dual_write', :s, :h, :si, 0, 0, 0, 0, 0, :e)")
    fake = {"t": table_name, "pid": 1, "s": row[2], "h": row[3], "si": "1.0", "e": None}
    tamper(db_url, insert, **{**fake, "i": "abc-interval", "si": "abc"})
    tamper(db_url, insert, **{**fake, "i": "huge-error", "e": "x" * 1_000_000})
    if backend == "sqlite":  # SQLite keeps whatever is written, even in a time column
        tamper(db_url, insert, **{**fake, "i": "bad-time", "h": "not a time", "pid": "x"})
    people = jobstore(db_url, table_name, "status")
    assert people.exit_code == 0, people.output
    size = len(people.stdout_bytes)
    print(f"jobstore status with a 1 MB last_error and malformed rows: {size:,} bytes")
    assert size < 10_000
    assert "malformed" in people.output
    assert "sync_interval 'abc'" in people.output
    machine = jobstore(db_url, table_name, "status", "--json")
    assert machine.exit_code == 0, machine.output
    assert len(machine.stdout_bytes) < 20_000
    by_id = {i["instance_id"]: i for i in json.loads(machine.stdout)["instances"]}
    assert by_id["abc-interval"]["malformed"]
    assert by_id["abc-interval"]["sync_interval"] == 1.0
    assert len(by_id["huge-error"]["last_error"]) <= 500
    assert by_id[agent.instance_id]["malformed"] == []
    if backend == "sqlite":
        assert not by_id["bad-time"]["live"]
        assert by_id["bad-time"]["malformed"]


def test_a_report_that_is_not_json_is_shown_as_malformed_not_an_error(
        db_url: str, table_name: str, agents: Callable[..., Agent]) -> None:
    answering, hung = agents("dual_write"), agents("dual_write", interval=2.0)
    for agent in (answering, hung):
        wait_until(partial(is_live, db_url, table_name, agent), "a heartbeat")
    os.kill(hung.process.pid, signal.SIGSTOP)  # verify keeps polling the answers meanwhile

    def spoil_the_first_answer() -> None:
        wait_until(lambda: query(db_url, "SELECT 1 FROM jobstore_verify_reports WHERE "
                                 "instance_id = :i", i=answering.instance_id), "an answer")
        tamper(db_url, "UPDATE jobstore_verify_reports SET report = '{not json' "
                       "WHERE instance_id = :i", i=answering.instance_id)

    spoiler = threading.Thread(target=spoil_the_first_answer)
    spoiler.start()
    try:
        result = jobstore(db_url, table_name, "verify", "--timeout", "3", "--json")
    finally:
        spoiler.join()
        os.kill(hung.process.pid, signal.SIGCONT)
    assert result.exit_code == 1, result.output
    document = json.loads(result.stdout)
    assert not document["consistent"]
    assert [m["instance_id"] for m in document["malformed"]] == [answering.instance_id]
    assert "not JSON" in document["malformed"][0]["reason"]


def test_a_thousand_verify_requests_at_once_are_answered_in_one_round(
        db_url: str, table_name: str, agents: Callable[..., Agent]) -> None:
    agent = agents("dual_write")
    for n in range(20):
        agent("set", key=f"job-{n}", value={"n": n})
    wait_until(lambda: instance(db_url, table_name, agent.instance_id)["live"], "a heartbeat")
    requested_at = query(db_url, "SELECT heartbeat_at FROM jobstore_instances WHERE "
                                 "instance_id = :i", i=agent.instance_id)[0][0]
    values = ", ".join(["(:t, :at, 'flood')"] * 1000)
    tamper(db_url, "INSERT INTO jobstore_verify_requests (job_table, requested_at, "
                   f"requested_by) VALUES {values}", t=table_name, at=requested_at)
    newest = query(db_url, "SELECT max(id) FROM jobstore_verify_requests WHERE job_table = :t",
                   t=table_name)[0][0]
    flooded = time.monotonic()
    wait_until(lambda: query(db_url, "SELECT 1 FROM jobstore_verify_reports WHERE "
                             "request_id = :r AND instance_id = :i", r=newest,
                             i=agent.instance_id), "the newest request answered")
    took = time.monotonic() - flooded
    print(f"1,000 verify requests inserted at once: the newest answered {took:.2f} s later")
    answers = query(db_url, "SELECT count(*) FROM jobstore_verify_reports WHERE "
                            "instance_id = :i", i=agent.instance_id)[0][0]
    assert answers == 1, f"{answers} reports: one per request, not one for the newest"
    assert took < 5 * INTERVAL + 2.0
    result = jobstore(db_url, table_name, "verify", "--timeout", "10", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["consistent"]
