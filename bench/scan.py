"""What a scan costs per job: ``values()`` handing out tracked objects, beside a plain dict.

    python -m bench.scan                   # 2,000 jobs, 5 repetitions
    python -m bench.scan --rows 500 --repeats 3

Every object ``values()`` hands out is tracked (an in-place change to it is written back), in
every stage that writes the database. This measures one full ``for job in jobs.values()`` over
N `BenchJob` records on SQLite, per job, in ``dual_write`` (the dict answers, the database is
scanned for the keys) and ``db_only`` (every row decoded), beside iterating a plain dict of the
same jobs, and an assignment of a job the process has seen (a compare-and-set write) beside
one it has not (the whole upsert).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.model import BenchJob, make_job
from jobstore import JobStore, Stage


def per_job_us(fn: Callable[[], object], count: int, repeats: int) -> float:
    """The median over ``repeats`` runs of ``fn``'s time, per job, in µs."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) / count * 1e6)
    return statistics.median(times)


def run(rows: int, repeats: int) -> dict[str, float]:
    figures: dict[str, float] = {}
    plain = {f"job-{i}": make_job(i) for i in range(rows)}
    figures["plain dict values()"] = per_job_us(lambda: list(plain.values()), rows, repeats)
    with tempfile.TemporaryDirectory() as folder:
        for stage in (Stage.DUAL_WRITE, Stage.DB_ONLY):
            path = Path(folder) / f"{stage.value}.db"
            store: JobStore[str, BenchJob] = JobStore(
                f"sqlite:///{path}", table="jobs", model=BenchJob, stage=stage,
                sync_interval=3600)
            try:
                store.update(plain)
                figures[f"JobStore {stage.value} values()"] = per_job_us(
                    functools.partial(list, store.values()), rows, repeats)
            finally:
                store.close()
        path = Path(folder) / "assign.db"
        store = JobStore(f"sqlite:///{path}", table="jobs", model=BenchJob,
                         stage=Stage.DUAL_WRITE, sync_interval=3600)
        try:
            keys = list(plain)

            def assign_seen() -> None:
                for key in keys:
                    store[key] = plain[key]

            figures["dual_write set, job unseen (upsert)"] = per_job_us(assign_seen, rows, 1)
            figures["dual_write set, job seen (compare-and-set)"] = per_job_us(
                assign_seen, rows, repeats)
        finally:
            store.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    figures = run(args.rows, args.repeats)
    width = max(map(len, figures))
    print(f"{'per job':<{width}}  µs")
    for name, value in figures.items():
        print(f"{name:<{width}}  {value:.2f}")


if __name__ == "__main__":
    main()
