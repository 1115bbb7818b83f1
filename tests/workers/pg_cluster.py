"""A PostgreSQL server of a test's own: initdb in a temporary folder, a free loopback port.

The shared server on 5432 is never touched: this one lives in its own data folder, listens on
127.0.0.1 on a port nobody uses and keeps its socket in its folder. Stopping, freezing and
restarting it are what outage tests are for. As root, every PostgreSQL program runs as the
``postgres`` OS user (the server refuses to run as root).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable

from sqlalchemy import Connection, create_engine, text

PG_USER = "postgres"


def find_pg_bin() -> str | None:
    """The newest ``/usr/lib/postgresql/*/bin`` holding initdb and pg_ctl, else one on PATH."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                        key=lambda p: int(p.split("/")[-2]) if p.split("/")[-2].isdigit() else 0)
    for directory in reversed(candidates):
        if all(os.access(os.path.join(directory, tool), os.X_OK) for tool in ("initdb", "pg_ctl")):
            return directory
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return os.path.dirname(initdb)
    return None


def unavailable_reason() -> str | None:
    """Why a private server cannot be made here, or None when it can."""
    if find_pg_bin() is None:
        return "no initdb/pg_ctl under /usr/lib/postgresql/*/bin or on PATH"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(PG_USER)
        except KeyError:
            return f"running as root and there is no {PG_USER!r} OS user to run PostgreSQL as"
        if shutil.which("runuser") is None:
            return "running as root and runuser is missing"
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PgCluster:
    """One private PostgreSQL server; ``close()`` stops it (immediately) and removes its folder."""

    def __init__(self) -> None:
        bindir = find_pg_bin()
        if bindir is None:
            raise RuntimeError("no initdb/pg_ctl")
        self.bindir = bindir
        self.root = tempfile.mkdtemp(prefix="jobstore-pg-")
        os.chmod(self.root, 0o700)
        self.data = os.path.join(self.root, "data")
        self.log = os.path.join(self.root, "server.log")
        self.port = free_port()
        self._as_root = os.geteuid() == 0
        if self._as_root:
            user = pwd.getpwnam(PG_USER)
            os.chown(self.root, user.pw_uid, user.pw_gid)
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        command = [os.path.join(self.bindir, args[0]), *args[1:]]
        if self._as_root:
            command = ["runuser", "-u", PG_USER, "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              check=False, cwd=self.root, stdin=subprocess.DEVNULL)

    def _check(self, result: subprocess.CompletedProcess[str], what: str) -> None:
        if result.returncode != 0:
            log = ""
            with contextlib.suppress(OSError), open(self.log) as f:
                log = f.read()[-2000:]
            raise RuntimeError(f"{what} failed ({result.returncode}): {result.stderr[-2000:]}"
                               f"\n{log}")

    def init(self, max_connections: int = 60) -> None:
        self._check(self._run("initdb", "-D", self.data, "-U", "postgres", "--auth=trust",
                              "--no-sync", "--no-instructions", "-E", "UTF8"), "initdb")
        with open(os.path.join(self.data, "postgresql.conf"), "a") as conf:
            conf.write(
                f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.root}'\nmax_connections = {max_connections}\n"
                "shared_buffers = 16MB\nfsync = on\nlogging_collector = off\n"
            )

    def start(self) -> None:
        self._check(self._run("pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "30",
                              "start"), "pg_ctl start")

    def stop(self, mode: str = "fast") -> None:
        self._check(self._run("pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "30", "stop"),
                    f"pg_ctl stop -m {mode}")

    def postmaster_pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError), \
                open(os.path.join(self.data, "postmaster.pid")) as f:
            return int(f.readline())
        return None

    def freeze(self) -> list[int]:
        """SIGSTOP the server and all its processes: alive to TCP, answering nothing."""
        pids = self._server_pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        return pids

    def thaw(self, pids: list[int]) -> None:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    def _server_pids(self) -> list[int]:
        main = self.postmaster_pid()
        if main is None:
            return []
        found = [main]
        with contextlib.suppress(OSError):
            for entry in os.listdir("/proc"):
                if not entry.isdigit():
                    continue
                with contextlib.suppress(OSError), open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                    if int(fields[1]) == main:
                        found.append(int(entry))
        return found

    def is_running(self) -> bool:
        return self._run("pg_ctl", "-D", self.data, "status").returncode == 0

    def close(self) -> None:
        """Stop the server if it runs (thawing it first) and delete its folder."""
        try:
            if os.path.isdir(self.data) and self.postmaster_pid() is not None:
                self.thaw(self._server_pids())
                if self.is_running():
                    self._run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "-t", "30",
                              "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def wait_until(predicate: Callable[[], object], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``predicate()`` until it is true or ``timeout`` seconds pass; whether it was."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


CLIENT_CONNECTIONS = ("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client "
                      "backend' AND pid <> pg_backend_pid()")


def client_connections(server: str | Connection) -> int:
    """Client connections a server has, the counting one left out; ``server``: its URL, or a
    connection to it kept for many counts."""
    if isinstance(server, Connection):
        return int(server.execute(text(CLIENT_CONNECTIONS)).scalar_one())
    engine = create_engine(server)
    try:
        with engine.connect() as conn:
            return client_connections(conn)
    finally:
        engine.dispose()
