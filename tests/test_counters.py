"""Counters that mean something: shadow checks beside mismatches, per stage and over a recent
window, and a last error that clears with its condition. The service processes are real
(tests/workers/agent.py); the database rows are changed with its own client."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    insert,
    inspect,
    select,
)

from _refusal import refusing
from _tamper import instance, jobstore, tamper, wait_until
from _workers import Agent
from jobstore import JobStore, admin
from jobstore.db.heartbeat import RECENT_WINDOW_S
from jobstore.db.schema import UtcDateTime
from jobstore.shim.shadow_tally import ShadowTally
from jobstore.timefmt import utcnow

INTERVAL = 0.5


@pytest.fixture
def agents(db_url: str, table_name: str, monkeypatch: pytest.MonkeyPatch
           ) -> Iterator[Callable[[str], Agent]]:
    monkeypatch.setenv("JOBSTORE_SHADOW_SAMPLE", "1.0")  # every shadow read is compared
    started: list[Agent] = []

    def start(stage: str) -> Agent:
        agent = Agent(db_url, table_name, stage, INTERVAL)
        started.append(agent)
        return agent

    yield start
    for agent in started:
        agent.close()


def beat(url: str, table: str, agent: Agent, check: Callable[[dict[str, Any]], bool],
         what: str) -> dict[str, Any]:
    """The agent's heartbeat as `jobstore status --json` lists it, once ``check`` holds."""
    def seen() -> dict[str, Any] | None:
        found = instance(url, table, agent.instance_id)
        return found if check(found) else None

    beaten: dict[str, Any] = wait_until(seen, what)
    return beaten


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_after_a_repaired_drift_and_a_stage_change_status_shows_no_mismatch_of_n_checks(
        db_url: str, table_name: str, agents: Callable[[str], Agent]) -> None:
    agent = agents("shadow")
    agent("set", key="a", value={"n": 1})
    set_payload = f"UPDATE {table_name} SET payload = :p WHERE key = 'a'"
    tamper(db_url, set_payload, p='{"n":2}')  # same version: a drift
    for _ in range(5):
        assert agent("get", key="a")["value"] == {"n": 1}  # fresh in the dict: compared
    seen = agent("stats")
    assert seen["stage_shadow_mismatches"] > 0
    drifted = beat(db_url, table_name, agent,
                   lambda i: i["shadow_mismatches"] == seen["stage_shadow_mismatches"],
                   "the mismatches in the heartbeat")
    assert drifted["shadow_checks"] == seen["stage_shadow_checks"]
    assert "mismatch" in drifted["last_error"]
    assert drifted["last_error_at"] is not None

    tamper(db_url, set_payload, p='{"n":1}')  # repaired, as the store writes it
    verified = jobstore(db_url, table_name, "verify", "--timeout", "10")
    assert verified.exit_code == 0, verified.output
    cleared = beat(db_url, table_name, agent, lambda i: i["last_error"] is None,
                   "a clean verify clears the mismatch from last_error")
    assert cleared["shadow_mismatches"] > 0, "the stage's count stays until the stage changes"

    moved = jobstore(db_url, table_name, "stage", "db_primary", "--timeout", "10")
    assert moved.exit_code == 0, moved.output

    def compared_in_db_primary() -> dict[str, Any] | None:
        assert agent("get", key="a")["value"] == {"n": 1}  # compared with the dict's copy
        return beat(db_url, table_name, agent, lambda i: True, "a heartbeat") if agent(
            "stats")["stage_shadow_checks"] >= 2 else None

    wait_until(compared_in_db_primary, "reads of db_primary compared")
    after = beat(db_url, table_name, agent, lambda i: i["shadow_checks"] >= 2,
                 "the compared reads in the heartbeat")
    assert after["stage"] == "db_primary"
    assert after["shadow_mismatches"] == 0
    assert after["recent_shadow_mismatches"] == seen["stage_shadow_mismatches"]
    assert after["recent_shadow_checks"] >= seen["stage_shadow_checks"] + 2
    assert after["last_error"] is None
    people = jobstore(db_url, table_name, "status")
    assert f"0/{after['shadow_checks']}" in people.output
    stats = agent("stats")
    assert stats["stage_shadow_mismatches"] == 0
    assert stats["shadow_mismatches"] == stats["recent_shadow_mismatches"] > 0


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_last_error_carries_its_time_and_clears_after_a_round_that_succeeds(
        db_url: str, table_name: str, agents: Callable[[str], Agent]) -> None:
    agent = agents("dual_write")
    agent("set", key="fine", value={"n": 0})
    with refusing(db_url, table_name):
        agent("set", key="bad", value={"note": "poison"})
        failing = beat(db_url, table_name, agent, lambda i: i["last_error"] is not None,
                       "the refusal in the heartbeat")
        assert "'bad'" in failing["last_error"]
        assert failing["last_error_at"] is not None
        assert failing["queued_writes"] == 1
    recovered = beat(db_url, table_name, agent,
                     lambda i: i["queued_writes"] == 0 and i["last_error"] is None,
                     "the error gone once the write landed")
    assert recovered["last_error_at"] is None


