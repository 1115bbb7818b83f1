"""Through PgBouncer in transaction mode (``?pgbouncer=true`` in the URL).

PgBouncer 1.18 (Debian 12's) refuses the ``options`` startup parameter and cannot pool psycopg's
prepared statements, which psycopg makes on the sixth run of a statement: so a store runs well
past that, on several client connections sharing few server connections. A stage change reaches
processes behind it by polling, and the server sees no more connections than PgBouncer's pool.
Skipped when pgbouncer is not installed, except under CI (``.ci/run`` installs it).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from conftest import IN_CI
from jobstore import JobStore, Stage, admin
from jobstore.db.engine import create_store_engine
from jobstore.db.pgbouncer import through_pgbouncer
from workers.pg_cluster import PgCluster, client_connections, wait_until
from workers.pg_service import ServiceProcess, close_all
from workers.pgbouncer import PgBouncer, pgbouncer_binary

POOL_SIZE = 3
RUNS = 20
"""Executions of each statement: past psycopg's prepare threshold (5)."""


@pytest.fixture(scope="module")
def bouncer(own_pg: PgCluster) -> Iterator[PgBouncer]:
    if pgbouncer_binary() is None:
        if IN_CI:
            pytest.fail("CI needs pgbouncer (apt-get install pgbouncer) and it is missing")
        pytest.skip("pgbouncer is not installed")
    started = PgBouncer(own_pg, pool_size=POOL_SIZE)
    try:
        yield started
    finally:
        started.close()


def test_the_url_parameter_is_jobstores_and_marks_the_engine(bouncer: PgBouncer) -> None:
    engine = create_store_engine(bouncer.url)
    try:
        assert through_pgbouncer(engine)
        assert through_pgbouncer(engine.execution_options(isolation_level="AUTOCOMMIT"))
        assert "pgbouncer" not in engine.url.query
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT 1").scalar_one() == 1
    finally:
        engine.dispose()
    direct = create_store_engine(bouncer.url.replace("?pgbouncer=true", "?pgbouncer=false"))
    try:
        assert not through_pgbouncer(direct)
    finally:
        direct.dispose()


@pytest.mark.parametrize("stage", [Stage.DUAL_WRITE, Stage.DB_ONLY])
def test_set_get_modify_and_verify_run_past_the_prepare_threshold(
        bouncer: PgBouncer, stage: Stage) -> None:
    """Two stores (two engines) take turns on PgBouncer's few server connections, each
    statement run 20 times: no "prepared statement does not exist", no refused startup."""
    table = f"pgb_{uuid.uuid4().hex[:8]}"
    stores: list[JobStore[Any]] = [JobStore(bouncer.url, table=table, stage=stage,
                                            sync_interval=0.1) for _ in range(2)]
    try:
        for n in range(RUNS):
            for i, jobs in enumerate(stores):
                key = f"job-{n:02d}-{i}"
                jobs[key] = {"status": "queued", "n": n}
                assert jobs[key]["n"] == n
                done = jobs.modify(key, lambda value: {**value, "status": "done"})
                assert done == {"status": "done", "n": n}
                assert key in stores[1 - i]
        for jobs in stores:
            jobs.sync()
            report = jobs.verify()
            assert report.drifts == ()
            assert len(jobs) == RUNS * 2
            assert jobs.queued_writes == 0
            assert jobs.last_error is None
    finally:
        for jobs in stores:
            jobs.close()


def test_a_stage_change_reaches_three_processes_and_the_server_sees_pgbouncers_pool(
        bouncer: PgBouncer, own_pg: PgCluster) -> None:
    """Three service processes behind PgBouncer follow a stage change by polling the control
    row; meanwhile the server never has more connections than PgBouncer's pool (plus the
    counting one, left out)."""
    table = f"pgb_{uuid.uuid4().hex[:8]}"
    services = [ServiceProcess(bouncer.url, table, "dual_write", 0.1) for _ in range(3)]
    try:
        for n, service in enumerate(services):
            for i in range(RUNS):
                service.call("set", key=f"s{n}-{i}", value={"i": i})
        counts = [client_connections(own_pg.url)]
        admin.set_stage(Stage.SHADOW, bouncer.url, table=table, wait=False)

        def followed() -> bool:
            counts.append(client_connections(own_pg.url))
            return all(service.call("state")["stage"] == "shadow" for service in services)

        assert wait_until(followed, 20, interval=0.1)
        assert max(counts) <= POOL_SIZE, counts
        for n, service in enumerate(services):
            assert service.call("get", key=f"s{n}-{RUNS - 1}") == {"i": RUNS - 1}
    finally:
        close_all(services)
