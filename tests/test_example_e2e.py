"""The presentation service example, end to end: real uvicorn processes on loopback ports.

Each server is ``uvicorn app:app`` started from ``examples/presentation_service`` on a free
127.0.0.1 port, with its jobs in an SQLite file under the test's temporary folder. Servers are
killed with SIGKILL where a crash is the point, and every process a test starts is gone when the
test ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the example needs fastapi: pip install 'jobstore[example]'")
pytest.importorskip("uvicorn", reason="the example needs uvicorn: pip install 'jobstore[example]'")
httpx = pytest.importorskip("httpx", reason="the e2e tests need httpx: pip install httpx")

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "presentation_service"
TABLE = "presentation_jobs"
SYNC_S = 0.2
STEP_S = 0.15
START_TIMEOUT_S = 30.0
WAIT_S = 30.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """One ``uvicorn app:app`` process of the example."""

    def __init__(self, url: str, log: Path, **env: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log
        environment = {**os.environ, "JOBSTORE_URL": url, "JOBSTORE_TABLE": TABLE,
                       "PRESENTATION_SYNC_INTERVAL": str(SYNC_S),
                       "PRESENTATION_STEP_SECONDS": str(STEP_S), "PYTHONUNBUFFERED": "1", **env}
        environment.pop("JOBSTORE_STAGE", None)
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "app:app", "--host", "127.0.0.1",
                 "--port", str(self.port), "--log-level", "warning"],
                cwd=EXAMPLE, env=environment, stdout=out, stderr=subprocess.STDOUT,
            )
        self.client = httpx.Client(base_url=self.base, timeout=10.0)
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited {self.process.returncode}:\n{self.output()}")
            with contextlib.suppress(httpx.TransportError):
                if self.client.get("/healthz").status_code == 200:
                    return
            time.sleep(0.1)
        self.stop(signal.SIGKILL)
        raise AssertionError(f"server not ready in {START_TIMEOUT_S} s:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def health(self) -> dict[str, Any]:
        response = self.client.get("/healthz")
        response.raise_for_status()
        return dict(response.json())

    def create(self, title: str, slides: int) -> str:
        response = self.client.post("/presentations", json={"title": title, "slides": slides})
        assert response.status_code == 201, response.text
        return str(response.json()["job_id"])

    def job(self, job_id: str) -> dict[str, Any]:
        response = self.client.get(f"/presentations/{job_id}")
        assert response.status_code == 200, f"{self.base}: {job_id}: {response.status_code}"
        return dict(response.json())

    def stop(self, sig: int = signal.SIGTERM) -> None:
        self.client.close()
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start example servers; every one still running is killed at the end of the test."""
    started: list[Server] = []

    def start(url: str, **env: str) -> Server:
        server = Server(url, tmp_path / f"server{len(started)}.log", **env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop(signal.SIGKILL)


@pytest.fixture
def db(tmp_path: Path) -> tuple[str, Path]:
    path = tmp_path / "presentations.db"
    return f"sqlite:///{path}", path


def rows(path: Path) -> dict[str, dict[str, Any]]:
    """The job table as the database holds it, read with the raw driver."""
    with contextlib.closing(sqlite3.connect(path, timeout=10)) as conn:
        found = conn.execute(f"SELECT key, payload FROM {TABLE}").fetchall()
    return {key: json.loads(payload) for key, payload in found}


def wait_until(check: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.1)


def all_completed(server: Server, job_ids: list[str]) -> bool:
    return all(server.job(job_id)["status"] == "completed" for job_id in job_ids)


# the CLI ---------------------------------------------------------------------------------------

JOBSTORE_CLI = shutil.which("jobstore", path=str(Path(sys.executable).parent)) or shutil.which(
    "jobstore")


class Operator:
    """An operator at a shell: each step is a real ``jobstore`` process on the example's table,
    and each step it took is logged with how long it took."""

    def __init__(self, url: str) -> None:
        assert JOBSTORE_CLI is not None, "the jobstore command is not installed"
        self.url = url
        self.log: list[str] = []

    def __call__(self, *args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "JOBSTORE_URL": self.url, "JOBSTORE_TABLE": TABLE}
        env.pop("JOBSTORE_STAGE", None)
        started = time.monotonic()
        done = subprocess.run([str(JOBSTORE_CLI), *args], env=env, capture_output=True, text=True,
                              timeout=90, check=False)
        self.log.append(f"{time.strftime('%H:%M:%S', time.gmtime())} jobstore {' '.join(args)}"
                        f" -> {done.returncode} in {time.monotonic() - started:.1f} s")
        assert done.returncode == expect, (
            f"jobstore {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json").stdout)


