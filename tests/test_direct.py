"""The hot statements sent straight to the driver on a kept connection (jobstore.db.direct)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, event

from jobstore import JobStore, Stage, admin

MakeStore = Callable[..., JobStore[Any]]
HOT_BACKENDS = pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
"""The backends whose hot statements skip SQLAlchemy (MySQL keeps the Core path)."""


@HOT_BACKENDS
def test_every_write_through_the_hot_path_lands_with_its_history_event(
        make_store: MakeStore, db_url: str, table_name: str) -> None:
    """A hundred writes of one key leave version 100 and a history of versions 1 to 100."""
    jobs = make_store(stage=Stage.DB_ONLY)
    for n in range(100):
        jobs["abc123"] = {"status": "processing", "n": n}
    assert jobs["abc123"] == {"status": "processing", "n": 99}
    history = jobs.history("abc123")
    assert [v.version for v in history] == list(range(1, 101))
    assert [v.value for v in history][-1] == {"status": "processing", "n": 99}
    assert history[-1].at is not None
    row = admin.show("abc123", db_url, table=table_name).row
    assert row is not None
    assert row.version == 100


def test_an_engine_with_a_statement_listener_sees_the_hot_statements(
        tmp_path: Path, table_name: str) -> None:
    """Tracing hooks on the engine (before_cursor_execute) still see every read and write:
    the store then sends them through SQLAlchemy."""
    engine = create_engine(f"sqlite:///{tmp_path}/jobs.db")
    seen: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    jobs: JobStore[Any] = JobStore(engine, table=table_name, stage=Stage.DB_ONLY)
    try:
        seen.clear()
        jobs["abc123"] = {"status": "queued"}
        assert jobs["abc123"] == {"status": "queued"}
        assert any(s.startswith(f"INSERT INTO {table_name} ") for s in seen), seen
        assert any(s.startswith("SELECT") and table_name in s for s in seen), seen
    finally:
        jobs.close()
        engine.dispose()


@HOT_BACKENDS
def test_a_thread_that_finds_the_kept_connection_busy_reads_through_a_pooled_one(
        make_store: MakeStore) -> None:
    """While one thread uses the kept connection, another reads and writes without waiting for
    it, and gives its pooled connection back."""
    jobs = make_store(stage=Stage.DB_ONLY)
    jobs["a"] = {"status": "queued"}
    # internal: the store keeps one connection for the hot path, guarded by a lock of its own
    direct = jobs._parts.rows._direct
    assert direct is not None
    answers: list[Any] = []

    def write_then_read() -> None:
        jobs["b"] = {"status": "x"}
        answers.append(jobs["a"])

    with direct._kept.lock:  # another thread is in the middle of a statement on the kept one
        worker = threading.Thread(target=write_then_read)
        worker.start()
        worker.join(30)
        assert not worker.is_alive()
    assert answers == [{"status": "queued"}]
    assert jobs["b"] == {"status": "x"}
    assert _settles_to(jobs, 1), "a pooled connection was not given back"


def _settles_to(jobs: JobStore[Any], count: int) -> bool:
    """Whether the store's pool gets down to ``count`` checked-out connections within 10 s
    (the background loop may hold one for a moment)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if _checked_out(jobs) == count:
            return True
        time.sleep(0.01)
    return False


@HOT_BACKENDS
def test_closing_the_store_gives_the_kept_connection_back(make_store: MakeStore) -> None:
    """After close no connection of the store's pool is left checked out."""
    jobs = make_store(stage=Stage.DB_ONLY)
    jobs["a"] = {"status": "queued"}
    assert jobs["a"] == {"status": "queued"}
    assert _checked_out(jobs) >= 1
    jobs.close()
    assert _checked_out(jobs) == 0


def _checked_out(jobs: JobStore[Any]) -> int:
    # internal: the kept connection is one of the store's own engine's pool, checked out
    return int(jobs._engine.pool.checkedout())  # type: ignore[attr-defined]
