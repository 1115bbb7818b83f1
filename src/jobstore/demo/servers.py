"""The demo's service processes: start one, talk to it, SIGKILL it, stop it.

Each server is a `jobstore.demo.service` process in its own process group, driven over its stdin
and stdout; one whose stdin closes, even because the demo was SIGKILLed, exits by itself.
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
from pathlib import Path
from typing import IO, Any

from ..stages import Stage
from .service import TABLE
from .stopping import DemoFailure

SYNC_INTERVAL_S = 0.25
START_TIMEOUT_S = 30.0
REPLY_TIMEOUT_S = 20.0


class Server:
    """One `jobstore.demo.service` process, driven over its stdin and stdout."""

    def __init__(self, name: str, url: str, folder: Path, env: dict[str, str],
                 registry: list[Server]) -> None:
        self.name = name
        self.log_path = folder / f"server-{name}.log"
        with open(self.log_path, "a") as log:
            log.write(f"--- server {name} starting\n")
            log.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "jobstore.demo.service", "--url", url, "--name", name,
                 "--table", TABLE, "--sync-interval", str(SYNC_INTERVAL_S)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
                bufsize=1, start_new_session=True, env=env, cwd=folder,
            )
        registry.append(self)  # at once, so that cleanup finds it even if the start fails
        self.pid = self.proc.pid
        self._stopped = False
        self._replies: queue.Queue[str | None] = queue.Queue()
        assert self.proc.stdout is not None
        self._reader = threading.Thread(target=self._read, args=(self.proc.stdout,),
                                        name=f"demo-server-{name}", daemon=True)
        self._reader.start()
        self.ready: dict[str, Any] = {}

    def wait_ready(self) -> dict[str, Any]:
        self.ready = self._next(START_TIMEOUT_S)
        return self.ready

    def _read(self, stream: IO[str]) -> None:
        with contextlib.suppress(ValueError, OSError):
            for line in stream:
                self._replies.put(line)
        self._replies.put(None)

    def _next(self, timeout: float) -> dict[str, Any]:
        try:
            line = self._replies.get(timeout=timeout)
        except queue.Empty:
            raise DemoFailure(f"server {self.name} did not answer within {timeout:g} s") from None
        if line is None:
            self._replies.put(None)
            code = self.proc.wait(5)
            raise DemoFailure(f"server {self.name} (pid {self.pid}) exited with {code}; "
                              f"its log: {self.log_path}")
        reply: dict[str, Any] = json.loads(line)
        if not reply.get("ok"):
            raise DemoFailure(f"server {self.name}: {reply.get('error')}")
        return reply

    def request(self, cmd: str, timeout: float = REPLY_TIMEOUT_S, **args: Any) -> dict[str, Any]:
        stdin = self.proc.stdin
        if stdin is None or stdin.closed:
            raise DemoFailure(f"server {self.name} is stopped")
        try:
            stdin.write(json.dumps({"cmd": cmd, **args}) + "\n")
            stdin.flush()
        except (BrokenPipeError, OSError):
            raise DemoFailure(f"server {self.name} (pid {self.pid}) is gone; "
                              f"its log: {self.log_path}") from None
        return self._next(timeout)

    def stage(self) -> Stage:
        """The stage the server says it runs, asked now."""
        return Stage(self.request("info")["stage"])

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group: no cleanup, no flush, like a crash or an OOM kill."""
        self._signal_group(signal.SIGKILL)
        self.proc.wait(10)
        self._close_pipes()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the server to quit (it flushes and closes its store); kill it if it will not."""
        if self._stopped:
            return
        if self.alive:
            with contextlib.suppress(DemoFailure):
                self.request("quit", timeout=timeout)
            with contextlib.suppress(OSError):
                if self.proc.stdin is not None:
                    self.proc.stdin.close()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.proc.wait(10)
        self._close_pipes()

    def _signal_group(self, signum: signal.Signals) -> None:
        """Signal the server's process group, only while its leader is not yet reaped (so the
        group id cannot have been reused by an unrelated process)."""
        if self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)

    def _close_pipes(self) -> None:
        self._stopped = True
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self._reader.join(5)

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text().splitlines()[-lines:])
        except OSError:
            return ""

