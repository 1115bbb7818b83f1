"""`jobstore demo`, run the way the README runs it: the installed command, in a fresh folder."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

JOBSTORE = Path(sys.executable).with_name("jobstore")
DEMO_BUDGET_S = 60.0


def demo_env(tmp_path: Path) -> dict[str, str]:
    """The user's environment without jobstore settings, temporary files under ``tmp_path``
    and a wide terminal, so that no narrated line is wrapped."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBSTORE_")}
    env.update(TMPDIR=str(tmp_path), COLUMNS="200")
    return env


def processes_mentioning(text: str) -> list[str]:
    """Command lines of running processes that mention ``text`` (a demo's folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{entry.name}: {cmdline}")
    return found


@pytest.mark.slow
def test_the_demo_runs_to_the_end_in_a_fresh_folder_in_under_a_minute(tmp_path: Path) -> None:
    """`jobstore demo` exits 0 within a minute, narrates every milestone, and leaves stage
    db_only with every job it created in the database and completed, and no process behind."""
    folder = tmp_path / "demo"
    started = time.monotonic()
    result = subprocess.run(
        [str(JOBSTORE), "demo", "--dir", str(folder)], cwd=tmp_path, env=demo_env(tmp_path),
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=180, check=False)
    elapsed = time.monotonic() - started
    output = result.stdout
    assert result.returncode == 0, output[-4000:] + result.stderr[-4000:]
    assert elapsed < DEMO_BUDGET_S, f"the demo took {elapsed:.1f} s"

    milestones = [
        "$ jobstore init --stage memory",
        "is gone after the restart",
        "$ jobstore stage dual_write",
        "A runs dual_write",
        "B serves A's job",
        "server A SIGKILLed at",
        "the new A reads job",
        "reached the database",
        "$ jobstore verify",
        "exit 1 (drift found)",
        "exit 1 (cutover refused)",
        "exit 0 (consistent again)",
        "A and B run shadow",
        "0 mismatches",
        "A and B run db_primary",
        "asked right after the command returned: A runs db_only, B runs db_only",
        "$ jobstore rollback",
        "A still serves all",
        "servers A and B stopped cleanly",
    ]
    positions = []
    for milestone in milestones:
        assert milestone in output, f"{milestone!r} not narrated:\n{output[-4000:]}"
        positions.append(output.index(milestone))
    assert positions == sorted(positions), "the milestones are narrated out of order"
    done = re.search(r"The migration is done: stage db_only, (\d+) jobs in the database, "
                     r"all completed\.", output)
    assert done is not None, output[-2000:]

    conn = sqlite3.connect(folder / "jobs.db")
    try:
        stage = conn.execute("SELECT stage FROM jobstore_control "
                             "WHERE job_table = 'presentation_jobs'").fetchone()[0]
        rows = conn.execute("SELECT key, status, payload FROM presentation_jobs").fetchall()
        registered = {pid for (pid,) in conn.execute("SELECT pid FROM jobstore_instances")}
    finally:
        conn.close()
    assert stage == "db_only"
    assert len(rows) == int(done.group(1)) >= 7
    for key, status, payload in rows:
        document = json.loads(payload)
        assert status == document["status"] == "completed", key
        assert document["video_url"] == f"/download/{key}.mp4", key
    created = set(re.findall(r"\b([0-9a-f]{6})\b", output))
    assert {key for key, _s, _p in rows} <= created
    last_pids = dict(re.findall(r"server ([AB]) started: pid (\d+)", output))
    assert set(last_pids) == {"A", "B"}
    closed = {int(pid) for pid in last_pids.values()}
    assert not closed & registered, "a server stopped at the end did not close its store"
    assert processes_mentioning(str(folder)) == []


def start_demo_until_both_servers_run(tmp_path: Path) -> tuple[subprocess.Popen[str], Path]:
    """`jobstore demo --fast` started in ``tmp_path``, once server B has started."""
    proc = subprocess.Popen(
        [str(JOBSTORE), "demo", "--fast"], cwd=tmp_path, env=demo_env(tmp_path),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    seen = []
    deadline = time.monotonic() + 90
    for line in proc.stdout:
        seen.append(line)
        if "server B started" in line or time.monotonic() > deadline:
            break
    assert "server B started" in seen[-1], "".join(seen)
    folders = list(tmp_path.glob("jobstore-demo-*"))
    assert len(folders) == 1
    assert len(processes_mentioning(str(folders[0]))) == 2, "servers A and B should be running"
    return proc, folders[0]


@pytest.mark.slow
def test_servers_exit_by_themselves_when_the_demo_is_killed(tmp_path: Path) -> None:
    """A demo SIGKILLed mid-run (no cleanup possible) leaves no server running: each server
    exits when its stdin closes."""
    proc, folder = start_demo_until_both_servers_run(tmp_path)
    try:
        proc.kill()
        proc.wait(10)
    finally:
        assert proc.stdout is not None
        proc.stdout.close()
    deadline = time.monotonic() + 15
    while processes_mentioning(str(folder)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_mentioning(str(folder)) == []


@pytest.mark.slow
def test_ctrl_c_stops_the_demo_servers_and_removes_its_temporary_folder(
        tmp_path: Path) -> None:
    """Ctrl-C in the middle of the demo exits 130 with no server left running and no
    temporary folder left behind."""
    proc, folder = start_demo_until_both_servers_run(tmp_path)
    try:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert proc.returncode == 130, rest
    assert "Interrupted: the demo's servers are stopped." in rest
    assert processes_mentioning(str(folder)) == []
    assert not folder.exists()
