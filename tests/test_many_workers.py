"""Four service processes behind one PostgreSQL table, as four servers behind a load balancer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest

from conftest import SERVER_URLS, drop_table, require_backend
from jobstore import admin
from workers.pg_cluster import wait_until
from workers.pg_service import ServiceProcess, close_all

pytestmark = [pytest.mark.server, pytest.mark.slow]

JOBSTORE_CLI = os.path.join(os.path.dirname(sys.executable), "jobstore")
WORKERS = 4
INTERVAL = 0.5


def start_workers(url: str, table: str, stage: str) -> list[ServiceProcess]:
    """Four service processes on ``table``, started together."""
    workers: list[ServiceProcess] = []
    try:
        for _ in range(WORKERS):
            workers.append(ServiceProcess(url, table, stage, INTERVAL, wait=False))
        for worker in workers:
            worker.wait_ready()
    except BaseException:
        close_all(workers, timeout=5)
        raise
    return workers


@pytest.fixture
def pg_table() -> Iterator[tuple[str, str]]:
    """The shared PostgreSQL server's URL and a table of the test's own, dropped afterwards."""
    require_backend("postgresql")
    url, table = SERVER_URLS["postgresql"], f"t_{uuid.uuid4().hex[:12]}"
    yield url, table
    drop_table(url, table)


@pytest.fixture(scope="module")
def four() -> Iterator[list[ServiceProcess]]:
    """Four workers in dual_write on one table, shared by the tests that leave the stage."""
    require_backend("postgresql")
    url, table = SERVER_URLS["postgresql"], f"t_{uuid.uuid4().hex[:12]}"
    try:
        workers = start_workers(url, table, "dual_write")
        try:
            yield workers
        finally:
            close_all(workers)
    finally:
        drop_table(url, table)


def test_every_job_created_by_one_worker_is_found_by_every_other(
        four: list[ServiceProcess]) -> None:
    """Jobs created by each of four workers are read back, equal, by all four, and each
    counts all of them."""
    before = four[0].call("len")
    for i, worker in enumerate(four):
        for n in range(5):
            worker.call("set", key=f"w{i}-{n}", value={"status": "queued", "by": i, "n": n})
    for reader in four:
        for i in range(WORKERS):
            for n in range(5):
                assert reader.call("get", key=f"w{i}-{n}") == {"status": "queued", "by": i,
                                                               "n": n}
        assert reader.call("len") == before + WORKERS * 5


def test_an_update_by_one_worker_is_seen_by_every_other_within_one_interval(
        four: list[ServiceProcess]) -> None:
    """After one worker updates a job the others have read (and hold in their dicts), each of
    them returns the new value once one sync interval has passed."""
    four[0].call("set", key="shared", value={"status": "queued"})
    for worker in four:
        assert worker.call("get", key="shared") == {"status": "queued"}
    for round_ in range(3):
        value = {"status": "running", "round": round_}
        writer = four[round_ % WORKERS]
        writer.call("set", key="shared", value=value)
        written_at = time.monotonic()
        time.sleep(INTERVAL)
        seen = [worker.call("get", key="shared") for worker in four]
        took = time.monotonic() - written_at
        assert seen == [value] * WORKERS, f"round {round_}: stale reads after {took:.2f} s"


def test_cutover_from_the_cli_moves_all_four_workers_to_db_only(
        pg_table: tuple[str, str]) -> None:
    """`jobstore cutover --yes` verifies the four live workers, sets db_only, returns only
    once all four run it, and no job is lost on the way."""
    url, table = pg_table
    workers = start_workers(url, table, "dual_write")
    try:
        for i, worker in enumerate(workers):
            worker.call("set", key=f"job-{i}", value={"status": "queued", "by": i})
        workers[0].call("touch", key="job-0", field="status", value="completed")
        assert wait_until(lambda: all(w.call("state")["queued"] == 0 for w in workers), 10)
        # Each worker must have beaten at least once so the CLI sees it live.
        ids = {w.instance_id for w in workers}
        assert wait_until(lambda: ids <= {
            i.instance_id for i in admin.status(url, table=table).live}, 10)

        result = subprocess.run(
            [JOBSTORE_CLI, "--url", url, "--table", table,
             "cutover", "--yes", "--json", "--timeout", "20"],
            capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        assert json.loads(result.stdout)["outcome"] == "done", result.stdout

        stages = [worker.call("state")["stage"] for worker in workers]
        assert stages == ["db_only"] * WORKERS
        workers[3].call("set", key="after", value={"status": "queued"})
        for worker in workers:
            assert worker.call("get", key="after") == {"status": "queued"}
            assert worker.call("get", key="job-0") == {"status": "completed", "by": 0}
            assert worker.call("len") == WORKERS + 1
    finally:
        close_all(workers)
