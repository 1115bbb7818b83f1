"""Write jobs and acknowledge each one on stdout once ``jobs[key] = job`` has returned.

usage: write_jobs.py URL TABLE STAGE PREFIX COUNT   (COUNT < 0: write until killed)

Prints ``ready`` once the store is open, then ``ack KEY N`` per write, flushed line by line;
the job written under KEY is ``sample_job(KEY, N)``.
"""

from __future__ import annotations

import sys

import _path  # noqa: F401 - puts tests/ on sys.path

from jobstore import JobStore
from workers.models import PresentationJob, sample_job


def main() -> None:
    url, table, stage, prefix, count = sys.argv[1:6]
    limit = int(count)
    jobs: JobStore[str, PresentationJob] = JobStore(url, table=table, stage=stage,
                                               model=PresentationJob)
    print("ready", flush=True)
    n = 0
    while limit < 0 or n < limit:
        key = f"{prefix}-{n}"
        jobs[key] = sample_job(key, n)
        print(f"ack {key} {n}", flush=True)
        n += 1
    jobs.close()
    print("closed", flush=True)


if __name__ == "__main__":
    main()
