"""How many server connections stores hold, counted by the server itself (pg_stat_activity).

A single-threaded service process holds one connection for its hot path and its background
loop together (it held two: the hot path's kept one and the loop's), so N processes fit in N
connections; a store whose threads contend grows its pool and shrinks back to one afterwards.
On a private PostgreSQL server, so that nobody else's connections are counted.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Connection, create_engine

from jobstore import JobStore, Stage
from jobstore.db.engine import create_store_engine
from workers.pg_cluster import PgCluster, client_connections, wait_until
from workers.pg_service import ServiceProcess, close_all

PROCESSES = 10


@pytest.fixture
def counter(running_pg: PgCluster) -> Iterator[Connection]:
    engine = create_engine(running_pg.url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def test_n_idle_service_processes_hold_n_connections_not_2n(
        running_pg: PgCluster, counter: Connection) -> None:
    """Ten service processes that wrote and read, then idle with their loops running (0.1 s
    rounds), hold at most ten connections between them, round after round."""
    table = f"conn_{uuid.uuid4().hex[:8]}"
    services = [ServiceProcess(running_pg.url, table, "dual_write", 0.1)
                for _ in range(PROCESSES)]
    try:
        for n, service in enumerate(services):
            for i in range(3):
                service.call("set", key=f"p{n}-{i}", value={"status": "queued", "i": i})
                assert service.call("get", key=f"p{n}-{i}")["i"] == i
        assert client_connections(counter) >= PROCESSES, "the test proves nothing: none open"
        assert wait_until(lambda: client_connections(counter) <= PROCESSES, 15)
        samples = []
        for _ in range(10):
            samples.append(client_connections(counter))
            threading.Event().wait(0.1)
        assert max(samples) <= PROCESSES, samples
        for n, service in enumerate(services):  # the one connection still serves both
            service.call("set", key=f"p{n}-late", value={"status": "done"})
            assert service.call("get", key=f"p{n}-late") == {"status": "done"}
    finally:
        close_all(services)


def test_a_store_whose_threads_contend_grows_its_pool_then_returns_to_one_connection(
        running_pg: PgCluster, counter: Connection) -> None:
    """Four threads reading while the table is locked each hold a connection (the pool grows
    past one); once they are done the store is back to one connection."""
    table = f"conn_{uuid.uuid4().hex[:8]}"
    jobs: JobStore[Any] = JobStore(running_pg.url, table=table, stage=Stage.DB_ONLY,
                                   sync_interval=0.1)
    locker = create_engine(running_pg.url, isolation_level="AUTOCOMMIT")
    try:
        for i in range(4):
            jobs[f"k{i}"] = {"i": i}
        assert wait_until(lambda: client_connections(counter) == 1, 15)
        read: list[Any] = []
        with locker.connect() as lock_conn:
            lock_conn.exec_driver_sql("BEGIN")
            lock_conn.exec_driver_sql(f'LOCK TABLE "{table}" IN ACCESS EXCLUSIVE MODE')
            threads = [threading.Thread(target=lambda i=i: read.append(jobs[f"k{i}"]))
                       for i in range(4)]
            for thread in threads:
                thread.start()
            grew = wait_until(lambda: client_connections(counter) >= 1 + 4, 15)
            lock_conn.exec_driver_sql("COMMIT")
        for thread in threads:
            thread.join(30)
        assert grew, "four blocked readers should hold four connections of the store's pool"
        assert sorted(value["i"] for value in read) == [0, 1, 2, 3]
        locker.dispose()
        assert wait_until(lambda: client_connections(counter) == 1, 20)
        assert jobs["k0"] == {"i": 0}
    finally:
        jobs.close()
        locker.dispose()


def test_a_pool_used_across_a_fork_never_hands_the_child_a_connection_of_the_parent(
        running_pg: PgCluster) -> None:
    """Even without the store's fork hook (``engine.dispose(close=False)``), a forked child's
    checkout opens a server session of its own, and the parent's idle one still works after
    the child has exited."""
    engine = create_store_engine(running_pg.url)
    try:
        with engine.connect() as conn:
            parent_backend = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report its backend, exit without cleanup
            code = 1
            try:
                with engine.connect() as conn:
                    os.write(write, str(conn.exec_driver_sql(
                        "SELECT pg_backend_pid()").scalar_one()).encode())
                code = 0
            finally:
                os._exit(code)
        os.close(write)
        _, status = os.waitpid(pid, 0)
        child_backend = int(os.read(read, 100) or b"0")
        os.close(read)
        assert os.waitstatus_to_exitcode(status) == 0
        assert child_backend not in (0, parent_backend)
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one() == parent_backend
    finally:
        engine.dispose()


def test_a_store_opened_and_used_from_one_thread_never_opens_a_second_connection(
        running_pg: PgCluster, counter: Connection) -> None:
    """Opening (schema, upgrade, stage row) and the first writes and loop rounds check out one
    connection at a time: a nested checkout would show as a second connection, kept for the
    pool's linger (2 s) after it."""
    table = f"conn_{uuid.uuid4().hex[:8]}"
    jobs: JobStore[Any] = JobStore(running_pg.url, table=table, stage=Stage.DUAL_WRITE,
                                   sync_interval=0.05)
    try:
        seen = [client_connections(counter)]
        for i in range(20):
            jobs[f"k{i}"] = {"i": i}
            seen.append(client_connections(counter))
        jobs.sync()
        seen.append(client_connections(counter))
        assert max(seen) == 1, seen
    finally:
        jobs.close()
