"""Rows jobstore did not write, inserted with plain SQL as a foreign writer or a damaged file
leaves them: a payload nested 200,000 deep, text that is not JSON. Every command names the key
and goes on, instead of failing with "unexpected RecursionError"."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from jobstore import DecodeError, JobStore
from jobstore.cli import cli
from jobstore.codec import Codec, read_document

DEEP = '{"a":' * 200_000 + "1" + "}" * 200_000
NOT_JSON = "status: done"


def insert_raw(path: Path, key: str, payload: str) -> None:
    """A row and its history event as another program would write them."""
    with sqlite3.connect(path) as conn:
        stamp = "2026-01-01 00:00:00"
        conn.execute("INSERT INTO jobs (key, payload, status, version, created_at, updated_at, "
                     "written_by) VALUES (?, ?, NULL, 1, ?, ?, 'foreign')",
                     (key, payload, stamp, stamp))
        conn.execute("INSERT INTO jobs_events (key, version, op, payload, status, at, "
                     "written_by) VALUES (?, 1, 'set', ?, NULL, ?, 'foreign')",
                     (key, payload, stamp))
    conn.close()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """Three jobs written by a store, then the deep row and the non-JSON one between them."""
    path = tmp_path / "jobs.db"
    with JobStore(f"sqlite:///{path}", table="jobs") as jobs:
        jobs["a"] = {"n": 1}
    insert_raw(path, "deep", DEEP)
    insert_raw(path, "text", NOT_JSON)
    with JobStore(f"sqlite:///{path}", table="jobs") as jobs:
        jobs["z"] = {"n": 26}
    return path


def run(db: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--url", f"sqlite:///{db}", *args], catch_exceptions=False)


@pytest.mark.parametrize("payload", [DEEP, NOT_JSON])
def test_a_payload_that_cannot_be_read_is_a_decode_error_naming_the_key(payload: str) -> None:
    with pytest.raises(DecodeError, match="'deep'") as raised:
        read_document("deep", payload)
    assert raised.value.key == "deep"
    with pytest.raises(DecodeError, match="'deep'"):
        Codec(None).decode("deep", payload)


def test_show_of_a_row_nested_too_deeply_exits_1_with_a_line_naming_the_key(db: Path) -> None:
    result = run(db, "show", "deep")
    assert result.exit_code == 1, result.output
    assert result.stderr == ""
    last = result.stdout.splitlines()[-1]
    assert last.startswith("✗ cannot decode the row for key 'deep': recursion limit exceeded")
    shown = json.loads(run(db, "show", "deep", "--json").stdout)
    assert shown["found"] is True
    assert shown["job"]["payload"] is None
    assert shown["undecodable"].startswith("cannot decode the row for key 'deep'")


def test_show_of_a_row_that_is_not_json_exits_1_naming_the_key(db: Path) -> None:
    result = run(db, "show", "text")
    assert result.exit_code == 1
    assert result.stdout.splitlines()[-1].startswith("✗ cannot decode the row for key 'text'")


def test_show_of_a_good_row_beside_them_exits_0(db: Path) -> None:
    result = run(db, "show", "a", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["job"]["payload"] == {"n": 1}
    assert json.loads(result.stdout)["undecodable"] is None


@pytest.mark.parametrize("to_file", [False, True])
def test_export_goes_on_past_rows_it_cannot_decode_names_them_and_exits_1(
        db: Path, tmp_path: Path, to_file: bool) -> None:
    out = tmp_path / "out.jsonl"
    result = run(db, "export", *([str(out)] if to_file else []))
    assert result.exit_code == 1, result.output
    lines = (out.read_text() if to_file else result.stdout).splitlines()
    assert [json.loads(line)["key"] for line in lines] == ["a", "z"]
    left_out = [line for line in result.stderr.splitlines() if "left out:" in line]
    assert len(left_out) == 2, result.stderr
    assert "'deep'" in left_out[0]
    assert "'text'" in left_out[1]
    summary = (result.stdout if to_file else result.stderr).splitlines()[-1]
    assert summary.endswith("exported 2 job(s) from jobs to " + (str(out) if to_file else "stdout")
                            + ", 2 left out")


def test_history_of_a_deep_row_shows_it_as_text(db: Path) -> None:
    result = run(db, "history", "deep", "--json")
    assert result.exit_code == 0
    [version] = json.loads(result.stdout)["versions"]
    assert version["payload"] == DEEP


def test_verify_of_a_snapshot_reports_the_deep_row_as_undecodable(
        db: Path, tmp_path: Path) -> None:
    dump = tmp_path / "memory.json"
    with JobStore(f"sqlite:///{db}", table="jobs", sync_interval=600) as jobs:
        jobs["deep"] = {"a": 1}
        insert_raw_update(db, "deep", DEEP)
        jobs.dump_memory(dump)
    result = run(db, "verify", "--snapshot", str(dump), "--json")
    assert result.exit_code == 1, result.output
    report: Any = json.loads(result.stdout)
    assert [(d["key"], d["kind"]) for d in report["drifts"]] == [("deep", "undecodable")]


def insert_raw_update(path: Path, key: str, payload: str) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE jobs SET payload = ? WHERE key = ?", (payload, key))
    conn.close()
