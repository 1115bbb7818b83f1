"""The `memory` stage: the legacy dict, which the database must not contradict afterwards."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest

from jobstore import JobStore, Stage, StoreUnavailableError, admin

MakeStore = Callable[..., JobStore[Any]]


def _move(store: JobStore[Any], url: str, stage: Stage) -> None:
    """The fleet's stage changes (``jobstore stage``); the store follows at ``sync()``."""
    assert admin.set_stage(stage, url, table=store.table, wait=False).changed
    store.sync()
    assert store.stage is stage


def test_a_job_deleted_in_memory_stays_deleted_when_the_fleet_moves_forward(
        make_store: MakeStore, db_url: str) -> None:
    jobs = make_store(stage=Stage.DUAL_WRITE)
    jobs["kept"] = {"status": "queued"}
    jobs["deleted"] = {"status": "queued"}
    _move(jobs, db_url, Stage.MEMORY)
    del jobs["deleted"]
    _move(jobs, db_url, Stage.DUAL_WRITE)
    assert sorted(jobs) == ["kept"]
    assert "deleted" not in jobs
    jobs.close()
    assert sorted(make_store()) == ["kept"]


def test_a_job_deleted_then_written_again_in_memory_survives_the_move_forward(
        make_store: MakeStore, db_url: str) -> None:
    jobs = make_store(stage=Stage.DUAL_WRITE)
    jobs["job"] = {"status": "queued"}
    _move(jobs, db_url, Stage.MEMORY)
    del jobs["job"]
    jobs["job"] = {"status": "completed"}
    _move(jobs, db_url, Stage.DUAL_WRITE)
    jobs.close()
    assert make_store()["job"] == {"status": "completed"}


def test_a_clear_in_memory_empties_the_database_when_the_fleet_moves_forward(
        make_store: MakeStore, db_url: str) -> None:
    jobs = make_store(stage=Stage.DUAL_WRITE)
    jobs.update({f"old{i}": {"status": "queued"} for i in range(5)})
    _move(jobs, db_url, Stage.MEMORY)
    jobs.clear()
    jobs["new"] = {"status": "queued"}
    _move(jobs, db_url, Stage.DUAL_WRITE)
    assert sorted(jobs) == ["new"]
    jobs.close()
    assert sorted(make_store()) == ["new"]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_process_pinned_to_memory_starts_and_serves_without_its_database(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBSTORE_STAGE", "memory")
    url = f"postgresql+psycopg://postgres@127.0.0.1:{_closed_port()}/test?connect_timeout=1"
    jobs: JobStore[str, dict[str, object]] = JobStore(url, sync_interval=0.2)
    with jobs:
        assert jobs.stage is Stage.MEMORY
        jobs["job"] = {"status": "queued"}
        assert jobs["job"] == {"status": "queued"}
        assert jobs.last_error is not None


def test_an_unpinned_process_refuses_to_start_without_its_database(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOBSTORE_STAGE", raising=False)
    url = f"postgresql+psycopg://postgres@127.0.0.1:{_closed_port()}/test?connect_timeout=1"
    with pytest.raises(StoreUnavailableError, match="cannot reach the database"):
        JobStore(url, stage="memory")
