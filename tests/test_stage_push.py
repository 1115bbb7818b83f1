"""Stage changes pushed on PostgreSQL (issue 12, point 7): ``jobstore stage`` announces the
change with ``NOTIFY`` and stores connected directly follow it at once, long before their
next round. They hold no connection more for it: `test_connections.py` counts a fleet's
connections on a server they listen on.

The service processes (``tests/workers/agent.py``) run rounds 30 s apart, so only a pushed
change can reach them within the command's 15 s wait.
"""

from __future__ import annotations

import contextlib
import json
import signal
from collections.abc import Iterator

import pytest

from _tamper import jobstore
from _workers import Agent
from jobstore import Stage

SLOW_ROUNDS_S = 30.0


@pytest.fixture
def slow_agents(db_url: str, table_name: str) -> Iterator[list[Agent]]:
    made = [Agent(db_url, table_name, Stage.DUAL_WRITE.value, SLOW_ROUNDS_S)
            for _ in range(3)]
    try:
        yield made
    finally:
        for agent in made:
            with contextlib.suppress(ProcessLookupError):
                agent.process.send_signal(signal.SIGCONT)
            agent.close()


@pytest.mark.server
@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_stage_change_reaches_directly_connected_stores_before_their_next_round(
        db_url: str, table_name: str, slow_agents: list[Agent]) -> None:
    for agent in slow_agents:
        agent("set", key=f"job-{agent.instance_id}", value={"status": "queued"})

    result = jobstore(db_url, table_name, "stage", "shadow", "--timeout", "15", "--json")

    assert result.exit_code == 0, result.output
    change = json.loads(result.output)
    assert sorted(change["barrier"]["reached"]) == sorted(a.instance_id for a in slow_agents)
