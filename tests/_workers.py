"""Running the worker programs in ``tests/workers`` as real subprocesses, with bounded waits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

WORKERS = Path(__file__).resolve().parent / "workers"
WAIT_S = 60.0


def worker(name: str, *args: object, stage_pin: str | None = None,
           **popen: Any) -> subprocess.Popen[str]:
    """Start ``tests/workers/<name>.py`` with ``args`` under this interpreter; its stage is
    pinned by ``$JOBSTORE_STAGE`` only when ``stage_pin`` is given."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("JOBSTORE_STAGE", None)
    if stage_pin is not None:
        env["JOBSTORE_STAGE"] = stage_pin
    popen.setdefault("text", True)
    return subprocess.Popen([sys.executable, str(WORKERS / f"{name}.py"), *map(str, args)],
                            env=env, **popen)


def run_worker(name: str, *args: object, timeout: float = WAIT_S) -> str:
    """Run a worker to its end and return its stdout; fail on a non-zero exit."""
    process = worker(name, *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        raise AssertionError(f"{name} did not finish in {timeout} s:\n{out}\n{err}") from None
    assert process.returncode == 0, f"{name} exited {process.returncode}:\n{out}\n{err}"
    return out


class Agent:
    """``workers/agent.py`` (or another ``program`` of the same protocol, such as
    ``workers/server.py``): a service process the test drives one JSON command at a time."""

    def __init__(self, url: str, table: str, stage: str, sync_interval: float,
                 program: str = "agent") -> None:
        self.process = worker(program, url, table, stage, sync_interval,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.instance_id = self._read()["instance_id"]

    def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line, f"the agent died (exit {self.process.poll()})"
        reply: dict[str, Any] = json.loads(line)
        return reply

    def __call__(self, op: str, **args: Any) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.process.stdin.flush()
        return self._read()

    def close(self) -> None:
        """Close the store and wait for the process; kill it if it does not end in time."""
        if self.process.poll() is None:
            try:
                self("close")
                self.process.wait(WAIT_S)
            except (AssertionError, BrokenPipeError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait(WAIT_S)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()
