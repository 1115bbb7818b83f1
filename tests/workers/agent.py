"""A service process driven line by line: one JSON command on stdin, one JSON answer on stdout.

usage: agent.py URL TABLE STAGE SYNC_INTERVAL

Commands (plain JSON job values):
  {"op": "set", "key": K, "value": V}          jobs[K] = V        -> {"at": monotonic time after}
  {"op": "change", "key": K, "field": F, "value": X}
                                                jobs[K][F] = X, in place, never assigned back
  {"op": "get", "key": K}                       -> {"value": V} or {"error": "KeyError"}
  {"op": "keys"}                                -> {"keys": sorted(jobs)}
  {"op": "read", "keys": [K, ...]}              reads jobs[K] for each (every job listed when
                                                "keys" is left out) -> {"found": n, "missing": m}
  {"op": "delete", "key": K}                    del jobs[K]
  {"op": "stats"}                               -> jobs.stats()
  {"op": "wait", "key": K, "field": F, "equals": X, "limit": S}
        reads jobs[K] every 2 ms until jobs[K][F] == X -> {"at": monotonic time seen, "reads": n}
        or, after S seconds, {"error": "timeout", "last": value}
  {"op": "fork"}                                forks a child that holds the store and serves
                                                nothing (it sleeps until killed) -> {"pid": child}
  {"op": "close"}                               closes the store and exits
Monotonic time is the system-wide CLOCK_MONOTONIC, comparable between processes.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from jobstore import JobStore


def answer(jobs: JobStore[Any], command: dict[str, Any]) -> dict[str, Any]:
    op, key = command["op"], command.get("key", "")
    if op == "set":
        jobs[key] = command["value"]
        return {"at": time.monotonic()}
    if op == "change":
        jobs[key][command["field"]] = command["value"]
        return {"at": time.monotonic()}
    if op == "get":
        try:
            return {"value": jobs[key]}
        except KeyError:
            return {"error": "KeyError"}
    if op == "keys":
        return {"keys": sorted(jobs)}
    if op == "read":
        wanted = command.get("keys")
        wanted = list(jobs) if wanted is None else wanted
        found = [k for k in wanted if jobs.get(k) is not None]
        return {"found": len(found), "missing": len(wanted) - len(found)}
    if op == "delete":
        del jobs[key]
        return {"at": time.monotonic()}
    if op == "stats":
        return dict(jobs.stats())
    if op == "wait":
        deadline = time.monotonic() + command["limit"]
        reads = 0
        value = None
        while time.monotonic() < deadline:
            value = jobs.get(key)
            reads += 1
            if value is not None and value.get(command["field"]) == command["equals"]:
                return {"at": time.monotonic(), "reads": reads}
            time.sleep(0.002)
        return {"error": "timeout", "last": value}
    if op == "fork":
        child = os.fork()
        if child == 0:  # pragma: no cover - the child only sleeps, and is SIGKILLed
            while True:
                time.sleep(3600)
        return {"pid": child}
    raise ValueError(f"unknown op {op!r}")


def main() -> None:
    url, table, stage, interval = sys.argv[1:5]
    jobs: JobStore[Any] = JobStore(url, table=table, stage=stage, sync_interval=float(interval))
    print(json.dumps({"ready": True, "instance_id": jobs.instance_id}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        if command["op"] == "close":
            break
        try:
            reply = answer(jobs, command)
        except Exception as exc:
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(reply), flush=True)
    jobs.close()
    print(json.dumps({"closed": True}), flush=True)


if __name__ == "__main__":
    main()
