"""The ``jobstore`` command through click's CliRunner: exact exit codes, JSON that parses with
nothing else on stdout, one-line errors. Live instances here are JobStores in this process (their
background loop answers like a separate process would); tests/test_cli_live.py uses real ones."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import column, create_engine, table, text, update

from jobstore import JobStore, Stage, admin
from jobstore.cli import cli

WAIT_S = 10.0
Run = Callable[..., Result]
Stores = Callable[..., JobStore[Any]]


@pytest.fixture
def db_file(tmp_path: Path) -> Path:
    return tmp_path / "jobs.db"


@pytest.fixture
def url(db_file: Path) -> str:
    return f"sqlite:///{db_file}"


@pytest.fixture
def run(url: str, table_name: str) -> Run:
    """Run ``jobstore --url URL --table TABLE ARGS...``."""
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None, **env: str) -> Result:
        return runner.invoke(cli, ["--url", url, "--table", table_name, *args], input=input,
                             env=env or None, catch_exceptions=False)

    return invoke


@pytest.fixture
def stores(url: str, table_name: str) -> Iterator[Stores]:
    """Open in-process stores on the test's table; closed afterwards."""
    opened: list[JobStore[Any]] = []

    def make(**kwargs: Any) -> JobStore[Any]:
        kwargs.setdefault("sync_interval", 0.1)
        store: JobStore[Any] = JobStore(url, table=table_name, **kwargs)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


def live_store(make: Stores, run: Run, **kwargs: Any) -> JobStore[Any]:
    """A store whose loop runs and whose heartbeat status already shows."""
    store = make(**kwargs)
    store["job-1"] = {"status": "queued", "slides": 3}
    wait_until(lambda: store.instance_id in {
        i["instance_id"] for i in as_json(run("status", "--json"))["instances"]})
    return store


