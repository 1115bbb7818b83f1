"""Jobs are listed in insertion order, as a dict lists them (DESIGN section 2 "Order"), in every
stage, across processes and on every backend; tables made before the order column are upgraded
in place, and the previous release's writes still land in order.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import (
    Column,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    insert,
    inspect,
    select,
)

from _workers import WAIT_S, run_worker, worker
from jobstore import JobStore, JobStoreError, Stage, admin
from jobstore.cli import cli
from jobstore.db.jobs import SCAN_BATCH, JobRows, utcnow
from jobstore.db.order import ORDER_COLUMN
from jobstore.db.schema import (
    OLDEST_READER,
    SCHEMA_VERSION,
    KeyString,
    LongText,
    UtcDateTime,
    build_schema,
)

MakeStore = Callable[..., JobStore[Any]]
WRITES_DB = [s for s in Stage if s.rules.writes_db]
SUBMITTED = ["b", "a", "c", "10", "9"]
"""Neither sorted as strings nor as numbers."""


def fill(store: JobStore[Any], keys: list[str]) -> None:
    for key in keys:
        store[key] = {"k": key}


def listed(store: JobStore[Any]) -> dict[str, list[str]]:
    """The order of every way of listing the jobs."""
    return {"keys": list(store), "keys()": list(store.keys()),
            "values": [v["k"] for v in store.values()],
            "items": [k for k, _v in store.items()]}


def everywhere(keys: list[str]) -> dict[str, list[str]]:
    return {"keys": keys, "keys()": keys, "values": keys, "items": keys}


@pytest.mark.parametrize("stage", list(Stage))
def test_jobs_are_listed_in_insertion_order_and_a_reassigned_job_keeps_its_place(
        make_store: MakeStore, stage: Stage) -> None:
    store = make_store(stage=stage)
    fill(store, SUBMITTED)
    assert listed(store) == everywhere(SUBMITTED)
    store["a"] = {"k": "a"}                       # re-assigned: stays second
    assert listed(store) == everywhere(SUBMITTED)


@pytest.mark.parametrize("stage", list(Stage))
def test_a_job_deleted_and_added_again_moves_to_the_end(make_store: MakeStore,
                                                         stage: Stage) -> None:
    store = make_store(stage=stage)
    fill(store, SUBMITTED)
    del store["a"]
    store["a"] = {"k": "a"}
    assert listed(store) == everywhere(["b", "c", "10", "9", "a"])
    store.pop("b")
    store.setdefault("b", {"k": "b"})
    assert listed(store) == everywhere(["c", "10", "9", "a", "b"])


@pytest.mark.parametrize("stage", list(Stage))
def test_a_fifo_scheduler_picks_the_first_job_submitted(make_store: MakeStore,
                                                        stage: Stage) -> None:
    store = make_store(stage=stage)
    for key in ["job-9", "job-10", "job-2"]:          # in key order, job-10 comes first
        store[key] = {"k": key, "status": "queued"}
    assert next(iter(store.values()))["k"] == "job-9"
    assert next(iter(store)) == "job-9"


@pytest.mark.parametrize("stage", WRITES_DB)
def test_another_process_on_the_same_database_sees_the_same_order(
        make_store: MakeStore, db_url: str, table_name: str, stage: Stage) -> None:
    store = make_store(stage=stage)
    fill(store, SUBMITTED)
    del store["a"]
    store["a"] = {"k": "a"}
    store["c"] = {"k": "c"}
    store.sync()
    expected = ["b", "c", "10", "9", "a"]
    seen = json.loads(run_worker("list_order", db_url, table_name, stage.value))
    assert seen == {"keys": expected, "values": expected, "items": expected}


def test_more_rows_than_a_scan_batch_are_listed_completely_and_in_order(
        make_store: MakeStore) -> None:
    """On SQLite (the batch is fixed at SCAN_BATCH for a store)."""
    n = SCAN_BATCH + 57
    keys = [f"k{(i * 7919) % n}" for i in range(n)]    # every number once, not sorted
    store = make_store(stage=Stage.DB_ONLY)
    store.update({key: {"k": key} for key in keys})
    assert list(store) == keys
    assert [v["k"] for v in store.values()] == keys


def test_a_scan_in_small_batches_pages_through_the_insertion_order(
        make_store: MakeStore, db_url: str, table_name: str) -> None:
    store = make_store(stage=Stage.DB_ONLY)
    keys = [f"k{(i * 7) % 23}" for i in range(23)]
    fill(store, keys)
    del store["k0"]
    store["k0"] = {"k": "k0"}
    expected = [k for k in keys if k != "k0"] + ["k0"]
    engine = create_engine(db_url)
    try:
        rows = JobRows(engine, build_schema(table_name))
        for batch in (1, 3, 22, 23, 100):
            assert [key for key, _p, _v in rows.scan(batch=batch)] == expected
            assert [row.key for row in rows.scan_rows(batch=batch)] == expected
    finally:
        engine.dispose()


def test_export_writes_the_jobs_in_insertion_order(make_store: MakeStore, db_url: str,
                                                   table_name: str, tmp_path: Path) -> None:
    store = make_store(stage=Stage.DB_ONLY)
    fill(store, SUBMITTED)
    out = tmp_path / "export.jsonl"
    admin.export(out, db_url, table=table_name)
    assert [json.loads(line)["key"] for line in out.read_text().splitlines()] == SUBMITTED


# dual_write and shadow while the database fails ------------------------------------------------


@contextlib.contextmanager
def write_lock_held(path: Path) -> Iterator[None]:
    """Another connection holds SQLite's write lock until the block ends."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=5)
    try:
        conn.execute("BEGIN IMMEDIATE")
        yield
        conn.execute("ROLLBACK")
    finally:
        conn.close()


