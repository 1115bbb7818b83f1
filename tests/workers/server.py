"""One server of a fleet behind a load balancer, driven one JSON command at a time.

usage: server.py [URL TABLE STAGE SYNC_INTERVAL]

Without arguments it holds no store until told to open one, so that one process can serve test
after test (each opening its store, and closing it before the next opens another). It keeps
named references to the objects the store hands out, as a render worker or an API handler
keeps the job it is working on. Commands (each answered with one JSON line):
  {"op": "set", "key": K, "value": V}                 jobs[K] = V
  {"op": "hold", "key": K, "name": N}                 held[N] = jobs[K]
  {"op": "change", "name": N, "path": [..], "value": X}  held[N][p1][p2]... = X, in place
  {"op": "assign", "name": N, "key": K}               jobs[K] = held[N]
  {"op": "read", "key": K, "name": N?}   -> {"value": jobs[K], "same": jobs[K] is held[N]}
  {"op": "held", "name": N}                           -> {"value": held[N]}
  {"op": "delete", "key": K}                          del jobs[K]
  {"op": "contains", "key": K}                        -> {"value": K in jobs}
  {"op": "sync"} / {"op": "stats"}                    jobs.sync() / -> jobs.stats()
  {"op": "open", "url": U, "table": T, "stage": S, "interval": I}  -> {"instance_id": ...}
                                                      closes the store it holds, opens this one
  {"op": "shut"}                                      closes the store, keeps serving
  {"op": "close"}                                     closes the store and exits
"""

from __future__ import annotations

import json
import sys
from typing import Any

from jobstore import JobStore


def answer(jobs: JobStore[Any], held: dict[str, Any], command: dict[str, Any]) -> Any:
    op = command["op"]
    if op == "set":
        jobs[command["key"]] = command["value"]
    elif op == "hold":
        held[command["name"]] = jobs[command["key"]]
    elif op == "change":
        target = held[command["name"]]
        *path, last = command["path"]
        for part in path:
            target = target[part]
        target[last] = command["value"]
    elif op == "assign":
        jobs[command["key"]] = held[command["name"]]
    elif op == "read":
        value = jobs[command["key"]]
        return {"value": value, "same": value is held.get(command.get("name", ""))}
    elif op == "held":
        return {"value": held[command["name"]]}
    elif op == "delete":
        del jobs[command["key"]]
    elif op == "contains":
        return {"value": command["key"] in jobs}
    elif op == "sync":
        jobs.sync()
    elif op == "stats":
        return {"value": jobs.stats()}
    else:
        raise ValueError(f"unknown op {op!r}")
    return {}


def opened(url: str, table: str, stage: str, interval: str | float) -> JobStore[Any]:
    return JobStore(url, table=table, stage=stage, sync_interval=float(interval))


def main() -> None:
    jobs: JobStore[Any] | None = opened(*sys.argv[1:5]) if len(sys.argv) > 1 else None
    held: dict[str, Any] = {}
    print(json.dumps({"ready": True, "instance_id": jobs and jobs.instance_id}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        if command["op"] == "close":
            break
        try:
            if command["op"] == "open":
                if jobs is not None:
                    jobs.close()
                held.clear()
                jobs = opened(command["url"], command["table"], command["stage"],
                              command["interval"])
                reply = {"instance_id": jobs.instance_id}
            elif command["op"] == "shut":
                if jobs is not None:
                    jobs.close()
                jobs, reply = None, {}
                held.clear()
            elif jobs is None:
                raise RuntimeError("no store is open")
            else:
                reply = answer(jobs, held, command)
        except Exception as exc:
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(reply), flush=True)
    if jobs is not None:
        jobs.close()
    print(json.dumps({"closed": True}), flush=True)


if __name__ == "__main__":
    main()
