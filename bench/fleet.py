"""``python -m bench.fleet``: a fleet of service processes through a cutover, on one PostgreSQL.

N processes, each one store in ``dual_write`` writing its own jobs continuously (one thread,
as a single-threaded service), on a private PostgreSQL server with ``max_connections = 100``
(or through a private PgBouncer in transaction mode in front of it, ``--pgbouncer``). Once
every process has written, ``jobstore cutover`` runs (the library's `admin.cutover`); the
processes go on writing through it and stop a moment after. Then every write a process had
acknowledged (``jobs[key] = value`` returned) is looked up in the database.

Reported: processes seen (live in ``status`` before the cutover), cutover time (the call),
slowest process to follow (from the call's start until the last process ran ``db_only``),
server connections held (the most ``pg_stat_activity`` showed while they wrote, from
``SETTLE_S`` after the last one started; and from the cutover's start until ``FOLLOW_S``
after it, the cutover's own included), writes
acknowledged and lost (acknowledged, then not in the database with that value; must be 0).

    python -m bench.fleet --processes 40
    python -m bench.fleet --processes 200 --pgbouncer

Not part of ``make bench-smoke``: starting 90 interpreters takes a minute on two cores.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import create_engine, text

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "tests"))
from jobstore import JobStore, Stage, admin
from workers.pg_cluster import PgCluster, client_connections
from workers.pgbouncer import PgBouncer

TABLE = "fleet_jobs"
SYNC_INTERVAL_S = 1.0
FOLLOW_S = 10.0
"""Seconds the fleet goes on writing after the cutover returned, for the processes it did not
wait for (not live at its start) to follow too."""
SETTLE_S = 4.0
"""Seconds the fleet writes before its connections are counted: a process that opened while
the machine was busy may hold a second connection for the pool's linger (2 s) after it."""
WRITE_PAUSE_S = 0.2
"""Seconds between one process's writes: 5 a second each, so 200 fit on two cores."""


@dataclass
class FleetRun:
    processes: int
    through: str
    max_overflow: str
    seen: int
    cutover_outcome: str
    cutover_reasons: list[str]
    """Why a cutover that did not end "done" stopped, as the command prints it."""
    cutover_s: float
    slowest_follow_s: float
    connections_writing: int
    connections_cutover: int
    acknowledged: int
    lost: int
    write_errors: int


def worker(url: str, table: str) -> None:
    """One service process: write until told to stop on stdin, then report as one JSON line."""
    jobs: JobStore[Any] = JobStore(url, table=table, sync_interval=SYNC_INTERVAL_S)
    stop = threading.Event()
    acked: dict[str, int] = {}
    errors: list[str] = []
    seen_db_only: list[float] = []

    def write() -> None:
        n = 0
        prefix = f"{os.getpid()}"
        while not stop.is_set():
            key = f"{prefix}-{n}"
            try:
                jobs[key] = {"status": "queued", "n": n}
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}"[:200])
            else:
                acked[key] = n
                if n == 0:
                    print(json.dumps({"ready": jobs.instance_id}), flush=True)
            if not seen_db_only and jobs.stage is Stage.DB_ONLY:
                seen_db_only.append(time.time())
            n += 1
            stop.wait(WRITE_PAUSE_S)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    sys.stdin.readline()
    stop.set()
    thread.join(60)
    jobs.close()
    print(json.dumps({"acked": acked, "errors": errors[:5], "error_count": len(errors),
                      "db_only_at": seen_db_only[0] if seen_db_only else None}), flush=True)


def sample(server_url: str, seconds: float,
           until: threading.Event | None = None) -> list[int]:
    """Client connections every quarter second, for ``seconds`` or until ``until`` is set."""
    counts = []
    deadline = time.monotonic() + seconds
    while (until is not None and not until.is_set()) or time.monotonic() < deadline:
        counts.append(client_connections(server_url))
        time.sleep(0.25)
    return counts


def run(processes: int, through_pgbouncer: bool, max_overflow: int | None = None) -> FleetRun:
    cluster = PgCluster()
    bouncer: PgBouncer | None = None
    procs: list[subprocess.Popen[str]] = []
    try:
        cluster.init(max_connections=100)
        cluster.start()
        if through_pgbouncer:
            bouncer = PgBouncer(cluster, pool_size=20)
        url = bouncer.url if bouncer else cluster.url
        admin.init(url, table=TABLE, stage=Stage.DUAL_WRITE)
        env = dict(os.environ)
        if max_overflow is not None:
            env["JOBSTORE_POOL_MAX_OVERFLOW"] = str(max_overflow)
        errors = os.path.join(cluster.root, "workers.err")
        with open(errors, "a") as err:
            for _ in range(processes):
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "bench.fleet", "--worker", url], text=True,
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, env=env))
        for proc in procs:
            assert proc.stdout is not None
            if not proc.stdout.readline():
                with open(errors) as err:
                    raise RuntimeError("a service process exited before its first write: "
                                       + err.read()[-1500:])
        time.sleep(SETTLE_S)
        writing = max(sample(cluster.url, 3.0))
        seen = sum(1 for i in admin.status(url, table=TABLE).instances if i.live)
        during: list[int] = []
        sampler = threading.Thread(target=lambda: during.extend(sample(cluster.url, 0, done)))
        done = threading.Event()
        sampler.start()
        started = time.time()
        result = admin.cutover(url, table=TABLE, timeout=60)
        cutover_s = time.time() - started
        time.sleep(FOLLOW_S)
        done.set()
        sampler.join(30)
        reports = []
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("stop\n")
            proc.stdin.flush()
        for proc in procs:
            out, _ = proc.communicate(timeout=120)
            reports.append(json.loads(out.strip().splitlines()[-1]))
        follows = [r["db_only_at"] for r in reports if r["db_only_at"] is not None]
        slowest = (max(follows) - started if len(follows) == len(reports) else float("inf"))
        acked = {k: v for r in reports for k, v in r["acked"].items()}
        engine = create_engine(cluster.url)
        try:
            with engine.connect() as conn:
                stored = {key: json.loads(payload)["n"] for key, payload in conn.execute(
                    text(f"SELECT key, payload FROM {TABLE}"))}
        finally:
            engine.dispose()
        lost = sum(1 for k, n in acked.items() if stored.get(k) != n)
        return FleetRun(processes, "pgbouncer" if bouncer else "direct",
                        env.get("JOBSTORE_POOL_MAX_OVERFLOW", "default"), seen,
                        result.outcome.value, [r[:200] for r in result.reasons],
                        round(cutover_s, 2), round(slowest, 2), writing,
                        max(during, default=0),
                        len(acked), lost, sum(r["error_count"] for r in reports))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
        if bouncer is not None:
            bouncer.close()
        cluster.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet", description=__doc__)
    parser.add_argument("--processes", type=int, default=40)
    parser.add_argument("--pgbouncer", action="store_true",
                        help="through a private PgBouncer (transaction mode, pool of 20)")
    parser.add_argument("--max-overflow", type=int,
                        help="JOBSTORE_POOL_MAX_OVERFLOW for the service processes")
    parser.add_argument("--worker", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, TABLE)
        return 0
    outcome = run(args.processes, args.pgbouncer, args.max_overflow)
    print(json.dumps(asdict(outcome)))
    return 0 if outcome.lost == 0 and outcome.cutover_outcome == "done" else 1


if __name__ == "__main__":
    sys.exit(main())

