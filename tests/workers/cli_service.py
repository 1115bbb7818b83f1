"""A service process for tests/test_cli_live.py: a JobStore in dual_write, driven by stdin.

Usage: cli_service.py URL TABLE NAME. It writes the job ``NAME-1``, prints ``ready``, then
answers one line per command: ``put KEY JSON`` (prints ``ok``), ``stage`` (prints the stage
this process runs), ``quit``.
"""

from __future__ import annotations

import json
import sys

from jobstore import JobStore


def main() -> None:
    url, table, name = sys.argv[1:4]
    jobs: JobStore[str, object] = JobStore(url, table=table, stage="dual_write", sync_interval=0.2)
    jobs[f"{name}-1"] = {"status": "queued", "owner": name, "slides": 3}
    print("ready", flush=True)
    for line in sys.stdin:
        command, _, rest = line.strip().partition(" ")
        if command == "put":
            key, _, document = rest.partition(" ")
            jobs[key] = json.loads(document)
            print("ok", flush=True)
        elif command == "stage":
            print(jobs.stage.value, flush=True)
        elif command == "quit":
            break
    jobs.close()


if __name__ == "__main__":
    main()
