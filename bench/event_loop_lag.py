"""Event-loop lag: synchronous `JobStore` calls inside ``async def`` handlers, against the same
calls sent to a thread pool.

    python -m bench.event_loop_lag                 # the full run (about 1.5 minutes)
    python -m bench.event_loop_lag --smoke         # each scenario briefly, to show it works
    python -m bench.event_loop_lag --markdown      # also print the table as Markdown

Requests arrive at ``--rate`` a second (Poisson arrivals, as a server sees them), each a task
that makes one store call: 25 % ``jobs[key] = job``, 75 % ``jobs[key]`` of an existing job. A
request's latency counts from when it was due, so a request that waited for a blocked loop
counts its wait. Beside them a monitor task asks to sleep 2 ms, again and again; how much later
than asked it wakes up is the loop's lag: the delay every other request on that loop (a health
check, a cheap GET, a websocket ping) suffers at that moment. Each scenario runs three ways:

- ``inline``: the handler calls the store directly (``async def`` with a blocking call in it);
- ``to_thread``: ``await asyncio.to_thread(...)`` (the loop's default executor);
- ``threadpool``: ``await starlette.concurrency.run_in_threadpool(...)`` (FastAPI's pool, the
  same one plain ``def`` endpoints run in).

Scenarios: SQLite in ``dual_write`` (reads are dict hits, writes go to the file) and in
``db_only`` (every call a database statement); PostgreSQL in ``db_only`` when reachable; and
SQLite while another process holds the write lock for 200 ms of every second (a migration
script, a backup, a long transaction), which is where a blocking call hurts most.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import sqlite3
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

if not __package__:  # run as a file: make `bench` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.env import PG_URL, Env
from jobstore import JobStore, Stage

MONITOR_SLEEP_S = 0.002
LOCK_HOLD_S = 0.2
LOCK_EVERY_S = 1.0
MODES = ("inline", "to_thread", "threadpool")
PRELOAD = 500
WRITE_SHARE = 0.25


@dataclass
class Result:
    scenario: str
    mode: str
    ops: int = 0
    seconds: float = 0.0
    lags: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    error: str | None = None

    @property
    def ops_per_s(self) -> float:
        return self.ops / self.seconds if self.seconds else 0.0

    def lag_ms(self, q: float) -> float:
        return _quantile(self.lags, q) * 1000

    def latency_ms(self, q: float) -> float:
        return _quantile(self.latencies, q) * 1000


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if q >= 1.0:
        return max(values)
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _job(n: int) -> dict[str, Any]:
    return {"job_id": f"job{n}", "title": f"deck {n}", "slides": 15, "status": "queued",
            "progress": 0.0, "video_url": None}


def _caller(mode: str) -> Callable[..., Awaitable[Any]]:
    if mode == "inline":
        async def inline(fn: Callable[..., Any], *args: Any) -> Any:
            return fn(*args)
        return inline
    if mode == "to_thread":
        return asyncio.to_thread
    from starlette.concurrency import run_in_threadpool
    return run_in_threadpool


async def _run(jobs: JobStore[Any], mode: str, rate: float, seconds: float,
               result: Result) -> None:
    """Requests arrive at ``rate`` a second (Poisson), each one task; latency is counted from
    when a request was due, so requests delayed by a blocked loop count their wait too."""
    call = _caller(mode)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    rng = random.Random(1)
    known = [f"job{n}" for n in range(PRELOAD)]
    counter = iter(range(PRELOAD, 10**9))
    running: set[asyncio.Task[None]] = set()

    async def monitor() -> None:
        while not stop.is_set():
            asked = loop.time()
            await asyncio.sleep(MONITOR_SLEEP_S)
            result.lags.append(max(0.0, loop.time() - asked - MONITOR_SLEEP_S))

    async def request(due: float, write: bool, key: str) -> None:
        if write:
            await call(jobs.__setitem__, key, _job(int(key[3:])))
            known.append(key)
        else:
            await call(jobs.__getitem__, key)
        result.latencies.append(loop.time() - due)
        result.ops += 1

    async def arrivals() -> None:
        due = loop.time()
        while not stop.is_set():
            due += rng.expovariate(rate)
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            write = rng.random() < WRITE_SHARE
            key = f"job{next(counter)}" if write else rng.choice(known)
            task = loop.create_task(request(due, write, key))
            running.add(task)
            task.add_done_callback(running.discard)

    tasks = [loop.create_task(monitor()), loop.create_task(arrivals())]
    started = time.perf_counter()
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*tasks)
    if running:  # a backlog counts: done/s is what the loop got through, start to finish
        await asyncio.wait(running, timeout=60)
    result.seconds = time.perf_counter() - started


@contextlib.contextmanager
def _lock_holder(path: str) -> Iterator[None]:
    """Another process's connection that holds the SQLite write lock 200 ms of every second.

    A thread with its own connection stands in for the process: SQLite locks the file, not the
    connection's process, and the lock is taken and released in C with the GIL released.
    """
    stop = threading.Event()

    def hold() -> None:
        conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        try:
            pause = 0.05
            while not stop.wait(pause):
                conn.execute("BEGIN IMMEDIATE")
                time.sleep(LOCK_HOLD_S)
                conn.execute("COMMIT")
                pause = LOCK_EVERY_S - LOCK_HOLD_S
        finally:
            conn.close()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)


@dataclass(frozen=True)
class Scenario:
    name: str
    backend: str
    stage: Stage
    contended: bool = False


SCENARIOS = [
    Scenario("SQLite dual_write", "sqlite", Stage.DUAL_WRITE),
    Scenario("SQLite db_only", "sqlite", Stage.DB_ONLY),
    Scenario("SQLite db_only, write lock held 20 %", "sqlite", Stage.DB_ONLY, contended=True),
    Scenario("PostgreSQL db_only", "postgresql", Stage.DB_ONLY),
]


def run_scenario(env: Env, scenario: Scenario, mode: str, rate: float,
                 seconds: float) -> Result:
    result = Result(scenario.name, mode)
    path: str | None = None
    if scenario.backend == "sqlite":
        url, table = env.sqlite_url("lag"), "jobs"
        path = url.removeprefix("sqlite:///")
    else:
        url, table = PG_URL, env.pg_table("lag")
    jobs: JobStore[Any] = JobStore(url, table=table, stage=scenario.stage, sync_interval=1.0)
    try:
        holder = _lock_holder(path) if scenario.contended and path else contextlib.nullcontext()
        with holder:
            jobs.update({f"job{n}": _job(n) for n in range(PRELOAD)})
            asyncio.run(_run(jobs, mode, rate, seconds, result))
    except Exception as exc:  # a scenario that fails is reported, not fatal to the others
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        jobs.close()
    return result


def table(results: list[Result], markdown: bool) -> str:
    header = ["scenario", "handlers call the store", "done/s", "request p50 ms", "p99 ms",
              "loop lag p50 ms", "lag p99 ms", "lag max ms"]
    rows = []
    for r in results:
        if r.error:
            rows.append([r.scenario, r.mode, "error", r.error, "", "", "", ""])
            continue
        rows.append([r.scenario, r.mode, f"{r.ops_per_s:,.0f}", f"{r.latency_ms(0.5):.2f}",
                     f"{r.latency_ms(0.99):.1f}", f"{r.lag_ms(0.5):.2f}",
                     f"{r.lag_ms(0.99):.1f}", f"{r.lag_ms(1.0):.0f}"])
    if markdown:
        lines = ["| " + " | ".join(header) + " |",
                 "|" + "|".join("---" if i < 2 else "---:" for i in range(len(header))) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    return "\n".join("  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True))
                     for row in [header, *rows])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.event_loop_lag", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="per run (default 5)")
    parser.add_argument("--rate", type=float, default=300.0,
                        help="requests a second (default 300)")
    parser.add_argument("--smoke", action="store_true", help="0.3 s per run")
    parser.add_argument("--no-pg", action="store_true", help="leave PostgreSQL out")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table too")
    args = parser.parse_args(argv)
    seconds, rate = (0.3, args.rate) if args.smoke else (args.seconds, args.rate)

    env = Env(use_pg=not args.no_pg)
    results: list[Result] = []
    try:
        for scenario in SCENARIOS:
            if scenario.backend == "postgresql" and not env.has_pg:
                print(f"{scenario.name} left out: {env.pg_reason}", file=sys.stderr)
                continue
            for mode in MODES:
                print(f"{scenario.name}: {mode}", file=sys.stderr)
                results.append(run_scenario(env, scenario, mode, rate, seconds))
    finally:
        env.close()
    print(f"{rate:g} requests/s offered, {seconds:g} s each; Python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
          f"lag = lateness of a {MONITOR_SLEEP_S * 1000:g} ms sleep")
    print(table(results, markdown=False))
    if args.markdown:
        print()
        print(table(results, markdown=True))
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