def test_the_recent_window_forgets_what_is_older_than_five_minutes() -> None:
    now = [1000.0]
    tally = ShadowTally(clock=lambda: now[0])
    tally.check()
    tally.mismatch()
    now[0] += RECENT_WINDOW_S / 2
    tally.check()
    assert tally.recent() == (2, 1)
    tally.new_stage()
    assert (tally.stage_checks, tally.stage_mismatches) == (0, 0)
    assert tally.recent() == (2, 1), "a stage change does not empty the window"
    now[0] += RECENT_WINDOW_S / 2 + 10
    assert tally.recent() == (1, 0)
    now[0] += RECENT_WINDOW_S
    assert tally.recent() == (0, 0)


def previous_release_instances(metadata: MetaData) -> Table:
    """``jobstore_instances`` as the release before layout 3 defined it."""
    return Table(
        "jobstore_instances", metadata,
        Column("instance_id", String(64), primary_key=True),
        Column("job_table", String(64), nullable=False, index=True),
        Column("host", String(255), nullable=False),
        Column("pid", Integer, nullable=False),
        Column("stage", String(16), nullable=False),
        Column("pinned", String(16), nullable=True),
        Column("started_at", UtcDateTime, nullable=False),
        Column("heartbeat_at", UtcDateTime, nullable=False),
        Column("sync_interval", Text, nullable=False),
        Column("memory_items", Integer, nullable=False),
        Column("tracked_items", Integer, nullable=False),
        Column("queued_writes", Integer, nullable=False),
        Column("failed_writes", Integer, nullable=False),
        Column("shadow_mismatches", Integer, nullable=False),
        Column("last_error", Text, nullable=True),
    )


def test_the_heartbeat_columns_are_added_and_the_previous_release_still_beats(
        tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/jobs.db"
    engine = create_engine(url)
    old = previous_release_instances(MetaData())
    old.create(engine)

    def beat_the_old_way(instance_id: str) -> None:
        now = utcnow()
        with engine.begin() as conn:
            conn.execute(insert(old), {
                "instance_id": instance_id, "job_table": "jobs", "host": "old", "pid": 1,
                "stage": "dual_write", "pinned": None, "started_at": now, "heartbeat_at": now,
                "sync_interval": "1.0", "memory_items": 0, "tracked_items": 0,
                "queued_writes": 0, "failed_writes": 0, "shadow_mismatches": 0,
                "last_error": None})

    try:
        beat_the_old_way("before")
        with JobStore(url, table="jobs", sync_interval=60) as jobs:
            jobs["a"] = {"n": 1}
            jobs.sync()
            columns = {c["name"] for c in inspect(engine).get_columns("jobstore_instances")}
            assert {"shadow_checks", "recent_shadow_checks", "recent_shadow_mismatches",
                    "last_error_at"} <= columns
            beat_the_old_way("after")                   # the previous release, still running
            with engine.connect() as conn:              # ...and reading what it knows
                ids = set(conn.execute(select(old.c.instance_id)).scalars())
            assert {"before", "after"} <= ids
            listed = {i.instance_id: i for i in admin.status(url, table="jobs").instances}
        assert (listed["after"].shadow_checks, listed["after"].last_error_at) == (0, None)
        assert listed["before"].malformed == listed["after"].malformed == ()
    finally:
        engine.dispose()
