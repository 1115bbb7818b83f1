"""``python -m bench.stage_follow``: how soon directly connected stores follow a stage change.

N service processes on one PostgreSQL, each a store whose rounds are 30 s apart (so only a
pushed change, `jobstore.db.stage_push`, can reach them sooner); the stage is changed back
and forth with no wait, and the time from each change until every heartbeat shows it is
reported. Not part of ``make bench``: it needs a PostgreSQL server (``--url``).

    python -m bench.stage_follow --url postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import uuid

from jobstore import Stage, admin

ROUNDS_APART_S = 30
CHANGES = 6
SERVICE = """\
import sys
from jobstore import JobStore
jobs = JobStore(sys.argv[1], table=sys.argv[2], sync_interval=float(sys.argv[3]))
jobs["job"] = {"status": "queued"}
print("ready", flush=True)
sys.stdin.read()
jobs.close()
"""


def follow_times(url: str, processes: int) -> list[float]:
    """Seconds from each stage change until every process's heartbeat shows it."""
    table = f"follow_{uuid.uuid4().hex[:8]}"
    admin.init(url, table=table)
    fleet = [subprocess.Popen([sys.executable, "-c", SERVICE, url, table, str(ROUNDS_APART_S)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for _ in range(processes)]
    try:
        for process in fleet:
            assert process.stdout is not None
            if process.stdout.readline() != "ready\n":
                raise RuntimeError(f"a service process did not start (exit {process.poll()})")
        times = []
        for i in range(CHANGES):
            stage = (Stage.SHADOW, Stage.DUAL_WRITE)[i % 2]
            started = time.monotonic()
            admin.set_stage(stage, url, table=table, wait=False)
            while True:
                seen = admin.status(url, table=table).instances
                if len(seen) == processes and all(s.stage == stage.value for s in seen):
                    break
                time.sleep(0.01)
            times.append(round(time.monotonic() - started, 3))
        return times
    finally:
        for process in fleet:
            if process.stdin is not None:
                process.stdin.close()
            process.wait(60)
            if process.stdout is not None:
                process.stdout.close()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stage_follow", description=__doc__)
    parser.add_argument("--url", required=True, help="a PostgreSQL URL, reached directly")
    parser.add_argument("--processes", type=int, default=5)
    args = parser.parse_args()
    times = follow_times(args.url, args.processes)
    print(json.dumps({"processes": args.processes, "rounds_apart_s": ROUNDS_APART_S,
                      "follow_s": times, "slowest_s": max(times)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
