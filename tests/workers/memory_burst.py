"""Open an in-memory store and write, read and list at once, while its loop's first rounds run.

usage: memory_burst.py URL N

Prints one JSON line: the errors met (raised, counted by the store, or found by ``verify``) and
the keys missing from ``list(s)`` or from a read just after their write.
"""

from __future__ import annotations

import json
import sys

from jobstore import JobStore


def main() -> None:
    url, n = sys.argv[1], int(sys.argv[2])
    errors: list[str] = []
    missing: list[str] = []
    store: JobStore[dict[str, int]] = JobStore(url, stage="dual_write", sync_interval=0.01)
    try:
        for i in range(n):
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
    print(json.dumps({"errors": errors, "missing": missing}))


if __name__ == "__main__":
    main()
