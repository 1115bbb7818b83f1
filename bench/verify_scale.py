"""Verify at scale: `JobStore.verify()` over a dict of N jobs, against a raw scan doing the same.

    python -m bench.verify_scale --rows 1000000            # SQLite 1,000,000, PostgreSQL 200,000
    python -m bench.verify_scale --rows 20000 --pg-rows 0  # SQLite only

For each backend a `JobStore` in ``dual_write`` is filled with N `BenchJob` records (~520 bytes
of JSON each) through ``update()`` in chunks, so its dict and its table hold the same N jobs.
Then, timed:

- ``jobstore verify``: ``store.verify()``, the dict checked against the table in batches;
- ``raw``: first the dict of the in-memory jobs' BLAKE2b hashes is built (each job encoded
  as verify must, since a job may have changed in place; timed and measured on its own), then
  the raw driver scans the whole table in key order and compares each row's hash with it.
  ``verify_vs_raw_total`` compares verify with both steps, ``verify_vs_raw_scan_only`` with
  the scan alone.

Memory is measured twice, on a second run each: the peak of Python allocations made during the
call (``tracemalloc`` started just before it, so only what the call itself allocates counts),
and the peak resident set size above the one before the call (sampled every 5 ms). Neither may
grow with the table beyond the dict itself: verify keeps the dict's key list (8 bytes a key)
and one batch of rows.

`run` is what ``python -m bench`` calls; it returns a flat dict of figures.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from jobstore import JobStore, Stage

from .model import BenchJob, encode, key_of, make_job

PG_URL = os.environ.get("JOBSTORE_BENCH_POSTGRESQL",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/test")
FILL_CHUNK = 10_000
MB = 1024 * 1024


# measuring ---------------------------------------------------------------------------------

def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@contextmanager
def rss_peak() -> Iterator[dict[str, int]]:
    """The peak resident set size above the one at entry, sampled every 5 ms."""
    found = {"extra": 0}
    start = _rss()
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.005):
            found["extra"] = max(found["extra"], _rss() - start)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        stop.set()
        thread.join()
        found["extra"] = max(found["extra"], _rss() - start)


def traced_peak(fn: Callable[[], Any]) -> tuple[Any, int]:
    """``fn()`` and the peak bytes of Python allocations it made (tracemalloc)."""
    gc.collect()
    tracemalloc.start()
    try:
        result = fn()
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


def measure(fn: Callable[[], Any]) -> dict[str, Any]:
    """Time ``fn`` (untraced), then run it again for its memory figures."""
    gc.collect()
    started = time.perf_counter()
    with rss_peak() as rss:
        result = fn()
    seconds = time.perf_counter() - started
    _again, traced = traced_peak(fn)
    return {"result": result, "seconds": seconds, "traced_peak_mb": traced / MB,
            "rss_extra_mb": rss["extra"] / MB}


# the two sides -----------------------------------------------------------------------------

def fill(store: JobStore[str, BenchJob], rows: int) -> float:
    """Put ``rows`` jobs into the store's dict and table; seconds it took."""
    started = time.perf_counter()
    for start in range(0, rows, FILL_CHUNK):
        store.update({key_of(i): make_job(i) for i in range(start, min(rows, start + FILL_CHUNK))})
    return time.perf_counter() - started


def digest(payload: str) -> bytes:
    return hashlib.blake2b(payload.encode(), digest_size=16).digest()


def memory_hashes(store: JobStore[str, BenchJob]) -> dict[str, bytes]:
    """What a raw tool would hold: each in-memory job's key and the hash of its JSON."""
    memory = store._parts.tier.memory  # the dict tier itself, read as a raw tool would read it
    return {key: digest(encode(value)) for key, value in list(memory.items())}


def raw_scan_sqlite(path: str, table: str, hashes: dict[str, bytes]) -> dict[str, int]:
    """Scan the table in key order with sqlite3, comparing hashes; counts."""
    conn = sqlite3.connect(path)
    try:
        return _compare(conn.execute(f"SELECT key, payload FROM {table} ORDER BY key"), hashes)
    finally:
        conn.close()


def raw_scan_pg(dsn: str, table: str, hashes: dict[str, bytes]) -> dict[str, int]:
    """Scan the table in key order through a psycopg server-side cursor, comparing hashes."""
    import psycopg

    with psycopg.connect(dsn) as conn, conn.transaction(), \
            conn.cursor(name="verify_scan") as cursor:
        cursor.itersize = 2000
        cursor.execute(f"SELECT key, payload FROM {table} ORDER BY key")
        return _compare(cursor, hashes)