@pytest.mark.parametrize("stage", [Stage.DUAL_WRITE, Stage.SHADOW])
def test_jobs_queued_while_the_database_fails_come_after_its_jobs_in_local_order(
        tmp_path: Path, stage: Stage) -> None:
    path = tmp_path / "jobs.db"
    url = f"sqlite:///{path}?timeout=0.2"
    other: JobStore[Any] = JobStore(url, table="jobs", stage=stage, sync_interval=600)
    this: JobStore[Any] = JobStore(url, table="jobs", stage=stage, sync_interval=600)
    try:
        fill(other, ["z", "y"])
        with write_lock_held(path):
            fill(this, ["q", "p", "r"])
            assert this.queued_writes == 3, "the writes got through: the test proves nothing"
            assert list(this) == ["z", "y", "q", "p", "r"]
        this.sync()
        assert this.queued_writes == 0
        assert list(other) == ["z", "y", "q", "p", "r"]
    finally:
        this.close()
        other.close()


# tables of the previous release ------------------------------------------------------------------


def previous_release_table(metadata: MetaData, name: str) -> Table:
    """The job table as release 1d1b415 defined it: no order column."""
    return Table(
        name, metadata,
        Column("key", KeyString(), primary_key=True),
        Column("payload", LongText, nullable=False),
        Column("status", String(64), nullable=True),
        Column("version", Integer, nullable=False),
        Column("created_at", UtcDateTime, nullable=False),
        Column("updated_at", UtcDateTime, nullable=False),
        Column("written_by", String(64), nullable=False),
        Index(f"ix_{name}_status", "status"),
    )


def insert_the_old_way(engine: Engine, old: Table, keys: list[str]) -> None:
    """Rows written as the previous release writes them, naming only its own columns."""
    now = utcnow()
    with engine.begin() as conn:
        for key in keys:
            conn.execute(insert(old), {
                "key": key, "payload": json.dumps({"k": key}), "status": None, "version": 1,
                "created_at": now, "updated_at": now, "written_by": "release-1"})


