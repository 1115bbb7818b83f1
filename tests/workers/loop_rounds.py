"""Waiting for a store's background loop, so a test's timeline does not race its first round."""

from __future__ import annotations

import time
from typing import Any

from jobstore import JobStore, admin


def wait_for_first_loop_round(jobs: JobStore[Any], timeout: float = 15.0) -> None:
    """Return once the loop has run its first round (it runs at once when the loop starts,
    then every ``sync_interval``): its heartbeat, which ``jobstore status`` lists, is written
    at the end of that round. The store's URL must carry no password (``url`` hides it)."""
    deadline = time.monotonic() + timeout
    while jobs.instance_id not in {
            i.instance_id for i in admin.status(jobs.url, table=jobs.table).instances}:
        assert time.monotonic() < deadline, "the background loop never ran its first round"
        time.sleep(0.01)
