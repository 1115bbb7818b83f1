"""One value the database refuses never holds back the others (dict-first stages).

The refusal is real: a trigger on the job table rejects payloads holding a marker
(`_refusal.refusing`), on SQLite, PostgreSQL and MariaDB. The refused write stays queued (and
journaled), is retried alone, is reported by key, and lands once the database takes it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from _refusal import refusing
from jobstore import JobStore
from test_db_failure import write_lock_held

Store = Callable[..., JobStore[Any]]


@pytest.mark.parametrize("stage", ["dual_write", "shadow"])
def test_a_refused_value_is_set_aside_and_later_writes_land_at_once(
        make_store: Store, db_url: str, table_name: str, stage: str) -> None:
    jobs = make_store(stage=stage, sync_interval=600)
    jobs["before"] = {"n": 0}
    with refusing(db_url, table_name):
        jobs["bad"] = {"note": "poison"}
        assert jobs["bad"] == {"note": "poison"}  # the dict is the authority: it has it
        for n in range(10):
            jobs[f"after-{n}"] = {"n": n}
        assert jobs.queued_writes == 1
        jobs.sync()
        stats = jobs.stats()
        assert (stats["queued_writes"], stats["refused_writes"]) == (1, 1)
        assert "'bad'" in (jobs.last_error or "")
        with JobStore(db_url, table=table_name, stage=stage) as other:
            assert set(other) == {"before", *(f"after-{n}" for n in range(10))}
            assert "bad" not in other
    jobs.sync()
    assert jobs.queued_writes == 0
    with JobStore(db_url, table=table_name, stage=stage) as other:
        assert other["bad"] == {"note": "poison"}


def test_a_refused_value_in_a_backlog_does_not_hold_back_the_rest_of_its_batch(
        tmp_path: Path) -> None:
    """The writes queued during an outage land in batches; one of them refused fails its
    batch as a whole, and the batch is replayed write by write so the others land."""
    path = tmp_path / "jobs.db"
    url = f"sqlite:///{path}?timeout=0.1"
    jobs: JobStore[str, Any] = JobStore(url, table="jobs", sync_interval=600)
    try:
        jobs["seed"] = {"n": 0}
        with write_lock_held(path):
            for n in range(30):
                jobs[f"job-{n}"] = {"note": "poison" if n == 17 else "fine"}
            assert jobs.queued_writes == 30
        with refusing(url, "jobs"):
            jobs.sync()
            assert jobs.stats()["refused_writes"] == 1
            assert jobs.queued_writes == 1
            conn = sqlite3.connect(path)
            landed = {key for (key,) in conn.execute("SELECT key FROM jobs")}
            conn.close()
            assert landed == {"seed", *(f"job-{n}" for n in range(30) if n != 17)}
            jobs["later"] = {"n": 1}  # the database is not failing: written at once
            assert jobs.queued_writes == 1
        jobs.sync()
        assert jobs.queued_writes == 0
    finally:
        jobs.close()