@pytest.fixture
def old_table(db_url: str, table_name: str) -> Iterator[tuple[Engine, Table]]:
    """The test's job table created by the previous release's DDL, holding four jobs
    inserted out of key order."""
    engine = create_engine(db_url)
    old = previous_release_table(MetaData(), table_name)
    old.create(engine)
    insert_the_old_way(engine, old, ["m", "c", "x", "a"])
    try:
        yield engine, old
    finally:
        engine.dispose()


def test_a_table_of_the_previous_release_is_upgraded_on_open_and_keeps_every_row(
        old_table: tuple[Engine, Table], make_store: MakeStore, backend: str,
        table_name: str) -> None:
    engine, old = old_table
    store = make_store(stage=Stage.DB_ONLY)
    # On a server the rows it had are numbered in key order, the order the previous release
    # listed them in; SQLite's rowid always held their insertion order.
    before = ["m", "c", "x", "a"] if backend == "sqlite" else ["a", "c", "m", "x"]
    assert listed(store) == everywhere(before)
    columns = {c["name"] for c in inspect(engine).get_columns(table_name)}
    assert (ORDER_COLUMN in columns) is (backend != "sqlite")   # SQLite orders by rowid
    versions = build_schema(table_name).versions
    with engine.connect() as conn:
        rows = dict(conn.execute(select(versions.c.component, versions.c.version)).all())
    assert rows[f"layout:{table_name}"] == SCHEMA_VERSION
    assert rows["jobstore"] <= OLDEST_READER == 1, "the previous release would refuse it"

    insert_the_old_way(engine, old, ["b"])             # the previous release, still running
    store["new"] = {"k": "new"}
    insert_the_old_way(engine, old, ["0"])
    assert listed(store) == everywhere([*before, "b", "new", "0"])
    with engine.connect() as conn:                      # ...and reads what it knows
        assert len(conn.execute(select(old)).all()) == 7


@pytest.mark.parametrize("backend", ["postgresql", "mysql"])
def test_several_processes_opening_an_old_table_at_once_upgrade_it_once(
        old_table: tuple[Engine, Table], db_url: str, table_name: str) -> None:
    engine, _old = old_table
    workers = [worker("list_order", db_url, table_name, "db_only",
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(3)]
    outputs = []
    for process in workers:
        out, err = process.communicate(timeout=WAIT_S)
        assert process.returncode == 0, err
        outputs.append(json.loads(out))
    expected = ["a", "c", "m", "x"]
    assert outputs == [{"keys": expected, "values": expected, "items": expected}] * 3
    columns = [c["name"] for c in inspect(engine).get_columns(table_name)]
    assert columns.count(ORDER_COLUMN) == 1


def test_sqlite_refuses_a_job_table_without_rowid(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE jobs (key VARCHAR(255) PRIMARY KEY, payload TEXT NOT NULL, "
                 "status VARCHAR(64), version INTEGER NOT NULL, created_at DATETIME NOT NULL, "
                 "updated_at DATETIME NOT NULL, written_by VARCHAR(64) NOT NULL) WITHOUT ROWID")
    conn.close()
    with pytest.raises(JobStoreError, match="WITHOUT ROWID"):
        JobStore(f"sqlite:///{path}", table="jobs")


@pytest.mark.parametrize(("url", "column"), [
    ("sqlite:///jobs.db", None),
    ("postgresql+psycopg://app@db/jobs", "seq BIGINT GENERATED BY DEFAULT AS IDENTITY"),
    ("mariadb+pymysql://app@db/jobs", "seq BIGINT NOT NULL AUTO_INCREMENT"),
])
def test_init_sql_prints_the_ddl_with_the_order_column_and_connects_to_nothing(
        url: str, column: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["--url", url, "--table", "jobs", "init", "--sql"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert not any(tmp_path.iterdir()), "init --sql created something"
    assert "CREATE TABLE jobs (" in result.output
    assert "CREATE TABLE jobstore_schema (" in result.output
    if column is None:
        assert ORDER_COLUMN not in result.output
    else:
        assert column in result.output
        assert f"UNIQUE ({ORDER_COLUMN})" in result.output
