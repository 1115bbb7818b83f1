"""Read jobs in a fresh process and say, per job, whether it is the value and type written.

usage: read_jobs.py URL TABLE KEY:N...

Prints one JSON line per key: its type's module and name, whether it is a ``PresentationJob``
equal to ``sample_job(KEY, N)``, and its status.
"""

from __future__ import annotations

import json
import sys

import _path  # noqa: F401 - puts tests/ on sys.path

from jobstore import JobStore
from workers.models import PresentationJob, sample_job


def main() -> None:
    url, table, *pairs = sys.argv[1:]
    jobs: JobStore[str, PresentationJob] = JobStore(url, table=table, model=PresentationJob)
    with jobs:
        for pair in pairs:
            key, n = pair.rsplit(":", 1)
            job = jobs[key]
            print(json.dumps({
                "key": key,
                "type": f"{type(job).__module__}.{type(job).__qualname__}",
                "is_model": type(job) is PresentationJob,
                "equal": job == sample_job(key, int(n)),
                "status": job.status,
            }), flush=True)


if __name__ == "__main__":
    main()
