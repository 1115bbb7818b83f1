"""What keeping a refused write on disk costs, beside the set the database takes at once.

    python -m bench.journal                # 1,000 writes, 3 repetitions
    python -m bench.journal --writes 300 --repeats 5

A ``dual_write`` set on SQLite, two ways: the database takes it (the normal path, which never
touches the journal: no file is even opened until a write is refused); the database refuses it
(another connection holds the write lock), so it is queued and appended, fsynced, to the queue
journal. Beside them, one journal record alone (`Journal.record`: an append and an fsync).
Medians per write, in µs, within this one run.
"""

from __future__ import annotations

import argparse
import contextlib
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench.model import BenchJob, make_job
from jobstore import JobStore, Stage
from jobstore.codec import Codec
from jobstore.shim.journal import Journal
from jobstore.shim.retry import QueuedWrite, Seen


@contextlib.contextmanager
def write_lock_held(path: Path) -> Iterator[None]:
    conn = sqlite3.connect(path, isolation_level=None, timeout=5)
    try:
        conn.execute("BEGIN IMMEDIATE")
        yield
        conn.execute("ROLLBACK")
    finally:
        conn.close()


def per_write_us(store: JobStore[str, BenchJob], prefix: str, writes: int) -> float:
    times = []
    for n in range(writes):
        job = make_job(n)
        started = time.perf_counter()
        store[f"{prefix}-{n}"] = job
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e6


def journal_record_us(folder: str, writes: int) -> float:
    """One `Journal.record` (an append and an fsync), alone."""
    journal = Journal(folder, "jobs", str, str)
    payload = Codec(BenchJob).encode(make_job(0))
    times = []
    try:
        for n in range(writes):
            write = QueuedWrite(payload, "queued", Seen(payload, 1))
            started = time.perf_counter()
            journal.record(f"queued-{n}", write)
            times.append(time.perf_counter() - started)
    finally:
        journal.close(keep=False)
    return statistics.median(times) * 1e6


def run(writes: int, repeats: int) -> dict[str, float]:
    taken, queued, records = [], [], []
    with tempfile.TemporaryDirectory() as folder:
        for repeat in range(repeats):
            path = Path(folder) / f"r{repeat}.db"
            store: JobStore[str, BenchJob] = JobStore(
                f"sqlite:///{path}?timeout=0.05", table="jobs", model=BenchJob,
                stage=Stage.DUAL_WRITE, sync_interval=3600)
            try:
                taken.append(per_write_us(store, "taken", writes))
                with write_lock_held(path):
                    store["first"] = make_job(0)  # waits the busy timeout once, then queues
                    queued.append(per_write_us(store, "queued", writes))
                store.sync()
            finally:
                store.close()
            records.append(journal_record_us(str(Path(folder) / f"j{repeat}"), writes))
    set_us, queued_us = statistics.median(taken), statistics.median(queued)
    return {
        "set, taken by the database": set_us,
        "set, refused: queued and journaled": queued_us,
        "of which the journal record (append + fsync)": statistics.median(records),
        "queued set / taken set": queued_us / set_us,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    figures = run(args.writes, args.repeats)
    width = max(map(len, figures))
    print(f"{'per write (median)':<{width}}  µs")
    for name, value in figures.items():
        print(f"{name:<{width}}  {value:.1f}")


if __name__ == "__main__":
    main()
