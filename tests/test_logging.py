"""What the library tells a service's log pipeline, through the standard ``logging`` module
under the ``jobstore`` logger: a store opened and closed, a stage followed or pinned, drift
found (compared reads, verify), verify requests answered, a failing background round and its
recovery, merge conflicts and dropped write-backs, the admin moves. No record carries a
password; the hot path logs nothing; nothing is printed unless the application asks."""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from conftest import SERVER_URLS, drop_table, require_backend
from jobstore import JobStore, Stage, admin
from jobstore.cli import cli

SECRET = "s3cret"
UNREACHABLE = f"postgresql+psycopg://user:{SECRET}@127.0.0.1:1/db"
WAIT_S = 10.0


def with_password(url: str) -> str:
    """The shared server's URL with a password in it (the test server ignores it)."""
    scheme, rest = url.split("://", 1)
    user, host = rest.split("@", 1)
    return f"{scheme}://{user.split(':', 1)[0]}:{SECRET}@{host}"


@pytest.fixture
def records(caplog: pytest.LogCaptureFixture) -> Iterator[Callable[..., list[logging.LogRecord]]]:
    """Every ``jobstore`` record from DEBUG up, by event; afterwards, none of them, whatever
    its event, may carry the password in its message, its arguments or its fields."""
    caplog.set_level(logging.DEBUG, logger="jobstore")

    def of(event: str | None = None) -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.name.startswith("jobstore")
                and (event is None or getattr(r, "event", None) == event)]

    yield of
    for record in of():
        assert SECRET not in record.getMessage(), record.getMessage()
        assert SECRET not in repr(record.args)
        assert not [k for k, v in vars(record).items() if SECRET in str(v)]


def said(record: logging.LogRecord) -> tuple[str, str]:
    """Which logger spoke, at which level."""
    return record.name, record.levelname


def fields(record: logging.LogRecord, *names: str) -> tuple[Any, ...]:
    """Some of the record's fields: the arguments its message is formatted from, which are
    also attributes of the record."""
    assert isinstance(record.args, dict)
    assert all(getattr(record, name) == record.args[name] for name in names)
    return tuple(record.args[name] for name in names)


def wait_for(found: Callable[[], list[logging.LogRecord]]) -> list[logging.LogRecord]:
    deadline = time.monotonic() + WAIT_S
    while not found():
        assert time.monotonic() < deadline, "the record did not come"
        time.sleep(0.02)
    return found()


def delete_row(path: Path, table: str, key: str) -> None:
    """Another program removes a job behind the store's back."""
    with sqlite3.connect(path) as db:
        db.execute(f"DELETE FROM {table} WHERE key = ?", (key,))


def test_nothing_is_printed_when_the_application_configures_no_logging(tmp_path: Path) -> None:
    """The package logger's NullHandler keeps Python's last-resort handler from printing a
    warning (here the pinned stage's) on a program's stderr."""
    code = ("import logging\n"
            "seen = []\n"  # a filter sees the logger's records and is no handler
            "logging.getLogger('jobstore.stage').addFilter(lambda r: seen.append(r) or True)\n"
            "from jobstore import JobStore\n"
            f"JobStore('sqlite:///{tmp_path}/jobs.db').close()\n"
            "assert seen, 'no warning was logged: the test proves nothing'\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBSTORE_")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**env, "JOBSTORE_STAGE": "dual_write"}, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


def test_open_and_close_name_the_safe_url_table_stage_and_instance(
        records: Callable[..., list[logging.LogRecord]], tmp_path: Path) -> None:
    jobs = JobStore(f"sqlite:///{tmp_path}/jobs.db", table="logged", stage="shadow")
    jobs["a"] = {"n": 1}
    jobs.close()
    [opened] = records("store.opened")
    assert said(opened) == ("jobstore.store", "INFO")
    assert fields(opened, "url", "table", "stage") == (jobs.url, "logged", "shadow")
    assert jobs.instance_id in opened.getMessage()
    [closed] = records("store.closed")
    assert closed.levelno == logging.INFO
    assert fields(closed, "queued_writes", "unwritten") == (0, 0)


def test_a_server_url_in_the_open_record_has_its_password_hidden(
        records: Callable[..., list[logging.LogRecord]], table_name: str) -> None:
    require_backend("postgresql")
    url = with_password(SERVER_URLS["postgresql"])
    try:
        JobStore(url, table=table_name).close()
    finally:
        drop_table(url, table_name)
    [opened] = records("store.opened")
    assert "postgres:***@127.0.0.1" in opened.getMessage()


