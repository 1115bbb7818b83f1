"""Open in-memory stores in fresh processes and write, read and list at once, while each
store's loop runs its first rounds.

usage: memory_burst.py URL KEYS PROCESSES

Imports jobstore once, then forks PROCESSES children (no store is open when it forks), each
opening its own `JobStore` on URL with a 10 ms sync interval and running the burst over KEYS
keys. Each child prints one JSON line: the errors it met (raised, counted by the store, or
found by ``verify``) and the keys missing from a read or from ``list(s)`` just after their write.
"""

from __future__ import annotations

import json
import os
import sys
import traceback

from jobstore import JobStore


def burst(url: str, keys: int) -> dict[str, list[str]]:
    errors: list[str] = []
    missing: list[str] = []
    store: JobStore[str, dict[str, int]] = JobStore(url, stage="dual_write", sync_interval=0.01)
    try:
        for i in range(keys):
            key = f"k{i}"
            try:
                store[key] = {"n": i}
                if store.get(key) != {"n": i}:
                    missing.append(f"get {key}")
                if key not in list(store):
                    missing.append(f"list {key}")
                store[key] = {"n": i + 1}
            except Exception as exc:  # every failure is the finding, reported below
                errors.append(f"{type(exc).__name__}: {exc}")
        store.sync()
        if store.write_errors:
            errors.append(f"{store.write_errors} write error(s), last: {store.last_error}")
        report = store.verify()
        if not report.consistent:
            errors.append(f"verify: {len(report.drifts)} drift(s), first: {report.drifts[0]}")
    finally:
        store.close()
    return {"errors": errors, "missing": missing}


def main() -> None:
    url, keys, processes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    children = []
    for _ in range(processes):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                line = json.dumps(burst(url, keys))
            except BaseException:
                line = json.dumps({"errors": [traceback.format_exc()], "missing": []})
                code = 1
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
            os._exit(code)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)


if __name__ == "__main__":
    main()
