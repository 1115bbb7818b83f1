"""Running the worker programs in ``tests/workers`` as real subprocesses, with bounded waits."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

WORKERS = Path(__file__).resolve().parent / "workers"
WAIT_S = 60.0


def worker(name: str, *args: object, **popen: Any) -> subprocess.Popen[str]:
    """Start ``tests/workers/<name>.py`` with ``args`` under this interpreter."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("JOBSTORE_STAGE", None)
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
