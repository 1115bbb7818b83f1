"""A writer killed with SIGKILL loses no write it acknowledged, and leaves an intact file."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from _workers import worker
from jobstore import JobStore, Stage
from workers.models import PresentationJob, sample_job

KILLS = 20
READY_WAIT_S = 30.0
MAX_DELAY_S = 0.3


class Zygote:
    """``workers/writer_zygote.py``: forks writer processes for the test to kill."""

    def __init__(self, url: str) -> None:
        self.process = worker("writer_zygote", url, "jobs", stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE)
        assert self._answer() == "ready"

    def _answer(self) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        assert line, f"the zygote died (exit {self.process.poll()})"
        return line

    def _ask(self, command: str) -> list[str]:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self._answer().split()

    def spawn(self, stage: Stage, prefix: str, log: Path) -> int:
        _pid, pid = self._ask(f"spawn {stage} {prefix} {log}")
        return int(pid)

    def reap(self, pid: int) -> int:
        """The signal that ended the writer (0 if it exited by itself)."""
        _reaped, _pid, signal_number = self._ask(f"reap {pid}")
        return int(signal_number)

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        assert self.process.stdout is not None
        self.process.stdout.close()


@pytest.fixture
def zygote(tmp_path: Path) -> Iterator[Zygote]:
    started = Zygote(f"sqlite:///{tmp_path}/jobs.db")
    yield started
    started.close()


def acknowledged(log: Path) -> dict[str, int]:
    """Every ``ack KEY N`` line the writer finished printing before it died."""
    acked: dict[str, int] = {}
    if not log.exists():
        return acked  # killed between the fork and opening its log: it wrote nothing
    text = log.read_text()
    for line in text[: text.rfind("\n") + 1].splitlines():
        if line.startswith("ack "):
            _ack, key, n = line.split()
            acked[key] = int(n)
    return acked


def kill_at_random(zygote: Zygote, stage: Stage, prefix: str, log: Path,
                   rng: random.Random, *, while_opening: bool = False) -> None:
    """Start a writer, let it write for a random short while, then SIGKILL it; or, with
    ``while_opening``, kill it within its first 50 ms, while it may still be opening the store
    (creating the tables, seeding the control row)."""
    pid = zygote.spawn(stage, prefix, log)
    try:
        if while_opening:
            time.sleep(rng.uniform(0.0, 0.05))
            return
        deadline = time.monotonic() + READY_WAIT_S
        while not log.exists() or "ready" not in log.read_text():
            assert "Traceback" not in (log.read_text() if log.exists() else ""), log.read_text()
            assert time.monotonic() < deadline, "the writer never became ready"
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, MAX_DELAY_S))
    finally:
        os.kill(pid, signal.SIGKILL)
        assert zygote.reap(pid) == signal.SIGKILL, log.read_text()[-2000:]


@pytest.mark.slow
def test_a_writer_killed_20_times_at_random_loses_no_acknowledged_write(
        tmp_path: Path, zygote: Zygote) -> None:
    path = tmp_path / "jobs.db"
    rng = random.Random()
    all_acked: dict[str, int] = {}
    for run in range(KILLS):
        stage = Stage.DB_ONLY if run % 2 else Stage.DUAL_WRITE
        log = tmp_path / f"run{run}.log"
        kill_at_random(zygote, stage, f"r{run}", log, rng, while_opening=run % 5 == 0)
        acked = acknowledged(log)

        conn = sqlite3.connect(path)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)], run
            tables = {name for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
            stored = dict(conn.execute("SELECT key, payload FROM jobs WHERE key LIKE ?",
                                       (f"r{run}-%",)).fetchall()) if "jobs" in tables else {}
        finally:
            conn.close()
        lost = sorted(set(acked) - set(stored), key=lambda k: acked[k])
        assert not lost, f"run {run} ({stage}): {len(lost)} acknowledged writes lost: {lost[:5]}"
        all_acked.update(acked)

    print(f"{KILLS} writers SIGKILLed; {len(all_acked)} acknowledged writes, 0 lost")
    assert len(all_acked) >= KILLS, "the writers were killed before they wrote anything"
    jobs: JobStore[str, PresentationJob] = JobStore(
        f"sqlite:///{path}", table="jobs", model=PresentationJob)
    with jobs:
        assert len(jobs) >= len(all_acked)
        for key in rng.sample(sorted(all_acked), min(200, len(all_acked))):
            assert jobs[key] == sample_job(key, all_acked[key])
