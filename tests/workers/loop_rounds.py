"""Waiting for a store's background loop, so a test's timeline does not race its first round."""

from __future__ import annotations

import time
from typing import Any


def wait_for_first_loop_round(jobs: Any, timeout: float = 15.0) -> None:
    """Return once the loop has run its first round (it runs at once when the loop starts,
    then every ``sync_interval``): its heartbeat row is written at the end of that round."""
    deadline = time.monotonic() + timeout
    while jobs.instance_id not in {row["instance_id"] for row in jobs._control.instances()}:
        assert time.monotonic() < deadline, "the background loop never ran its first round"
        time.sleep(0.01)
