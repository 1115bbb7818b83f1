"""No path into ``memory`` hides jobs unless forced (issue 12, point 4).

``memory`` is the one stage that does not read the database: a move there is refused while the
database holds jobs that no live dict holds, however the fleet got to the stage before it.
Two service processes (``tests/workers/agent.py``) run on one database; the operator moves
them with the real ``jobstore`` command (click's runner).
"""

from __future__ import annotations

import json
import logging
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from click.testing import CliRunner, Result

from _workers import Agent
from jobstore import JobStore, Stage, admin
from jobstore.cli import cli

BACKENDS = ["sqlite", "postgresql"]
JOBS = [f"job-{n:03d}" for n in range(40)]
INTERVAL = 0.2
WAIT_S = 30.0

Fleet = Callable[..., list[Agent]]
Run = Callable[..., Result]


@pytest.fixture
def seeded(make_store: Callable[..., JobStore[Any]]) -> None:
    """The table in db_only with every job written, by a store that is closed since."""
    store = make_store(stage=Stage.DB_ONLY)
    store.update({key: {"status": "done", "n": n} for n, key in enumerate(JOBS)})
    store.close()


@pytest.fixture
def run(db_url: str, table_name: str) -> Run:
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(cli, ["--url", db_url, "--table", table_name, *args, "--json"],
                             catch_exceptions=False)

    return invoke


@pytest.fixture
def fleet(db_url: str, table_name: str) -> Iterator[Fleet]:
    """Start N service processes in db_only and wait until all of them are live."""
    started: list[Agent] = []

    def start(count: int, interval: float = INTERVAL) -> list[Agent]:
        agents = [Agent(db_url, table_name, Stage.DB_ONLY.value, interval)
                  for _ in range(count)]
        started.extend(agents)
        for agent in agents:
            agent("get", key=JOBS[0])  # the first call starts the store's loop
        deadline = time.monotonic() + WAIT_S
        while len(admin.status(db_url, table=table_name).live) < len(started):
            assert time.monotonic() < deadline, "the agents did not become live"
            time.sleep(0.1)
        return agents

    yield start
    for agent in started:
        agent.close()


def moved(result: Result) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(result.stdout)
    assert result.exit_code == 0, document
    return document


def stage_of(run: Run) -> str:
    return str(json.loads(run("stage").stdout)["stage"])


def served(agent: Agent) -> int:
    """How many of the jobs the agent's service answers (the others are its 404s)."""
    reply = agent("read", keys=JOBS)
    assert "error" not in reply, reply
    return int(reply["found"])


def rollback_by_steps_to_dual_write(run: Run) -> None:
    for expected in ("db_primary", "shadow", "dual_write"):
        assert moved(run("rollback"))["stage"] == expected


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.usefixtures("seeded")
def test_memory_by_steps_from_db_only_is_refused_with_the_number_of_jobs_it_would_hide(
        run: Run, fleet: Fleet) -> None:
    agents = fleet(2)
    rollback_by_steps_to_dual_write(run)
    result = run("rollback", "--to", "memory")
    document = json.loads(result.stdout)
    assert result.exit_code == 1, document
    assert document["hidden_jobs"] == len(JOBS)
    assert f"hide {len(JOBS)} of the {len(JOBS)} job(s)" in document["refused"]
    assert "--force" in document["refused"]
    assert "dual_write" in document["refused"]
    assert stage_of(run) == "dual_write"
    assert [served(a) for a in agents] == [len(JOBS)] * 2, "dual_write still serves every job"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.usefixtures("seeded")
def test_memory_from_db_primary_is_allowed_once_the_dicts_hold_every_job(
        run: Run, fleet: Fleet) -> None:
    agents = fleet(2)
    assert moved(run("rollback"))["stage"] == "db_primary"
    for agent in agents:
        assert served(agent) == len(JOBS)  # each read fills the agent's dict
    document = moved(run("rollback", "--to", "memory"))
    assert (document["stage"], document["hidden_jobs"]) == ("memory", 0)
    assert [served(a) for a in agents] == [len(JOBS)] * 2, "memory serves every job"


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.usefixtures("seeded")
def test_jobs_held_by_different_instances_count_as_held(run: Run, fleet: Fleet) -> None:
    first, second = fleet(2)
    assert moved(run("rollback"))["stage"] == "db_primary"
    half = len(JOBS) // 2
    assert first("read", keys=JOBS[:half])["found"] == half
    assert second("read", keys=JOBS[half:])["found"] == len(JOBS) - half
    document = moved(run("rollback", "--to", "memory"))
    assert (document["stage"], document["hidden_jobs"]) == ("memory", 0)
    assert served(first) + served(second) == len(JOBS), "each job is served by one server"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.usefixtures("seeded")
def test_force_moves_to_memory_anyway_and_logs_a_warning_with_the_count(
        run: Run, fleet: Fleet, caplog: pytest.LogCaptureFixture) -> None:
    agents = fleet(2)
    rollback_by_steps_to_dual_write(run)
    with caplog.at_level(logging.WARNING, logger="jobstore.admin"):
        document = moved(run("rollback", "--to", "memory", "--force"))
    assert (document["stage"], document["hidden_jobs"]) == ("memory", len(JOBS))
    [record] = [r for r in caplog.records if getattr(r, "event", None) == "admin.memory_forced"]
    assert record.levelno == logging.WARNING
    assert record.__dict__["hidden"] == len(JOBS)
    assert [served(a) for a in agents] == [0, 0], "forced, the move hid what it said it would"


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.usefixtures("seeded")
def test_an_instance_that_does_not_answer_counts_as_holding_nothing(
        run: Run, fleet: Fleet) -> None:
    """The one dict that holds every job is in a hung process: the move is refused, and the
    refusal names it."""
    [hung] = fleet(1, interval=1.0)  # live for 3 s after its last heartbeat
    rollback_by_steps_to_dual_write(run)
    assert served(hung) == len(JOBS)
    hung.process.send_signal(signal.SIGSTOP)
    try:
        result = run("rollback", "--timeout", "1")
    finally:
        hung.process.send_signal(signal.SIGCONT)
    document = json.loads(result.stdout)
    assert result.exit_code == 1, document
    assert document["hidden_jobs"] == len(JOBS)
    assert f"pid {hung.process.pid}" in document["refused"]
    assert stage_of(run) == "dual_write"


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.usefixtures("seeded")
def test_with_no_live_instance_every_job_counts_as_hidden(run: Run) -> None:
    """A process that starts in memory reads nothing from the database: with none running,
    memory would show no job at all."""
    rollback_by_steps_to_dual_write(run)
    result = run("stage", "memory")
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["hidden_jobs"] == len(JOBS)
    assert "no instance is live" in document["refused"]
    assert stage_of(run) == "dual_write"


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.usefixtures("seeded")
def test_moves_to_dual_write_and_shadow_stay_free_with_empty_dicts(
        run: Run, fleet: Fleet) -> None:
    first, second = fleet(2)
    assert moved(run("rollback", "--to", "shadow"))["hidden_jobs"] is None
    assert served(first) == len(JOBS), "shadow reads what its dict misses from the database"
    assert moved(run("rollback", "--to", "dual_write"))["stage"] == "dual_write"
    assert served(second) == len(JOBS), "so does dual_write"
