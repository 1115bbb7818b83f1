"""A process that imports jobstore once and forks writers on demand, so a test can kill
twenty writers without paying twenty interpreter start-ups.

usage: writer_zygote.py URL TABLE

Commands on stdin, one per line; answers on stdout:
  ``spawn STAGE PREFIX LOG``  fork a writer whose stdout is the file LOG -> ``pid PID``
  ``reap PID``                wait for that writer to end -> ``reaped PID SIGNAL`` (0: exited)
A writer opens its own `JobStore` (none is open in this process when it forks), prints ``ready``,
then writes ``sample_job(PREFIX-N, N)`` for N = 0, 1, ... and prints ``ack PREFIX-N N`` after each
``jobs[key] = job`` has returned, until it is killed.
"""

from __future__ import annotations

import os
import sys
import traceback

import _path  # noqa: F401 - puts tests/ on sys.path

from jobstore import JobStore
from workers.models import PresentationJob, sample_job


def write_until_killed(url: str, table: str, stage: str, prefix: str, log: str) -> None:
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    out = os.fdopen(1, "w", buffering=1, closefd=False)
    try:
        jobs: JobStore[str, PresentationJob] = JobStore(url, table=table, stage=stage,
                                                   model=PresentationJob)
        out.write("ready\n")
        n = 0
        while True:
            key = f"{prefix}-{n}"
            jobs[key] = sample_job(key, n)
            out.write(f"ack {key} {n}\n")
            n += 1
    except BaseException:
        out.write(traceback.format_exc())
    finally:
        out.flush()
        os._exit(1)


def main() -> None:
    url, table = sys.argv[1:3]
    print("ready", flush=True)
    for line in sys.stdin:
        command, *args = line.split()
        if command == "spawn":
            stage, prefix, log = args
            pid = os.fork()
            if pid == 0:
                write_until_killed(url, table, stage, prefix, log)
            print(f"pid {pid}", flush=True)
        elif command == "reap":
            pid, status = os.waitpid(int(args[0]), 0)
            signal_number = os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0
            print(f"reaped {pid} {signal_number}", flush=True)


if __name__ == "__main__":
    main()
