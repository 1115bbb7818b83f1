"""The write path through the hot statements: every version and deletion in the history, in
order, from several stores on one database, and the status column kept true when a write that
keeps the status leaves it unset (SQLite's status index is then not rewritten)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from jobstore import JobStore, Stage, admin

MakeStore = Callable[..., JobStore[Any]]
EVERY_BACKEND = pytest.mark.parametrize("backend", ["sqlite", "postgresql", "mysql"],
                                        indirect=True)


@EVERY_BACKEND
def test_two_stores_on_one_job_leave_every_version_and_deletion_in_order(
        make_store: MakeStore) -> None:
    """Two stores take turns on one job: progress writes that keep the status, status
    changes, a deletion and a job made again. The history holds each of them, numbered
    without a gap, with the status each value had."""
    first, second = make_store(stage=Stage.DUAL_WRITE), make_store(stage=Stage.DUAL_WRITE)
    expected: list[tuple[str, str | None, int | None]] = []
    for n in range(12):
        store = (first, second)[n % 2]
        status = "queued" if n < 4 else "processing" if n < 10 else "completed"
        store.sync()
        store["job-1"] = {"status": status, "n": n}
        expected.append(("set", status, n))
    del first["job-1"]
    expected.append(("delete", None, None))
    second["job-1"] = {"status": "queued", "n": 99}
    expected.append(("set", "queued", 99))

    history = first.history("job-1")
    assert [v.version for v in history] == list(range(1, len(expected) + 1))
    seen = [(v.op, v.status, None if v.value is None else v.value["n"]) for v in history]
    assert seen == expected


@EVERY_BACKEND
def test_a_write_that_keeps_the_status_still_corrects_a_status_column_set_by_hand(
        make_store: MakeStore, db_url: str, table_name: str) -> None:
    """A foreign writer changed the status column without the payload or the version: the
    next write of the same status sets the column again (the write that leaves the status
    unset matches the column, not the payload, and falls back to the full write)."""
    jobs = make_store(stage=Stage.DUAL_WRITE)
    jobs["job-1"] = {"status": "processing", "n": 1}
    engine = create_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(text(f"UPDATE {table_name} SET status = 'stuck' WHERE "
                              f"{'`key`' if engine.dialect.name == 'mysql' else 'key'} = 'job-1'"))
    finally:
        engine.dispose()
    jobs["job-1"] = {"status": "processing", "n": 2}
    row = admin.show("job-1", db_url, table=table_name).row
    assert row is not None
    assert (row.status, row.version) == ("processing", 2)
    assert [v.status for v in jobs.history("job-1")] == ["processing", "processing"]
