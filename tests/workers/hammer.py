"""One of several processes writing one database at once, from several threads.

usage: hammer.py URL TABLE PROC THREADS N GO_FILE

Prints ``ready``, waits until GO_FILE exists (so every process starts together), then each thread
T does N rounds of: a read-then-write increment of its own counter ``count-PROC-T``; a new job
``job-PROC-T-I``; a write of the shared key ``hot``. Prints one JSON summary line: the errors
raised (by message), and the store's write errors and queued writes.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections import Counter
from typing import Any

from jobstore import JobStore


def main() -> None:
    url, table, proc, threads, n, go = sys.argv[1:7]
    jobs: JobStore[Any] = JobStore(url, table=table, sync_interval=0.1)
    errors: Counter[str] = Counter()
    print("ready", flush=True)
    deadline = time.monotonic() + 60
    while not os.path.exists(go):
        if time.monotonic() > deadline:
            sys.exit("no go signal")
        time.sleep(0.005)

    def work(t: int) -> None:
        counter = f"count-{proc}-{t}"
        for i in range(int(n)):
            try:
                current = jobs.get(counter, {"n": 0})["n"]
                jobs[counter] = {"n": current + 1, "status": "counting"}
                jobs[f"job-{proc}-{t}-{i}"] = {"proc": int(proc), "thread": t, "i": i,
                                               "status": "queued"}
                jobs["hot"] = {"proc": int(proc), "thread": t, "i": i}
            except Exception as exc:
                errors[f"{type(exc).__name__}: {exc}"] += 1

    workers = [threading.Thread(target=work, args=(t,)) for t in range(int(threads))]
    started = time.monotonic()
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    elapsed = time.monotonic() - started
    summary = {"stage": str(jobs.stage), "errors": dict(errors), "write_errors": jobs.write_errors,
               "queued_writes": jobs.queued_writes, "last_error": jobs.last_error,
               "seconds": round(elapsed, 3)}
    jobs.close()
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