def test_a_pinned_stage_is_a_warning_at_open(
        records: Callable[..., list[logging.LogRecord]], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    JobStore(f"sqlite:///{tmp_path}/jobs.db", stage="shadow").close()
    monkeypatch.setenv("JOBSTORE_STAGE", "dual_write")
    JobStore(f"sqlite:///{tmp_path}/jobs.db").close()
    [pinned] = records("stage.pinned")
    assert said(pinned) == ("jobstore.stage", "WARNING")
    assert fields(pinned, "stage", "control") == ("dual_write", "shadow")


def test_a_stage_set_by_the_command_is_logged_by_the_command_and_by_the_running_store(
        records: Callable[..., list[logging.LogRecord]], tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/jobs.db"
    with JobStore(url, sync_interval=0.05) as jobs:
        jobs["a"] = {"n": 1}
        result = CliRunner().invoke(cli, ["--url", url, "stage", "shadow", "--timeout", "10"])
        assert result.exit_code == 0, result.output
        [followed] = wait_for(lambda: records("stage.changed"))
    assert said(followed) == ("jobstore.stage", "INFO")
    assert fields(followed, "previous", "stage") == ("dual_write", "shadow")
    assert fields(followed, "instance_id") == (jobs.instance_id,)
    [moved] = records("admin.stage")
    assert said(moved) == ("jobstore.admin", "INFO")
    assert moved.getMessage().endswith("stage dual_write -> shadow: set")


def test_debug_shows_the_library_records_on_stderr_for_that_command_only(
        tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/jobs.db"
    admin.init(url)
    result = CliRunner().invoke(cli, ["--debug", "--url", url, "stage", "shadow"])
    assert result.exit_code == 0, result.output
    assert "INFO jobstore.admin: table 'jobs' at sqlite:///" in result.stderr
    assert not [h for h in logging.getLogger("jobstore").handlers
                if not isinstance(h, logging.NullHandler)]
    quiet = CliRunner().invoke(cli, ["--url", url, "stage", "dual_write"])
    assert (quiet.exit_code, quiet.stderr) == (0, "")


def test_the_admin_moves_log_their_outcomes_without_the_password(
        records: Callable[..., list[logging.LogRecord]], table_name: str) -> None:
    require_backend("postgresql")
    url = with_password(SERVER_URLS["postgresql"])
    try:
        admin.init(url, table=table_name)
        refused = admin.set_stage("db_only", url, table=table_name)
        done = admin.cutover(url, table=table_name, timeout=5)
        back = admin.rollback(url, table=table_name, timeout=5)
    finally:
        drop_table(url, table_name)
    assert (refused.refused is not None, done.outcome.value, back.stage) == (
        True, "done", "db_primary")
    moves = [r for r in records() if r.name == "jobstore.admin"]
    assert [(getattr(r, "event", None), r.levelname) for r in moves] == [
        ("admin.stage", "WARNING"), ("admin.cutover", "INFO"), ("admin.stage", "INFO")]
    assert all("postgres:***@127.0.0.1" in r.getMessage() for r in moves)


def test_a_shadow_mismatch_is_one_warning_per_key_not_one_per_read(
        records: Callable[..., list[logging.LogRecord]], tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    with JobStore(f"sqlite:///{path}", stage="shadow", shadow_sample_rate=1.0,
                  sync_interval=60) as jobs:
        jobs["a"] = {"n": 1}
        jobs["b"] = {"n": 2}
        delete_row(path, "jobs", "a")
        delete_row(path, "jobs", "b")
        for _ in range(50):
            assert jobs["a"] == {"n": 1}
        for _ in range(3):
            assert jobs["b"] == {"n": 2}
        assert jobs.shadow_mismatches == 53
    first, second = records("audit.mismatch")
    assert said(first) == ("jobstore.audit", "WARNING")
    assert fields(first, "key", "held_back") == ("a", 0)
    assert fields(second, "key", "held_back") == ("b", 49)


def test_a_compared_read_in_db_primary_logs_its_mismatch(
        records: Callable[..., list[logging.LogRecord]], tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    with JobStore(f"sqlite:///{path}", stage="db_primary", sync_interval=60) as jobs:
        jobs["a"] = 1
        with sqlite3.connect(path) as db:  # the same version, another value
            db.execute("UPDATE jobs SET payload = '2' WHERE key = 'a'")
        for _ in range(5):
            assert jobs["a"] == 2
    [mismatch] = records("audit.mismatch")
    assert "the row differs at the same version" in mismatch.getMessage()


def test_verify_logs_the_drift_it_finds_and_each_verify_request_answered(
        records: Callable[..., list[logging.LogRecord]], tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    url = f"sqlite:///{path}"
    with JobStore(url, sync_interval=0.05) as jobs:
        jobs["a"] = {"n": 1}
        jobs["b"] = {"n": 2}
        assert jobs.verify().consistent
        assert records("audit.drift") == []
        delete_row(path, "jobs", "a")
        assert not jobs.verify().consistent
        result = CliRunner().invoke(cli, ["--url", url, "verify", "--timeout", "10"])
        assert result.exit_code == 1, result.output
    drift, _ = records("audit.drift")
    assert said(drift) == ("jobstore.audit", "WARNING")
    assert "found 1 drift(s) in 2 job(s): 'a' (missing_in_db)" in drift.getMessage()
    [answered] = records("audit.verify_answered")
    assert answered.levelno == logging.INFO
    assert fields(answered, "checked", "drifts") == (2, 1)


def test_a_failing_background_round_is_logged_once_with_its_reason_and_no_password(
        records: Callable[..., list[logging.LogRecord]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBSTORE_STAGE", "memory")  # opens without its database
    with JobStore(UNREACHABLE, sync_interval=0.02) as jobs:
        jobs["a"] = {"n": 1}  # the first use starts the loop
        [failed] = wait_for(lambda: records("loop.round_failed"))
        time.sleep(0.3)  # a dozen more rounds, failing the same way
        assert len(records("loop.round_failed")) == 1
    assert said(failed) == ("jobstore.loop", "WARNING")
    assert "Connection refused" in failed.getMessage()
    assert not failed.exc_info  # the database's error, not a bug: no traceback
    [opened] = records("store.opened")
    assert "user:***@127.0.0.1:1/db" in opened.getMessage()


def test_a_round_that_succeeds_again_is_logged(
        records: Callable[..., list[logging.LogRecord]], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBSTORE_STAGE", "memory")
    in_the_way = tmp_path / "jobs.db"
    in_the_way.mkdir()  # SQLite cannot open a directory as its file
    with JobStore(f"sqlite:///{in_the_way}", sync_interval=0.02) as jobs:
        jobs["a"] = {"n": 1}
        wait_for(lambda: records("loop.round_failed"))
        in_the_way.rmdir()
        [recovered] = wait_for(lambda: records("loop.round_recovered"))
    assert recovered.levelno == logging.INFO
    assert "unable to open database file" in recovered.getMessage()


def test_conflicts_and_dropped_write_backs_are_logged_by_key(
        records: Callable[..., list[logging.LogRecord]], tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/jobs.db"
    with JobStore(url, sync_interval=60) as here, JobStore(url, sync_interval=60) as there:
        here["x"] = {"n": 1}
        here["y"] = {"n": 1}
        x, y = here["x"], here["y"]
        there["x"] = {"n": 2}
        del there["y"]
        x["n"] = 3
        y["n"] = 3
        here.sync()
    [conflict] = records("merge.conflict")
    assert said(conflict) == ("jobstore.merge", "INFO")
    assert fields(conflict, "key", "fields") == ("x", "n")
    [dropped] = records("merge.dropped")
    assert said(dropped) == ("jobstore.merge", "WARNING")
    assert fields(dropped, "key") == ("y",)


def test_the_hot_path_logs_nothing_at_info_or_above(
        records: Callable[..., list[logging.LogRecord]], tmp_path: Path) -> None:
    with JobStore(f"sqlite:///{tmp_path}/jobs.db", stage=Stage.DUAL_WRITE) as jobs:
        before = len(records())
        for i in range(1000):
            jobs[f"k{i}"] = {"n": i}
            assert jobs[f"k{i}"]["n"] == i
        jobs.sync()
        during = records()[before:]
    assert [r.getMessage() for r in during if r.levelno >= logging.INFO] == []


def test_every_event_the_package_logs_is_documented() -> None:
    """docs/logging.md has a row for each event named in an ``emit(...)`` call in src/."""
    root = Path(__file__).resolve().parent.parent
    events = {event for path in (root / "src" / "jobstore").rglob("*.py")
              for event in re.findall(r'emit\(\w+, [^,]+, "([a-z_]+\.[a-z_]+)"',
                                      path.read_text(encoding="utf-8"))}
    assert len(events) >= 13, sorted(events)
    text = (root / "docs" / "logging.md").read_text(encoding="utf-8")
    assert [e for e in sorted(events) if f"| `{e}` |" not in text] == []


def test_records_carry_their_fields_as_arguments_for_lazy_formatting(
        records: Callable[..., list[logging.LogRecord]], tmp_path: Path) -> None:
    JobStore(f"sqlite:///{tmp_path}/jobs.db").close()
    [opened] = records("store.opened")
    assert isinstance(opened.args, dict)
    assert opened.msg % opened.args == opened.getMessage()
    assert fields(opened, "table", "stage") == ("jobs", "dual_write")
