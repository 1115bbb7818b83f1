"""A writer whose files may not grow past a size limit (RLIMIT_FSIZE), as on a full disk.

usage: fill_disk.py URL LIMIT_BYTES JOBS

Writes JOBS jobs of about 1 KB in dual_write, then closes the store; prints one JSON line:
{"acked": n, "queued": q, "journaled": j, "close_s": seconds, "errors": [first few],
"failed": [every N whose write raised]}.
The database file stops growing at the limit and refuses writes ("database or disk is full"),
so later writes are queued; the journal is a file of its own, under the same limit.
"""

from __future__ import annotations

import json
import resource
import signal
import sys
import time

import _path  # noqa: F401 - puts tests/ on sys.path

from jobstore import JobStore


def main() -> None:
    url, limit, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    jobs: JobStore[str, dict[str, object]] = JobStore(url, table="jobs", sync_interval=600)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    acked, errors, failed = 0, [], []
    for n in range(count):
        try:
            jobs[f"job-{n}"] = {"n": n, "text": "x" * 1000}
            acked += 1
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            failed.append(n)
    stats = jobs.stats()
    started = time.monotonic()
    jobs.close()
    print(json.dumps({"acked": acked, "queued": stats["queued_writes"],
                      "journaled": stats["journaled_writes"],
                      "close_s": time.monotonic() - started, "errors": errors[:3],
                      "failed": failed}), flush=True)


if __name__ == "__main__":
    main()
