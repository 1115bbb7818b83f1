"""One of several processes incrementing one job's counter at once.

usage: counter.py URL TABLE KEY N GO_FILE MODE   (MODE: modify | create | assign)

Prints ``ready``, waits until GO_FILE exists (so every process starts together), then does N
increments of ``n`` in the job under KEY: ``modify`` through ``jobs.modify``, ``create`` the
same with ``default={"n": 0}`` (the job need not exist yet), ``assign`` as
legacy code does (``job = jobs[key]; job["n"] += 1; jobs[key] = job``). Prints one JSON line:
the stage it ran and the errors raised (by message). The stage is pinned by the caller.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from typing import Any

from jobstore import JobStore


def increment(job: dict[str, Any]) -> dict[str, Any]:
    job["n"] += 1
    return job


def main() -> None:
    url, table, key, n, go, mode = sys.argv[1:7]
    jobs: JobStore[Any] = JobStore(url, table=table, sync_interval=0.1)
    errors: Counter[str] = Counter()
    print("ready", flush=True)
    deadline = time.monotonic() + 60
    while not os.path.exists(go):
        if time.monotonic() > deadline:
            sys.exit("no go signal")
        time.sleep(0.005)
    for _ in range(int(n)):
        try:
            if mode == "modify":
                jobs.modify(key, increment)
            elif mode == "create":
                jobs.modify(key, increment, default={"n": 0})
            else:
                jobs[key] = increment(jobs[key])
        except Exception as exc:
            errors[f"{type(exc).__name__}: {exc}"] += 1
    summary = {"stage": str(jobs.stage), "errors": dict(errors)}
    jobs.close()
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
