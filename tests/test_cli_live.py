"""The real ``jobstore`` command against real service processes (tests/workers/cli_service.py):
verify, a drift caught, cutover refused then done behind a barrier, rollback; and a server URL
whose password must never be printed."""

from __future__ import annotations

import json
import os
import select
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from jobstore import admin
from jobstore.cli import cli as cli_group

WORKER = Path(__file__).resolve().parent / "workers" / "cli_service.py"
WAIT_S = 30.0


def jobstore_command() -> str:
    beside = Path(sys.executable).with_name("jobstore")
    found = str(beside) if beside.exists() else shutil.which("jobstore")
    assert found, "the jobstore console script is not installed"
    return found


def cli(*args: str, timeout: float = WAIT_S) -> subprocess.CompletedProcess[str]:
    """Run the installed ``jobstore`` console script to its end."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBSTORE_")}
    return subprocess.run([jobstore_command(), *args], capture_output=True, text=True,
                          timeout=timeout, env=env, check=False)


class Service:
    """One service process, driven line by line over its stdin and stdout."""

    def __init__(self, url: str, table: str, name: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("JOBSTORE_")}
        self.process = subprocess.Popen(
            [sys.executable, str(WORKER), url, table, name], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

    def ask(self, line: str) -> str:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        return self.read()

    def read(self) -> str:
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], WAIT_S)
        if not ready:
            self.kill()
            raise AssertionError(f"the service said nothing in {WAIT_S} s")
        line = self.process.stdout.readline()
        if not line:
            _, err = self.process.communicate(timeout=WAIT_S)
            raise AssertionError(f"the service exited {self.process.returncode}: {err}")
        return line.strip()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate(timeout=WAIT_S)


@pytest.fixture
def services() -> Iterator[Callable[[str, str, str], Service]]:
    started: list[Service] = []

    def start(url: str, table: str, name: str) -> Service:
        service = Service(url, table, name)
        started.append(service)
        return service

    yield start
    for service in started:
        service.kill()


def wait_for_live(url: str, table: str, count: int) -> None:
    deadline = time.monotonic() + WAIT_S
    while True:
        live = admin.status(url, table=table).live
        if len(live) >= count:
            return
        assert time.monotonic() < deadline, f"{len(live)} of {count} instances live"
        time.sleep(0.2)


@pytest.mark.slow
def test_cutover_waits_for_two_live_services_and_rollback_brings_them_back(
        tmp_path: Path, services: Callable[[str, str, str], Service]) -> None:
    """Two services: verify is clean; a payload changed in the DB is reported with its key and
    field and refuses cutover; once a service rewrites the job, cutover returns only after both
    run db_only; rollback brings both to db_primary."""
    db_file = tmp_path / "jobs.db"
    url, table = f"sqlite:///{db_file}", "presentation_jobs"
    base = ("--url", url, "--table", table)
    admin.init(url, table=table)
    alpha = services(url, table, "alpha")
    beta = services(url, table, "beta")
    assert [alpha.read(), beta.read()] == ["ready", "ready"]
    wait_for_live(url, table, 2)
    runner = CliRunner()

    clean = runner.invoke(cli_group, [*base, "verify", "--json"])
    assert clean.exit_code == 0, clean.output
    assert json.loads(clean.stdout)["consistent"] is True
    assert len(json.loads(clean.stdout)["reports"]) == 2

    original = {"status": "queued", "owner": "beta", "slides": 3}
    with sqlite3.connect(db_file) as conn:
        conn.execute(f"UPDATE {table} SET payload = ? WHERE key = ?",
                     (json.dumps({**original, "slides": 30}), "beta-1"))
    drifted = runner.invoke(cli_group, [*base, "verify", "--json"])
    assert drifted.exit_code == 1
    report = json.loads(drifted.stdout)
    assert report["drifted_keys"] == ["beta-1"]
    assert report["drifts"][0]["fields"] == [{"path": "slides", "memory": 3, "db": 30}]

    refused = cli(*base, "cutover", "--yes")
    assert refused.returncode == 1
    assert "refused" in refused.stdout
    assert [alpha.ask("stage"), beta.ask("stage")] == ["dual_write", "dual_write"]

    assert beta.ask(f"put beta-1 {json.dumps(original)}") == "ok"
    done = cli(*base, "cutover", "--yes", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["outcome"] == "done"
    assert [alpha.ask("stage"), beta.ask("stage")] == ["db_only", "db_only"]

    back = cli(*base, "rollback")
    assert back.returncode == 0, back.stdout + back.stderr
    assert [alpha.ask("stage"), beta.ask("stage")] == ["db_primary", "db_primary"]
    status = admin.status(url, table=table)
    assert (status.stage, status.jobs) == ("db_primary", 2)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("command", [["status"], ["cutover", "--yes", "--json"]])
def test_an_unreachable_server_with_a_password_is_one_line_exit_2_and_no_password(
        command: list[str]) -> None:
    url = f"postgresql+psycopg://operator:Sup3r-s3cret@127.0.0.1:{closed_port()}/jobs"
    result = cli("--url", url, *command)
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("error: ")
    assert result.stdout == ""
    assert "Sup3r-s3cret" not in result.stdout + result.stderr
    assert "***" in result.stderr