def _compare(rows: Any, hashes: dict[str, bytes]) -> dict[str, int]:
    checked = differ = extra = 0
    for key, payload in rows:
        expected = hashes.get(key)
        if expected is None:
            extra += 1
            continue
        checked += 1
        if expected != digest(payload):
            differ += 1
    return {"checked": checked, "differ": differ, "only_in_db": extra,
            "only_in_memory": len(hashes) - checked}


# one backend -------------------------------------------------------------------------------

def run_backend(url: str, rows: int, raw_scan: Callable[[dict[str, bytes]], dict[str, int]],
                table: str) -> dict[str, Any]:
    store: JobStore[str, BenchJob] = JobStore(url, table=table, model=BenchJob,
                                         stage=Stage.DUAL_WRITE, sync_interval=3600)
    try:
        fill_s = fill(store, rows)
        gc.collect()
        dict_rss_mb = _rss() / MB
        ours = measure(store.verify)
        report = ours.pop("result")
        hashing = measure(lambda: memory_hashes(store))
        hashes = hashing.pop("result")
        raw = measure(lambda: raw_scan(hashes))
        counts = raw.pop("result")
    finally:
        store.close()
    if report.drifts or counts["differ"] or counts["checked"] != rows:
        raise AssertionError(f"not clean: {len(report.drifts)} drift(s), raw {counts}")
    return {
        "rows": rows, "fill_s": round(fill_s, 1), "process_rss_mb": round(dict_rss_mb),
        "verify_s": round(ours["seconds"], 2),
        "verify_traced_peak_mb": round(ours["traced_peak_mb"], 1),
        "verify_rss_extra_mb": round(ours["rss_extra_mb"], 1),
        "raw_hash_dict_s": round(hashing["seconds"], 2),
        "raw_hash_dict_traced_mb": round(hashing["traced_peak_mb"], 1),
        "raw_scan_s": round(raw["seconds"], 2),
        "raw_scan_traced_peak_mb": round(raw["traced_peak_mb"], 1),
        "raw_scan_rss_extra_mb": round(raw["rss_extra_mb"], 1),
        "verify_vs_raw_total": round(ours["seconds"] / (hashing["seconds"] + raw["seconds"]), 2),
        "verify_vs_raw_scan_only": round(ours["seconds"] / raw["seconds"], 2),
    }


def run_sqlite(rows: int) -> dict[str, Any]:
    folder = tempfile.mkdtemp(prefix="jobstore-verify-scale-")
    try:
        path = os.path.join(folder, "jobs.db")
        return run_backend(f"sqlite:///{path}", rows,
                           lambda hashes: raw_scan_sqlite(path, "jobs", hashes), "jobs")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run_pg(rows: int, url: str = PG_URL) -> dict[str, Any]:
    from sqlalchemy import create_engine, text

    table = f"bench_verify_{uuid.uuid4().hex[:10]}"
    dsn = url.replace("postgresql+psycopg://", "postgresql://", 1)
    try:
        return run_backend(url, rows, lambda hashes: raw_scan_pg(dsn, table, hashes), table)
    finally:
        engine = create_engine(url)
        try:
            with engine.begin() as conn:
                conn.execute(text(f"DROP TABLE IF EXISTS {table}_events"))
                conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
                for control in ("jobstore_control", "jobstore_instances",
                                "jobstore_verify_requests"):
                    conn.execute(text(f"DELETE FROM {control} WHERE job_table = :t"),
                                 {"t": table})
        finally:
            engine.dispose()


def pg_unreachable(url: str = PG_URL) -> str | None:
    try:
        import psycopg
    except ImportError as exc:
        return f"psycopg is not installed: {exc}"
    try:
        psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1),
                        connect_timeout=3).close()
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return None


def run(rows: int = 1_000_000, pg_rows: int | None = None) -> dict[str, Any]:
    """The benchmark: SQLite with ``rows`` jobs, PostgreSQL with ``pg_rows`` (default a fifth
    of ``rows``; 0 leaves it out). A flat dict of figures, ``<backend>_<figure>``."""
    figures: dict[str, Any] = {}
    for name, value in run_sqlite(rows).items():
        figures[f"sqlite_{name}"] = value
    pg_rows = rows // 5 if pg_rows is None else pg_rows
    if pg_rows:
        reason = pg_unreachable()
        if reason:
            figures["postgresql"] = f"left out: {reason}"
        else:
            for name, value in run_pg(pg_rows).items():
                figures[f"postgresql_{name}"] = value
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.verify_scale",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="SQLite rows")
    parser.add_argument("--pg-rows", type=int, default=None,
                        help="PostgreSQL rows (default rows/5; 0: leave PostgreSQL out)")
    args = parser.parse_args(argv)
    figures = run(args.rows, args.pg_rows)
    json.dump(figures, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