# traffic ------------------------------------------------------------------------------------


class Traffic:
    """Clients that create jobs and poll them while the test changes things under them.

    A request fails when it raises or answers anything but 201 (create) or 200 (read a job
    that was created, list); every failure is kept with what was asked.
    """

    def __init__(self, bases: list[str], clients: int = 4, pause: float = 0.02) -> None:
        self.bases = bases
        self.pause = pause
        self.created: list[str] = []
        self.requests = 0
        self.failures: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, args=(n,), daemon=True)
                         for n in range(clients)]

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def runs_a_while(self, creates: int = 5, requests: int = 40) -> None:
        """Wait until the clients have made ``requests`` more requests, ``creates`` of them
        creating a job: traffic has met the stage now running, however loaded the machine."""
        with self._lock:
            created, asked = len(self.created) + creates, self.requests + requests
        wait_until(lambda: len(self.created) >= created and self.requests >= asked,
                   f"{requests} more requests were made, {creates} of them creating a job")

    def _client(self, n: int) -> None:
        """One client, always on the same server (in ``memory`` a server knows only its own
        jobs), polling the jobs it created."""
        rng = random.Random(n)
        mine: list[str] = []
        with httpx.Client(base_url=self.bases[n % len(self.bases)], timeout=10.0) as client:
            while not self._stop.is_set():
                roll = rng.random()
                if roll < 0.25 or not mine:
                    body = {"title": f"deck {n}", "slides": rng.randint(2, 6)}
                    response = self._ask(client, "POST", "/presentations", 201, body)
                    if response is not None:
                        mine.append(response.json()["job_id"])
                elif roll < 0.3:
                    self._ask(client, "GET", "/presentations", 200)
                else:
                    self._ask(client, "GET", f"/presentations/{rng.choice(mine)}", 200)
                self._stop.wait(self.pause)

    def _ask(self, client: Any, method: str, path: str, expect: int,
             body: dict[str, Any] | None = None) -> Any:
        """The response when its status is the one expected, else None (and a failure kept)."""
        try:
            response = client.request(method, path, json=body)
            status, text = response.status_code, response.text
        except httpx.HTTPError as exc:
            status, text = -1, repr(exc)
        with self._lock:
            self.requests += 1
            if status != expect:
                self.failures.append(f"{method} {path}: {status} {text[:200]}")
                return None
            if method == "POST":
                self.created.append(response.json()["job_id"])
        return response


# the tests ------------------------------------------------------------------------------------


def test_jobs_survive_a_sigkill_of_the_server_and_finish_after_the_restart(
        servers: Callable[..., Server], db: tuple[str, Path]) -> None:
    """Jobs created before a SIGKILL are all served after a restart: the finished ones with
    their video_url intact, the interrupted ones resumed to completion."""
    url, path = db
    first = servers(url)
    finished = [first.create(f"short {n}", 1) for n in range(3)]
    wait_until(lambda: all_completed(first, finished), "the short jobs completed")
    before = {job_id: first.job(job_id) for job_id in finished}
    running = [first.create(f"long {n}", 12) for n in range(3)]
    wait_until(lambda: all(rows(path).get(j, {}).get("progress", 0) > 0 for j in running),
               "the long jobs' in-place progress reached the database")

    first.stop(signal.SIGKILL)
    assert first.process.returncode == -signal.SIGKILL

    second = servers(url)
    for job_id in finished:
        assert second.job(job_id) == before[job_id]
    for job_id in running:
        job = second.job(job_id)
        assert job["status"] in ("processing", "completed")
        assert job["progress"] > 0
    wait_until(lambda: all_completed(second, running), "the interrupted jobs completed")
    for job_id in running:
        assert second.job(job_id)["video_url"] == f"/download/{job_id}.mp4"
    wait_until(lambda: all(rows(path)[j]["status"] == "completed" for j in running),
               f"the completions were written back (within {SYNC_S} s)", timeout=5 * SYNC_S)


