"""Outages of a PostgreSQL server of the tests' own (never the shared one on 5432).

The server is made by initdb in a temporary folder and listens on a free loopback port; it is
stopped with ``pg_ctl stop -m immediate`` (a crash: every connection dies) or frozen with
SIGSTOP (alive to TCP, answering nothing) while service processes keep working.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from conftest import listings_that_answer
from jobstore import JobStore, Stage, StoreUnavailableError
from jobstore.db.engine import (
    CONNECT_TIMEOUT_S,
    REPLY_GRACE_S,
    STATEMENT_TIMEOUT_S,
    create_store_engine,
)
from workers.pg_cluster import PgCluster, wait_until
from workers.pg_service import ServiceProcess

pytestmark = [pytest.mark.server, pytest.mark.slow]

DOCUMENTED_BOUND_S = CONNECT_TIMEOUT_S + STATEMENT_TIMEOUT_S + REPLY_GRACE_S
"""docs/databases.md: the longest a caller waits for an error when the server is dead."""
RECOVERY_S = 5.0


def rows_of(url: str, table: str) -> dict[str, Any]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {key: json.loads(payload) for key, payload in
                    conn.execute(text(f"SELECT key, payload FROM {table}"))}
    finally:
        engine.dispose()


def table() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


def test_dual_write_service_answers_from_memory_through_a_crash_and_loses_no_write(
        running_pg: PgCluster) -> None:
    """While the server is down the service answers from memory and queues its writes; after
    the restart the queue drains, verify is clean and every acknowledged write is in the DB."""
    name = table()
    service = ServiceProcess(running_pg.url, name, "dual_write", 0.2)
    try:
        service.call("set", key="before", value={"status": "queued", "n": -1})
        service.call("pump_start", prefix="p")
        time.sleep(0.5)

        running_pg.stop("immediate")
        down_at = time.monotonic()
        read = service.send("get", key="before")
        assert read.get("result") == {"status": "queued", "n": -1}, read
        assert read["elapsed"] < 1.0, read
        wrote = service.send("set", key="during", value={"status": "queued", "n": -2})
        assert "error" not in wrote, wrote
        assert wrote["elapsed"] < 1.0, wrote
        assert wait_until(lambda: service.call("state")["queued"] > 5, 10), service.call("state")
        time.sleep(max(0.0, 1.5 - (time.monotonic() - down_at)))

        running_pg.start()
        back_at = time.monotonic()
        assert wait_until(lambda: service.call("state")["queued"] == 0, 10), service.call("state")
        drained_in = time.monotonic() - back_at
        pumped = service.call("pump_stop", prefix="p")
        service.call("sync")
        report = service.call("verify")
        state = service.call("state")
    finally:
        service.close()

    assert pumped["error_count"] == 0, pumped["errors"]
    assert pumped["slowest"] < 3.0, "a write waited on the dead server"
    assert drained_in < RECOVERY_S
    assert report["drifts"] == [], report
    assert report["queued_writes"] == 0
    assert state["queued"] == 0
    assert state["failed"] == 0
    stored = rows_of(running_pg.url, name)
    expected = {**pumped["acked"], "before": {"status": "queued", "n": -1},
                "during": {"status": "queued", "n": -2}}
    lost = sorted(k for k, v in expected.items() if stored.get(k) != v)
    assert len(expected) > 50
    assert lost == [], f"{len(lost)} of {len(expected)} acknowledged writes lost: {lost[:5]}"


def test_db_only_caller_gets_store_unavailable_within_the_bound_and_recovers(
        running_pg: PgCluster) -> None:
    """In db_only a dead server gives StoreUnavailableError within the documented bound, and
    the first write after the server is back succeeds within 5 s of its return."""
    name = table()
    service = ServiceProcess(running_pg.url, name, "db_only", 0.2)
    try:
        service.call("set", key="a", value={"status": "queued"})
        running_pg.stop("immediate")
        for op, fields in (("set", {"key": "b", "value": {"status": "x"}}),
                           ("get", {"key": "a"})):
            answer = service.send(op, timeout=DOCUMENTED_BOUND_S + 10, **fields)
            assert answer.get("error") == "StoreUnavailableError", answer
            assert answer["elapsed"] < DOCUMENTED_BOUND_S, answer

        running_pg.start()
        back_at = time.monotonic()
        recovered = wait_until(
            lambda: "error" not in service.send("set", key="c", value={"status": "ok"}),
            RECOVERY_S, interval=0.1)
        took = time.monotonic() - back_at
        assert recovered, f"no successful write {took:.1f} s after the server came back"
        assert service.call("get", key="a") == {"status": "queued"}
        assert service.call("get", key="c") == {"status": "ok"}
    finally:
        service.close()
    assert set(rows_of(running_pg.url, name)) == {"a", "c"}


def test_a_frozen_server_gives_an_error_within_the_configured_bound_not_a_hang(
        running_pg: PgCluster) -> None:
    """A server that accepts TCP but answers nothing (SIGSTOP) makes a db_only write fail
    within connect_timeout + statement_timeout + the reply grace, and the store recovers
    once the server runs again."""
    engine = create_store_engine(running_pg.url, connect_timeout=2, statement_timeout=1)
    bound = 2 + 1 + REPLY_GRACE_S
    jobs: JobStore[Any] = JobStore(engine, table=table(), stage=Stage.DB_ONLY, sync_interval=60)
    frozen: list[int] = []
    try:
        jobs["a"] = {"status": "queued"}
        frozen = running_pg.freeze()
        assert frozen
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError):
            jobs["b"] = {"status": "queued"}
        took = time.monotonic() - started
        assert took < bound + 1.5, f"the write waited {took:.1f} s; the bound is {bound:g} s"
        running_pg.thaw(frozen)
        frozen = []
        back_at = time.monotonic()
        assert wait_until(lambda: _writes(jobs, "c"), RECOVERY_S, interval=0.1)
        assert time.monotonic() - back_at < RECOVERY_S
        assert jobs["a"] == {"status": "queued"}
    finally:
        running_pg.thaw(frozen)
        jobs.close()
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        engine.dispose()


def _writes(jobs: JobStore[Any], key: str) -> bool:
    try:
        jobs[key] = {"status": "ok"}
    except StoreUnavailableError:
        return False
    return True


def test_dual_write_reads_wait_on_a_frozen_server_once_per_interval_not_once_per_read(
        running_pg: PgCluster) -> None:
    """In dual_write, once a read has found the server not answering, the reads that follow
    within one sync interval are answered from the dict at once instead of each waiting out
    the timeouts again."""
    engine = create_store_engine(running_pg.url, connect_timeout=2, statement_timeout=1)
    interval = 3.0
    jobs: JobStore[Any] = JobStore(engine, table=table(), stage=Stage.DUAL_WRITE,
                                   sync_interval=interval)
    frozen: list[int] = []
    try:
        jobs.update({f"k{i}": {"n": i} for i in range(20)})
        time.sleep(interval + 0.2)  # every entry is now due for revalidation
        frozen = running_pg.freeze()
        first_started = time.monotonic()
        assert jobs["k0"] == {"n": 0}
        first = time.monotonic() - first_started
        rest_started = time.monotonic()
        assert [jobs[f"k{i}"] for i in range(1, 20)] == [{"n": i} for i in range(1, 20)]
        rest = time.monotonic() - rest_started
        assert first < 2 + 1 + REPLY_GRACE_S + 1.5
        assert rest < 0.5, f"19 reads took {rest:.1f} s after the first found the server gone"
    finally:
        running_pg.thaw(frozen)
        jobs.close()
        engine.dispose()


@pytest.mark.parametrize("stage", [Stage.DUAL_WRITE, Stage.SHADOW])
def test_listing_a_dict_first_store_raises_while_the_server_is_down_rather_than_shrink(
        running_pg: PgCluster, stage: Stage) -> None:
    """len, iteration, keys, items and values cover the database too: with the server stopped
    they raise StoreUnavailableError instead of answering with this process's one job; with the
    server back they list every row and the job this process queued meanwhile."""
    name = table()
    with JobStore(running_pg.url, table=name, stage=stage) as writer:
        writer.update({f"k{i:03}": {"n": i} for i in range(100)})
    jobs: JobStore[Any] = JobStore(running_pg.url, table=name, stage=stage, sync_interval=600)
    try:
        jobs["mine"] = {"n": -1}
        running_pg.stop("immediate")
        assert listings_that_answer(jobs) == [], "answered from the dict alone"
        jobs["late"] = {"n": -2}                        # queued: the store is failing now
        assert jobs.queued_writes == 1
        assert listings_that_answer(jobs) == [], "answered from the dict alone"

        running_pg.start()
        assert len(jobs) == 102
        keys = [key for key in jobs]
        assert keys[0] == "k000"
        assert keys[-2:] == ["mine", "late"]
        assert len(set(keys)) == 102
        assert dict(jobs.items())["late"] == {"n": -2}
    finally:
        if not running_pg.is_running():
            running_pg.start()
        jobs.close()
    assert len(rows_of(running_pg.url, name)) == 102


def test_queued_writes_on_a_server_are_journaled_logged_and_replayed_without_the_password(
        running_pg: PgCluster, tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """The server stops under a dual_write store whose URL carries a password: the writes are
    journaled in $JOBSTORE_QUEUE_DIR, the queue's records say so (none with the password), and
    the writes land through a store opened after the server is back."""
    monkeypatch.setenv("JOBSTORE_QUEUE_DIR", str(tmp_path / "queue"))
    secret = "s3cret-in-the-url"
    url = running_pg.url.replace("postgres@", f"postgres:{secret}@")
    name = table()
    caplog.set_level(logging.DEBUG, logger="jobstore")
    jobs: JobStore[str, Any] = JobStore(url, table=name, sync_interval=600)
    jobs["before"] = {"n": 0}
    running_pg.stop("immediate")
    for n in range(5):
        jobs[f"queued-{n}"] = {"n": n}
    assert jobs.stats()["journaled_writes"] == 5
    jobs.close()
    [journal] = list((tmp_path / "queue").rglob(f"{name}.*.queue"))
    assert journal.stat().st_mode & 0o777 == 0o600
    running_pg.start()
    with JobStore(url, table=name) as reopened:
        reopened.sync()
        assert reopened.queued_writes == 0
    assert rows_of(running_pg.url, name) == {"before": {"n": 0},
                                             **{f"queued-{n}": {"n": n} for n in range(5)}}
    events = [getattr(r, "event", None) for r in caplog.records]
    for event in ("queue.started", "queue.left_at_close", "queue.adopted", "queue.replayed"):
        assert event in events, events
    for record in caplog.records:
        assert secret not in record.getMessage()
        assert not [k for k, v in vars(record).items() if secret in str(v)]
