"""A PgBouncer of a test's own, in transaction mode, in front of a private PostgreSQL server.

It listens on a free loopback port, trusts every client (``auth_type = trust``: the server
behind it trusts them too) and keeps at most ``pool_size`` server connections. The system's
pgbouncer service is never touched: this one runs from its own folder and is killed by
``close()``. As root it runs as the ``postgres`` OS user (PgBouncer refuses to run as root).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from .pg_cluster import PG_USER, PgCluster, free_port


def pgbouncer_binary() -> str | None:
    """pgbouncer on PATH, else where Debian puts it (/usr/sbin, not on a user's PATH)."""
    found = shutil.which("pgbouncer")
    if found is None and os.access("/usr/sbin/pgbouncer", os.X_OK):
        found = "/usr/sbin/pgbouncer"
    return found


class PgBouncer:
    """One PgBouncer process; ``url`` reaches the cluster's ``postgres`` database through it."""

    def __init__(self, cluster: PgCluster, pool_size: int = 4) -> None:
        binary = pgbouncer_binary()
        if binary is None:
            raise RuntimeError("no pgbouncer binary")
        self.pool_size = pool_size
        self.root = tempfile.mkdtemp(prefix="jobstore-pgbouncer-")
        os.chmod(self.root, 0o700)
        self.port = free_port()
        self.log = os.path.join(self.root, "pgbouncer.log")
        config = os.path.join(self.root, "pgbouncer.ini")
        users = os.path.join(self.root, "userlist.txt")
        with open(users, "w") as f:
            f.write(f'"{PG_USER}" ""\n')
        with open(config, "w") as f:
            f.write(
                "[databases]\n"
                f"postgres = host=127.0.0.1 port={cluster.port} dbname=postgres\n"
                "[pgbouncer]\n"
                f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
                f"auth_type = trust\nauth_file = {users}\npool_mode = transaction\n"
                f"default_pool_size = {pool_size}\nmin_pool_size = 0\nreserve_pool_size = 0\n"
                "max_client_conn = 1000\nserver_reset_query =\n"
                f"logfile = {self.log}\npidfile = {os.path.join(self.root, 'pgbouncer.pid')}\n"
            )
        command = [binary, config]
        if os.geteuid() == 0:
            user = pwd.getpwnam(PG_USER)
            for path in (self.root, users, config):
                os.chown(path, user.pw_uid, user.pw_gid)
            command = ["runuser", "-u", PG_USER, "--", *command]
        self.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        self.url = f"postgresql+psycopg://{PG_USER}@127.0.0.1:{self.port}/postgres?pgbouncer=true"
        try:
            self._wait_listening(20)
        except BaseException:
            self.close()
            raise

    def _wait_listening(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pgbouncer exited {self.proc.returncode}: {self.log_tail()}")
            with contextlib.suppress(OSError), socket.create_connection(
                    ("127.0.0.1", self.port), timeout=1):
                return
            time.sleep(0.05)
        raise RuntimeError(f"pgbouncer did not listen within {timeout} s: {self.log_tail()}")

    def log_tail(self) -> str:
        with contextlib.suppress(OSError), open(self.log) as f:
            return f.read()[-2000:]
        return ""

    def close(self) -> None:
        """Kill PgBouncer (its whole session: runuser and pgbouncer) and delete its folder."""
        try:
            if self.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
