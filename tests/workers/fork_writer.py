"""A process that opens a store, then forks children; parent and children all write after it.

usage: fork_writer.py URL TABLE FORKS N

The store is open and its background loop running (sync_interval 0.01 s) before each fork; every
other fork happens while another thread holds the store's inner locks, as the loop does for a
moment each round (a fork that catches it there must not leave the child waiting forever).
Each child writes N jobs, changes in place a job read before the fork, waits until its own
heartbeat row (its own pid) appears, closes the store and prints one JSON line. The parent
writes N jobs after each fork, waits for the child with a bounded wait, and prints one JSON line
per child and a last ``{"parent": ...}`` line.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from jobstore import JobStore, admin

CHILD_WAIT_S = 15.0


def child(jobs: JobStore[Any], url: str, table: str, k: int, n: int) -> None:
    try:
        started = time.monotonic()
        before = jobs[f"before-{k}"]
        for i in range(n):
            jobs[f"child-{k}-{i}"] = {"pid": os.getpid(), "i": i, "status": "queued"}
        before["status"] = "changed-in-child"
        jobs.sync()
        heartbeat_pids: list[int] = []
        deadline = time.monotonic() + 10
        while os.getpid() not in heartbeat_pids and time.monotonic() < deadline:
            heartbeat_pids = [i.pid for i in admin.status(url, table=table).instances]
            time.sleep(0.01)
        # internal: the child runs a background loop of its own, still alive after its rounds
        loop_alive = jobs._parts.loop is not None and jobs._parts.loop.running
        instance = jobs.instance_id
        jobs.close()
        print(json.dumps({"child": k, "pid": os.getpid(), "instance_id": instance,
                          "heartbeat": os.getpid() in heartbeat_pids, "loop_alive": loop_alive,
                          "seconds": round(time.monotonic() - started, 3)}), flush=True)
        os._exit(0)
    except BaseException:
        print(json.dumps({"child": k, "error": traceback.format_exc()}), flush=True)
        os._exit(1)


@contextmanager
def inner_locks_held_by_another_thread(jobs: JobStore[Any]) -> Iterator[None]:
    held, done = threading.Event(), threading.Event()

    def hold() -> None:
        # internal: the inner locks a loop round takes, held at the fork as a round may hold them
        with jobs._parts.tier.tracker._lock, jobs._parts.queue._lock:
            held.set()
            done.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    held.wait(10)
    try:
        yield
    finally:
        done.set()
        thread.join(10)


def main() -> None:
    url, table, forks, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    jobs: JobStore[Any] = JobStore(url, table=table, sync_interval=0.01)
    for k in range(forks):
        jobs[f"before-{k}"] = {"status": "queued", "k": k}
    held = [jobs[f"before-{k}"] for k in range(forks)]  # tracked, so the loop has work
    time.sleep(0.05)
    hung = 0
    exit_codes: list[int] = []
    for k in range(forks):
        if k % 2:
            with inner_locks_held_by_another_thread(jobs):
                pid = os.fork()
        else:
            pid = os.fork()
        if pid == 0:
            child(jobs, url, table, k, n)
        for i in range(n):
            jobs[f"parent-{k}-{i}"] = {"pid": os.getpid(), "i": i, "status": "queued"}
        deadline = time.monotonic() + CHILD_WAIT_S
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                exit_codes.append(os.waitstatus_to_exitcode(status))
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                hung += 1
                print(json.dumps({"child": k, "error": "hung"}), flush=True)
                break
            time.sleep(0.005)
    held[0]["status"] = "changed-in-parent"
    instance = jobs.instance_id
    jobs.close()
    print(json.dumps({"parent": os.getpid(), "instance_id": instance, "hung": hung,
                      "exit_codes": exit_codes}), flush=True)


if __name__ == "__main__":
    main()
