"""Throughput of several writer processes on one SQLite file.

Each process opens its own store (or raw connection), waits at a common start line, writes its
own keys, and says when it finished; throughput is every write over the time from the start to
the last finish. Afterwards the table must hold every row and the history every version.
"""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

from jobstore import JobStore, Stage

from .env import Env
from .model import BenchJob, encode, make_job
from .peers import sqlite_connect

PROCESSES = 4
START_TIMEOUT_S = 60.0


@dataclass
class WriterRun:
    impl: str
    processes: int
    writes: int
    seconds: float

    @property
    def per_s(self) -> float:
        return self.writes / self.seconds if self.seconds else 0.0


@dataclass
class Concurrency:
    runs: list[WriterRun] = field(default_factory=list)
    error: str | None = None


def _jobstore_writer(url: str, worker: int, count: int, ready: Any, go: Any, out: Any) -> None:
    store: JobStore[str, BenchJob] = JobStore(url, table="jobs", model=BenchJob,
                                         stage=Stage.DUAL_WRITE, sync_interval=30.0)
    with store:
        batch = [(f"w{worker}-{i:06d}", make_job(i)) for i in range(count)]
        ready.put(worker)
        go.wait(START_TIMEOUT_S)
        for key, job in batch:
            store[key] = job
        out.put((worker, time.monotonic()))


def _raw_writer(path: str, worker: int, count: int, ready: Any, go: Any, out: Any) -> None:
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    batch = [(f"w{worker}-{i:06d}", make_job(i)) for i in range(count)]
    upsert = ("INSERT INTO jobs (key, payload, status, version, created_at, updated_at) "
              "VALUES (?, ?, ?, 1, ?, ?) ON CONFLICT (key) DO UPDATE SET "
              "payload = excluded.payload, version = jobs.version + 1")
    ready.put(worker)
    go.wait(START_TIMEOUT_S)
    for key, job in batch:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(upsert, (key, encode(job), job.status, "now", "now"))
        conn.execute("COMMIT")
    out.put((worker, time.monotonic()))
    conn.close()


def _race(target: Any, where: str, processes: int, count: int) -> float:
    ctx = mp.get_context("spawn")
    ready, out, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=target, args=(where, w, count, ready, go, out))
             for w in range(processes)]
    for p in procs:
        p.start()
    try:
        for _ in procs:
            ready.get(timeout=START_TIMEOUT_S)
        start = time.monotonic()
        go.set()
        finishes: list[float] = [out.get(timeout=START_TIMEOUT_S + 0.01 * count)[1] for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
                p.join(timeout=5)
    if any(p.exitcode != 0 for p in procs):
        raise RuntimeError(f"a writer exited with {[p.exitcode for p in procs]}")
    return max(finishes) - start


def run(env: Env, *, smoke: bool = False) -> Concurrency:
    count = 20 if smoke else 1500
    result = Concurrency()
    try:
        for processes in (1, PROCESSES):
            url = env.sqlite_url(f"writers{processes}")
            JobStore(url, table="jobs", model=BenchJob, stage=Stage.DUAL_WRITE).close()
            seconds = _race(_jobstore_writer, url, processes, count)
            _check_complete(url.removeprefix("sqlite:///"), processes * count)
            result.runs.append(WriterRun("JobStore dual_write", processes, processes * count,
                                         seconds))
        path = env.path("raw-writers") + ".db"
        sqlite_connect(path).close()
        seconds = _race(_raw_writer, path, PROCESSES, count)
        result.runs.append(WriterRun("raw sqlite3 (BEGIN IMMEDIATE)", PROCESSES,
                                     PROCESSES * count, seconds))
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    return result


def _check_complete(path: str, expected: int) -> None:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT count(*) FROM jobs").fetchone()[0]
        events = conn.execute("SELECT count(*) FROM jobs_events").fetchone()[0]
    finally:
        conn.close()
    if rows != expected or events != expected:
        raise RuntimeError(f"expected {expected} rows and events, found {rows} and {events}")