def test_two_servers_on_one_database_answer_every_job_created_on_either(
        servers: Callable[..., Server], db: tuple[str, Path]) -> None:
    """Two servers on one SQLite file, as behind a load balancer: every job created on one is
    found on the other at once (no 404), and both see it complete."""
    url, _path = db
    a, b = servers(url), servers(url)
    created: list[str] = []
    for n in range(20):
        maker, other = (a, b) if n % 2 == 0 else (b, a)
        job_id = maker.create(f"deck {n}", 2)
        created.append(job_id)
        assert other.job(job_id)["job_id"] == job_id
    for server in (a, b):
        listed = server.client.get("/presentations").json()
        assert {job["job_id"] for job in listed["jobs"]} == set(created)
    wait_until(lambda: all_completed(a, created) and all_completed(b, created),
               "both servers see every job completed")


def test_the_whole_stage_walk_under_traffic_fails_no_request_and_completes_every_job(
        servers: Callable[..., Server], db: tuple[str, Path]) -> None:
    """memory → dual_write → shadow → db_primary → cutover to db_only → rollback, each step a
    real ``jobstore`` command while clients create and poll jobs on two servers: no request
    fails, both servers run each stage when the command returns, and at the end every job is
    completed, on both servers and in the database, and verify finds no drift."""
    url, path = db
    operator = Operator(url)
    operator("init", "--stage", "memory")
    pair = [servers(url), servers(url)]
    assert [s.health()["stage"] for s in pair] == ["memory", "memory"]

    def everyone_runs(stage: str) -> None:
        assert [s.health()["stage"] for s in pair] == [stage, stage], operator.log

    with Traffic([s.base for s in pair]) as traffic:
        traffic.runs_a_while()
        for stage in ("dual_write", "shadow", "db_primary"):
            operator("stage", stage)
            everyone_runs(stage)
            traffic.runs_a_while()
        operator("cutover", "--yes", "--timeout", "20")
        everyone_runs("db_only")
        traffic.runs_a_while()
        operator("rollback", "--timeout", "20")
        everyone_runs("db_primary")
        traffic.runs_a_while()

    assert traffic.failures == [], f"{len(traffic.failures)} of {traffic.requests} failed"
    created = traffic.created
    assert len(created) >= 20, f"too little traffic: {traffic.requests} requests"
    try:
        wait_until(lambda: all(all_completed(s, created) for s in pair), "every job completed")
    except AssertionError:
        raise AssertionError(unfinished_report(pair[0], path, created, operator.log)) from None
    report = operator.json("verify", "--timeout", "20")
    assert report["consistent"] is True, report
    stored = rows(path)
    assert [job_id for job_id in created if job_id not in stored] == []
    assert {j: stored[j]["status"] for j in created if stored[j]["status"] != "completed"} == {}
    assert all(stored[j]["video_url"] == f"/download/{j}.mp4" for j in created)
    status = operator.json("status")
    assert status["stage"] == "db_primary"
    assert all(s.health()["queued_writes"] == s.health()["failed_writes"] == 0 for s in pair)


def unfinished_report(server: Server, path: Path, created: list[str], log: list[str]) -> str:
    """What to look at when a job never completed: both views of it and its history."""
    stored = rows(path)
    late = {j: (server.job(j), stored.get(j)) for j in created
            if server.job(j)["status"] != "completed"}
    with contextlib.closing(sqlite3.connect(path)) as conn:
        events = [conn.execute(f"SELECT version, at, payload FROM {TABLE}_events WHERE key = ?"
                               " ORDER BY id", (j,)).fetchall() for j in late]
    return (f"{len(late)} jobs unfinished: {json.dumps(late)[:2500]}\n{events}\n{log}\n"
            f"{server.health()}\n{server.output()}")