def wait_until(condition: Callable[[], bool], timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def as_json(result: Result) -> Any:
    """stdout parsed as one JSON document (fails if anything else is there)."""
    return json.loads(result.stdout)


def one_line_error(result: Result) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr
    return lines[0]


def change_in_db(db_file: Path, table: str, key: str, document: dict[str, Any]) -> None:
    """Change a payload behind every process's back, with plain SQL."""
    with sqlite3.connect(db_file) as conn:
        conn.execute(f"UPDATE {table} SET payload = ? WHERE key = ?", (json.dumps(document), key))


@pytest.fixture
def initialised(run: Run) -> None:
    assert run("init").exit_code == 0


# exit 0 ------------------------------------------------------------------------------------

@pytest.mark.usefixtures("initialised")
def test_status_json_has_the_stage_and_every_instance(run: Run, stores: Stores) -> None:
    store = live_store(stores, run)
    result = run("status", "--json")
    assert result.exit_code == 0
    document = as_json(result)
    assert document["stage"] == "dual_write"
    assert document["jobs"] == 1
    [instance] = document["instances"]
    assert instance["instance_id"] == store.instance_id
    assert instance["live"] is True
    assert instance["stage"] == "dual_write"


@pytest.mark.usefixtures("initialised")
def test_status_for_people_names_the_stage_and_the_live_instance(run: Run, stores: Stores) -> None:
    live_store(stores, run)
    result = run("status")
    assert result.exit_code == 0
    assert "dual_write" in result.stdout
    assert "Live instances (1)" in result.stdout
    assert str(os.getpid()) in result.stdout


@pytest.mark.usefixtures("initialised")
def test_verify_of_a_clean_instance_exits_0_and_says_consistent(run: Run, stores: Stores) -> None:
    live_store(stores, run)
    result = run("verify", "--json")
    assert result.exit_code == 0, result.stdout
    document = as_json(result)
    assert document["consistent"] is True
    assert document["drifted_keys"] == []
    assert document["checked"] == 1


def test_init_is_idempotent_and_keeps_an_existing_stage(run: Run) -> None:
    first = run("init", "--stage", "shadow", "--json")
    again = run("init", "--stage", "memory", "--json")
    assert (first.exit_code, again.exit_code) == (0, 0)
    assert as_json(first)["seeded"] is True
    assert as_json(again)["created"] == []
    assert as_json(again)["stage"] == "shadow"
    assert as_json(again)["seeded"] is False


@pytest.mark.usefixtures("initialised")
def test_stage_without_argument_shows_it_and_with_one_sets_it(run: Run) -> None:
    assert as_json(run("stage", "--json"))["stage"] == "dual_write"
    result = run("stage", "shadow", "--json")
    assert result.exit_code == 0
    assert as_json(result)["changed"] is True
    assert as_json(run("stage", "--json"))["stage"] == "shadow"


@pytest.mark.usefixtures("initialised")
def test_set_stage_waits_until_the_live_instance_runs_it(run: Run, stores: Stores) -> None:
    store = live_store(stores, run)
    result = run("stage", "shadow", "--json")
    assert result.exit_code == 0
    assert as_json(result)["barrier"]["reached"] == [store.instance_id]
    assert store.stage is Stage.SHADOW


@pytest.mark.usefixtures("initialised")
def test_show_history_and_ls_read_the_database(run: Run, stores: Stores) -> None:
    store = stores()
    store["job-1"] = {"status": "queued", "slides": 3}
    store["job-1"] = {"status": "completed", "slides": 3}
    store["job-2"] = {"status": "queued", "slides": 1}
    shown = as_json(run("show", "job-1", "--json"))
    assert shown["job"]["payload"] == {"status": "completed", "slides": 3}
    assert shown["job"]["version"] == 2
    versions = as_json(run("history", "job-1", "--json"))["versions"]
    assert [v["status"] for v in versions] == ["queued", "completed"]
    assert versions[1]["changes"] == [{"path": "status", "before": "queued",
                                       "after": "completed"}]
    listed = as_json(run("ls", "--status", "queued", "--json"))
    assert [j["key"] for j in listed["jobs"]] == ["job-2"]
    assert listed["total"] == 1
    assert as_json(run("ls", "--limit", "1", "--json"))["total"] == 2


@pytest.mark.usefixtures("initialised")
def test_markup_in_a_key_is_printed_as_written(run: Run, stores: Stores) -> None:
    store = stores()
    store["[red]x[/red]"] = {"status": "[bold]queued"}
    result = run("ls")
    assert result.exit_code == 0
    assert "[red]x[/red]" in result.stdout
    assert "[bold]queued" in result.stdout


@pytest.mark.usefixtures("initialised")
def test_export_then_import_copies_every_job_into_another_table(
        run: Run, stores: Stores, tmp_path: Path, url: str) -> None:
    store = stores()
    store.update({f"job-{n}": {"status": "queued", "n": n} for n in range(5)})
    dump = tmp_path / "jobs.jsonl"
    assert run("export", str(dump)).exit_code == 0
    assert dump.stat().st_mode & 0o777 == 0o600
    runner = CliRunner()
    assert runner.invoke(cli, ["--url", url, "--table", "copy", "init"]).exit_code == 0
    result = runner.invoke(cli, ["--url", url, "--table", "copy", "import", str(dump), "--json"])
    assert result.exit_code == 0
    assert as_json(result)["inserted"] == 5
    copied = as_json(runner.invoke(cli, ["--url", url, "--table", "copy", "show", "job-3",
                                         "--json"]))
    assert copied["job"]["payload"] == {"status": "queued", "n": 3}


@pytest.mark.usefixtures("initialised")
def test_export_without_file_prints_json_lines_on_stdout(run: Run, stores: Stores) -> None:
    store = stores()
    store["a"] = {"status": "queued"}
    result = run("export")
    assert result.exit_code == 0
    [line] = result.stdout.splitlines()
    assert json.loads(line)["payload"] == {"status": "queued"}


@pytest.mark.usefixtures("initialised")
def test_import_never_overwrites_a_newer_row(run: Run, stores: Stores, tmp_path: Path) -> None:
    store = stores()
    store["a"] = {"status": "queued"}
    dump = tmp_path / "old.jsonl"
    assert run("export", str(dump)).exit_code == 0
    store["a"] = {"status": "completed"}
    result = run("import", str(dump), "--json")
    assert result.exit_code == 0
    assert as_json(result)["kept"] == 1
    assert as_json(run("show", "a", "--json"))["job"]["payload"] == {"status": "completed"}


@pytest.mark.usefixtures("initialised")
def test_verify_snapshot_of_a_matching_dump_is_consistent(
        run: Run, stores: Stores, tmp_path: Path) -> None:
    store = stores()
    store["a"] = {"status": "queued"}
    store.dump_memory(tmp_path / "mem.json")
    result = run("verify", "--snapshot", str(tmp_path / "mem.json"), "--json")
    assert result.exit_code == 0
    assert as_json(result)["consistent"] is True


# exit 1 ------------------------------------------------------------------------------------

@pytest.mark.usefixtures("initialised")
def test_verify_reports_a_payload_changed_in_the_db_with_key_and_field(
        run: Run, stores: Stores, db_file: Path, table_name: str) -> None:
    live_store(stores, run)
    change_in_db(db_file, table_name, "job-1", {"status": "failed", "slides": 3})
    result = run("verify", "--json")
    assert result.exit_code == 1
    document = as_json(result)
    assert document["consistent"] is False
    assert document["drifted_keys"] == ["job-1"]
    [drift] = document["drifts"]
    assert drift["kind"] == "changed"
    assert drift["fields"] == [{"path": "status", "memory": "queued", "db": "failed"}]
    people = run("verify")
    assert people.exit_code == 1
    assert "job-1" in people.stdout
    assert "failed" in people.stdout


@pytest.mark.usefixtures("initialised")
def test_verify_snapshot_reports_a_job_missing_from_the_db(
        run: Run, stores: Stores, tmp_path: Path) -> None:
    assert run("stage", "memory").exit_code == 0
    store = stores()
    store["only-in-memory"] = {"status": "queued"}
    store.dump_memory(tmp_path / "mem.json")
    result = run("verify", "--snapshot", str(tmp_path / "mem.json"), "--json")
    assert result.exit_code == 1
    [drift] = as_json(result)["drifts"]
    assert (drift["key"], drift["kind"]) == ("only-in-memory", "missing_in_db")


@pytest.mark.usefixtures("initialised")
def test_cutover_refuses_on_drift_and_keeps_the_stage(
        run: Run, stores: Stores, db_file: Path, table_name: str) -> None:
    store = live_store(stores, run)
    change_in_db(db_file, table_name, "job-1", {"status": "failed", "slides": 3})
    result = run("cutover", "--yes", "--json")
    assert result.exit_code == 1
    document = as_json(result)
    assert document["outcome"] == "refused"
    assert "job-1" in document["reasons"][0]
    assert as_json(run("stage", "--json"))["stage"] == "dual_write"
    assert store.stage is Stage.DUAL_WRITE


@pytest.mark.usefixtures("initialised")
def test_cutover_answered_no_at_the_prompt_changes_nothing(run: Run, stores: Stores) -> None:
    live_store(stores, run)
    result = run("cutover", input="n\n")
    assert result.exit_code == 1
    assert "cancelled" in result.stdout
    assert as_json(run("stage", "--json"))["stage"] == "dual_write"


@pytest.mark.usefixtures("initialised")
def test_stage_db_only_is_refused_without_force(run: Run) -> None:
    result = run("stage", "db_only")
    assert result.exit_code == 1
    assert "cutover" in result.stdout
    assert as_json(run("stage", "--json"))["stage"] == "dual_write"


@pytest.mark.usefixtures("initialised")
def test_rollback_to_memory_is_refused_with_the_number_of_jobs_no_live_dict_holds(
        run: Run, stores: Stores) -> None:
    writer = stores()
    writer.update({"a": {"status": "queued"}, "b": {"status": "queued"}})
    writer.close()
    live_store(stores, run)  # holds job-1 in its dict
    assert run("stage", "db_primary").exit_code == 0
    result = run("rollback", "--to", "memory", "--json")
    assert result.exit_code == 1
    document = as_json(result)
    assert (document["jobs_in_db"], document["hidden_jobs"]) == (3, 2)
    assert "hide 2 of the 3 job(s) in the database ('a', 'b')" in document["refused"]
    forced = run("rollback", "--to", "memory", "--force", "--json")
    assert forced.exit_code == 0
    assert as_json(forced)["hidden_jobs"] == 2, "the live store was not asked again"
    assert as_json(run("stage", "--json"))["stage"] == "memory"


@pytest.mark.usefixtures("initialised")
def test_show_of_an_unknown_key_exits_1(run: Run) -> None:
    result = run("show", "nope", "--json")
    assert result.exit_code == 1
    assert as_json(result) == {"key": "nope", "found": False, "job": None, "undecodable": None}


# exit 0 again: cutover and rollback ----------------------------------------------------------

@pytest.mark.usefixtures("initialised")
def test_cutover_dry_run_prints_the_plan_and_changes_nothing(run: Run, stores: Stores) -> None:
    live_store(stores, run)
    result = run("cutover", "--dry-run", "--json")
    assert result.exit_code == 0
    assert as_json(result)["outcome"] == "dry_run"
    assert as_json(result)["plan"]
    assert as_json(run("stage", "--json"))["stage"] == "dual_write"


@pytest.mark.usefixtures("initialised")
def test_cutover_switches_the_live_instance_before_returning_and_rollback_undoes_it(
        run: Run, stores: Stores) -> None:
    store = live_store(stores, run)
    result = run("cutover", "--yes", "--json")
    assert result.exit_code == 0, result.stdout
    assert as_json(result)["outcome"] == "done"
    after_cutover = store.stage
    assert after_cutover is Stage.DB_ONLY
    back = run("rollback", "--json")
    assert back.exit_code == 0
    assert as_json(back)["stage"] == "db_primary"
    assert store.stage is Stage.DB_PRIMARY
    assert store["job-1"] == {"status": "queued", "slides": 3}


# exit 2 ------------------------------------------------------------------------------------

def test_a_missing_sqlite_file_is_one_line_and_is_not_created(run: Run, db_file: Path) -> None:
    result = run("status")
    assert result.exit_code == 2
    assert "jobstore init" in one_line_error(result)
    assert result.stdout == ""
    assert not db_file.exists()


def test_an_unknown_command_is_a_one_line_usage_error(run: Run) -> None:
    result = run("frobnicate")
    assert result.exit_code == 2
    assert "frobnicate" in one_line_error(result)


@pytest.mark.usefixtures("initialised")
def test_an_unknown_stage_is_a_one_line_usage_error(run: Run) -> None:
    result = run("stage", "dual-write")
    assert result.exit_code == 2
    assert "dual-write" in one_line_error(result)


@pytest.mark.usefixtures("initialised")
def test_rollback_to_a_later_stage_is_a_usage_error(run: Run) -> None:
    result = run("rollback", "--to", "db_only")
    assert result.exit_code == 2
    assert "only moves back" in one_line_error(result)


@pytest.mark.usefixtures("initialised")
def test_a_malformed_import_line_writes_nothing(run: Run, tmp_path: Path) -> None:
    lines = tmp_path / "bad.jsonl"
    lines.write_text('{"key": "a", "payload": {}, "updated_at": "2026-01-01T00:00:00+00:00"}\n'
                     '{"key": "b"}\n')
    result = run("import", str(lines))
    assert result.exit_code == 2
    assert "line 2" in one_line_error(result)
    assert as_json(run("ls", "--json"))["total"] == 0


@pytest.mark.parametrize("name", ["jobs; drop", "jobs\n"])
def test_an_invalid_table_name_is_a_one_line_error(
        url: str, initialised: None, name: str) -> None:
    result = CliRunner().invoke(cli, ["--url", url, "--table", name, "status"])
    assert result.exit_code == 2
    assert "invalid table name" in one_line_error(result)


@pytest.mark.parametrize("scheme", ["postgresql+psycopg", "mysql+pymysql"])
def test_an_unreachable_server_is_exit_2_without_the_password(
        scheme: str, unused_port: int) -> None:
    url = f"{scheme}://operator:pw-Zx81q@127.0.0.1:{unused_port}/jobs"
    result = CliRunner().invoke(cli, ["--url", url, "status", "--json"])
    assert result.exit_code == 2
    line = one_line_error(result)
    assert "127.0.0.1" in line
    assert result.stdout == ""
    assert "pw-Zx81q" not in result.output + result.stderr


@pytest.mark.parametrize("command", [["status"], ["init"], ["init", "--sql"], ["export"]])
@pytest.mark.parametrize("url", ["postgresql://operator:pw-Zx81q@127.0.0.1:notaport/jobs",
                                 "postgresql://operator:pw-Zx81q@[::1/jobs",
                                 "postgres://operator:pw-Zx81q@127.0.0.1/jobs"])
def test_a_malformed_url_is_exit_2_in_one_line_without_the_password(
        url: str, command: list[str]) -> None:
    result = CliRunner().invoke(cli, ["--url", url, *command])
    assert result.exit_code == 2
    line = one_line_error(result)
    assert line.startswith(("error: not a database URL", "error: unsupported database"))
    assert "pw-Zx81q" not in result.output + result.stderr


def test_debug_prints_the_traceback_but_still_not_the_password(unused_port: int) -> None:
    url = f"postgresql+psycopg://operator:pw-Zx81q@127.0.0.1:{unused_port}/jobs"
    result = CliRunner().invoke(cli, ["--debug", "--url", url, "status"])
    assert result.exit_code == 2
    assert "Traceback" in result.stderr
    assert "pw-Zx81q" not in result.output + result.stderr


def test_jobstore_url_is_read_from_the_environment(tmp_path: Path) -> None:
    missing = tmp_path / "elsewhere.db"
    result = CliRunner().invoke(cli, ["status"], env={"JOBSTORE_URL": f"sqlite:///{missing}"})
    assert result.exit_code == 2
    assert "elsewhere.db" in one_line_error(result)


# exit 3 ------------------------------------------------------------------------------------

@pytest.mark.usefixtures("initialised")
def test_verify_with_no_live_instance_exits_3(run: Run) -> None:
    result = run("verify", "--timeout", "0.5", "--json")
    assert result.exit_code == 3
    document = as_json(result)
    assert document["consistent"] is False
    assert document["complete"] is False


@pytest.mark.usefixtures("initialised")
def test_verify_exits_3_naming_a_live_instance_that_did_not_answer(
        run: Run, stores: Stores) -> None:
    slow = live_store(stores, run, sync_interval=30.0)
    result = run("verify", "--timeout", "0.5", "--json")
    assert result.exit_code == 3
    assert [i["instance_id"] for i in as_json(result)["unanswered"]] == [slow.instance_id]


@pytest.mark.usefixtures("initialised")
def test_stage_exits_3_naming_a_live_instance_that_did_not_switch(run: Run, stores: Stores) -> None:
    slow = live_store(stores, run, sync_interval=30.0)
    result = run("stage", "shadow", "--timeout", "0.5", "--json")
    assert result.exit_code == 3
    missing = as_json(result)["barrier"]["missing"]
    assert [i["instance_id"] for i in missing] == [slow.instance_id]


@pytest.fixture
def unused_port() -> int:
    """A loopback TCP port nothing listens on."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_verify_drift_and_cutover_behave_alike_on_every_backend(
        db_url: str, table_name: str) -> None:
    """On SQLite, PostgreSQL and MariaDB: verify clean, a drift found, cutover done."""
    runner = CliRunner()

    def run_here(*args: str) -> Result:
        return runner.invoke(cli, ["--url", db_url, "--table", table_name, *args],
                             catch_exceptions=False)

    assert run_here("init").exit_code == 0
    store: JobStore[Any] = JobStore(db_url, table=table_name, sync_interval=0.2)
    try:
        store["job-1"] = {"status": "queued", "slides": 3}
        wait_until(lambda: len(admin.status(db_url, table=table_name).live) == 1)
        assert run_here("verify", "--json").exit_code == 0
        engine = create_engine(db_url)
        try:
            with engine.begin() as conn:
                key = engine.dialect.identifier_preparer.quote("key")
                conn.execute(text(f"UPDATE {table_name} SET payload = :p WHERE {key} = 'job-1'"),
                             {"p": json.dumps({"status": "failed", "slides": 3})})
        finally:
            engine.dispose()
        drifted = run_here("verify", "--json")
        assert drifted.exit_code == 1
        assert as_json(drifted)["drifted_keys"] == ["job-1"]
        store["job-1"] = {"status": "queued", "slides": 3}
        done = run_here("cutover", "--yes", "--json")
        assert done.exit_code == 0, done.stdout
        assert store.stage is Stage.DB_ONLY
    finally:
        store.close()


def test_verify_does_not_call_an_older_copy_of_a_job_another_process_rewrote_drift(
        make_store: Callable[..., JobStore[Any]], db_url: str) -> None:
    """A server holding a job it read before another server rewrote it reports no drift (its
    next read revalidates the copy), while the same server still reports a row changed behind
    its back at the version it holds."""
    writer, reader = make_store(stage="dual_write"), make_store(stage="dual_write")
    writer["abc123"] = {"status": "queued"}
    reader["mine"] = {"status": "queued"}
    assert reader["abc123"] == {"status": "queued"}
    writer["abc123"] = {"status": "completed"}
    jobs = table(writer.table, column("key"), column("payload"))
    engine = create_engine(db_url)
    try:  # a hand edit: same version, another payload
        with engine.begin() as conn:
            conn.execute(update(jobs).where(jobs.c.key == "mine")
                         .values(payload='{"status": "failed"}'))
    finally:
        engine.dispose()
    report = reader.verify()
    assert [(d.key, d.kind.value) for d in report.drifts] == [("mine", "changed")]
