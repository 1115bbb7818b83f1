"""A service process for server tests: a JobStore driven by JSON lines on stdin.

    python pg_service.py URL TABLE STAGE SYNC_INTERVAL

It answers one JSON line on stdout per command line it reads, and prints ``{"ready": ...}`` once
its store is open. Each answer carries ``elapsed`` (seconds the operation took) and either the
result or ``error`` (the exception's class name) with ``message``. Commands (``op``):

- ``set`` key value; ``get`` key; ``touch`` key field value (the legacy in-place change:
  ``job = jobs[key]; job[field] = value``, never assigned back); ``delete`` key
- ``state``: stage, queued and failed writes, last error, dict size, instance id
- ``verify``: this process's report; ``sync``; ``len``
- ``pump_start`` prefix: a thread that keeps writing ``prefix-<n>`` jobs as fast as the store
  takes them, each one acknowledged only when ``jobs[key] = value`` returned;
  ``pump_stop``: stops it and answers with every acknowledged key and value
- ``close``: closes the store and exits

`ServiceProcess` is the test's end of the pipe: it starts the script and sends it commands.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from typing import Any

from jobstore import JobStore


class Pump:
    """Writes jobs continuously from a thread, as a busy service would."""

    def __init__(self, jobs: JobStore[Any], prefix: str) -> None:
        self.jobs = jobs
        self.prefix = prefix
        self.acked: dict[str, Any] = {}
        self.errors: list[str] = []
        self.slowest = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            key = f"{self.prefix}-{n:06d}"
            value = {"status": "queued", "n": n, "at": time.time()}
            started = time.monotonic()
            try:
                self.jobs[key] = value
            except Exception as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")
            else:
                self.acked[key] = value
                if n % 3 == 0:
                    # Legacy code updates in place and never assigns back.
                    self.jobs[key]["status"] = "running"
            self.slowest = max(self.slowest, time.monotonic() - started)
            n += 1
            time.sleep(0.01)

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join(30)
        return {"acked": self.acked, "errors": self.errors[:20], "error_count": len(self.errors),
                "slowest": self.slowest}


def handle(jobs: JobStore[Any], command: dict[str, Any], pumps: dict[str, Pump]) -> Any:
    op = command["op"]
    if op == "set":
        jobs[command["key"]] = command["value"]
        return None
    if op == "get":
        return jobs[command["key"]]
    if op == "touch":
        job = jobs[command["key"]]
        job[command["field"]] = command["value"]
        return None
    if op == "delete":
        del jobs[command["key"]]
        return None
    if op == "state":
        return {"stage": str(jobs.stage), "queued": jobs.queued_writes,
                "failed": jobs.failed_writes, "last_error": jobs.last_error,
                "instance_id": jobs.instance_id}
    if op == "verify":
        return jobs.verify().to_dict()
    if op == "sync":
        jobs.sync()
        return None
    if op == "len":
        return len(jobs)
    if op == "pump_start":
        pumps[command["prefix"]] = Pump(jobs, command["prefix"])
        return None
    if op == "pump_stop":
        return pumps.pop(command["prefix"]).stop()
    raise ValueError(f"unknown op {op!r}")


def main() -> None:
    url, table, stage, interval = sys.argv[1:5]
    jobs: JobStore[Any] = JobStore(url, table=table, stage=stage, sync_interval=float(interval))
    pumps: dict[str, Pump] = {}
    print(json.dumps({"ready": jobs.instance_id, "stage": str(jobs.stage)}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        if command["op"] == "close":
            for pump in pumps.values():
                pump.stop()
            jobs.close()
            print(json.dumps({"ok": True}), flush=True)
            return
        started = time.monotonic()
        answer: dict[str, Any]
        try:
            result = handle(jobs, command, pumps)
        except Exception as exc:
            answer = {"error": type(exc).__name__, "message": str(exc)[:500]}
        else:
            answer = {"ok": True, "result": result}
        answer["elapsed"] = time.monotonic() - started
        print(json.dumps(answer, default=str), flush=True)
    jobs.close()


class ServiceProcess:
    """A running ``pg_service.py``; every wait on it is bounded."""

    def __init__(self, url: str, table: str, stage: str, sync_interval: float,
                 env: dict[str, str] | None = None, wait: bool = True) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), url, table, stage, str(sync_interval)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, **(env or {})},
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._stderr: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self._lines),
                             daemon=True),
            threading.Thread(target=self._drain_stderr, daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        self.instance_id = ""
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = 30) -> None:
        """Wait until the store is open (its first line)."""
        self.instance_id = self._next(timeout)["ready"]

    @staticmethod
    def _read(stream: Any, lines: queue.Queue[str | None]) -> None:
        for line in stream:
            lines.put(line)
        lines.put(None)

    def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.append(line)

    def _next(self, timeout: float) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no answer in {timeout} s; stderr: {self.stderr()}") from None
        if line is None:
            self.proc.wait(10)
            raise RuntimeError(f"service exited {self.proc.returncode}: {self.stderr()}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def stderr(self) -> str:
        return "".join(self._stderr)[-3000:]

    def send(self, op: str, timeout: float = 30, **fields: Any) -> dict[str, Any]:
        """Send one command; its answer (``ok``/``result`` or ``error``/``message``)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, **fields}) + "\n")
        self.proc.stdin.flush()
        return self._next(timeout)

    def call(self, op: str, timeout: float = 30, **fields: Any) -> Any:
        """Send one command that must succeed; its result."""
        answer = self.send(op, timeout, **fields)
        if "error" in answer:
            raise AssertionError(f"{op} failed: {answer}")
        return answer["result"]

    def close(self, timeout: float = 30) -> None:
        """Close the store and wait for the process; SIGKILL it if it does not end in time."""
        self.request_close()
        self.finish_close(timeout)

    def request_close(self) -> None:
        """Ask the service to close, without waiting (see `close_all`)."""
        if self.proc.poll() is None and self.proc.stdin is not None:
            try:
                self.proc.stdin.write(json.dumps({"op": "close"}) + "\n")
                self.proc.stdin.flush()
            except OSError:
                pass

    def finish_close(self, timeout: float = 30) -> None:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        self._release()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self._release()

    def _release(self) -> None:
        """Close the pipes once the process has ended and the readers have seen EOF."""
        for reader in self._readers:
            reader.join(10)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


def close_all(services: list[ServiceProcess], timeout: float = 30) -> None:
    """Close several services at once (each closes in parallel with the others)."""
    for service in services:
        service.request_close()
    for service in services:
        service.finish_close(timeout)


if __name__ == "__main__":
    main()
