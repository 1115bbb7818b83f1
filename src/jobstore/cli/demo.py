"""``jobstore demo``: the whole migration, end to end, narrated for a person.

On an SQLite file in a fresh temporary folder it runs the seed's presentation service
(`jobstore.demo_service`) as real processes, shows the legacy dict losing a job, then walks the
stages with the real ``jobstore`` commands (through the CLI's own entry point, with their real
output and exit codes): two servers in ``dual_write``, a SIGKILL mid-render that loses nothing,
an in-place change reaching the database, verify clean, a drift caught and repaired,
``shadow``, ``db_primary``, cutover, a rollback and forward again, ending in ``db_only`` with
every job in the database.

Every claim it narrates is also checked: a step that does not turn out as narrated stops the demo
with exit 1. Its processes never outlive it: each server runs in its own process group and is
stopped in a ``finally`` (on Ctrl-C and on errors too), and a server whose stdin closes, even
because the demo was SIGKILLed, exits by itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import FrameType
from typing import IO, Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

TABLE = "presentation_jobs"
SYNC_INTERVAL_S = 0.25
START_TIMEOUT_S = 30.0
REPLY_TIMEOUT_S = 20.0
STAGE_TIMEOUT_S = 10.0
RENDER_TIMEOUT_S = 30.0
PAUSE_S = 0.4
EXIT_INTERRUPTED = 130
FAST_RENDER_STEP_S = 0.1
SLOW_RENDER_STEP_S = 0.3

TITLES = (
    "Q3 all-hands", "Launch keynote", "Onboarding week 1", "Board update", "Sales kickoff",
    "Design review", "Roadmap 2027", "Security training", "Customer story: Acme",
    "Hiring plan", "Retro: the outage", "Pricing proposal",
)


class DemoFailure(Exception):
    """A step did not turn out as the demo narrates it."""


class Interrupted(BaseException):
    """SIGTERM or SIGHUP: stop like Ctrl-C, cleaning up first."""


_signalled = threading.Event()
"""Set by Ctrl-C, SIGTERM or SIGHUP. The exception the signal raises can be swallowed when it
lands in a finaliser (``Exception ignored in ...``); every step checks this flag too."""


def _checkpoint() -> None:
    if _signalled.is_set():
        raise KeyboardInterrupt


# the servers ---------------------------------------------------------------------------------


class Server:
    """One `jobstore.demo_service` process, driven over its stdin and stdout."""

    def __init__(self, name: str, url: str, folder: Path, env: dict[str, str],
                 registry: list[Server]) -> None:
        self.name = name
        self.log_path = folder / f"server-{name}.log"
        with open(self.log_path, "a") as log:
            log.write(f"--- server {name} starting\n")
            log.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "jobstore.demo_service", "--url", url, "--name", name,
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


# the database, read directly ------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    key: str
    status: str | None
    version: int
    payload: dict[str, Any]


class Database:
    """Direct reads (and one deliberate bad write) with the stdlib's sqlite3."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        try:
            yield conn
        finally:
            conn.close()

    def row(self, key: str) -> Row | None:
        with self._connect() as conn:
            found = conn.execute(
                f"SELECT key, status, version, payload FROM {TABLE} WHERE key = ?", (key,)
            ).fetchone()
        return None if found is None else Row(found[0], found[1], found[2], json.loads(found[3]))

    def rows(self) -> dict[str, Row]:
        with self._connect() as conn:
            found = conn.execute(f"SELECT key, status, version, payload FROM {TABLE}").fetchall()
        return {r[0]: Row(r[0], r[1], r[2], json.loads(r[3])) for r in found}

    def stage(self) -> str | None:
        with self._connect() as conn:
            found = conn.execute("SELECT stage FROM jobstore_control WHERE job_table = ?",
                                 (TABLE,)).fetchone()
        return None if found is None else str(found[0])

    def first_completed_at(self, key: str) -> datetime | None:
        """When the database first held the job as completed (its history's timestamp)."""
        with self._connect() as conn:
            found = conn.execute(
                f"SELECT at FROM {TABLE}_events WHERE key = ? AND status = 'completed' "
                "ORDER BY version LIMIT 1", (key,)).fetchone()
        return None if found is None else _parse_time(str(found[0]))

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        with self._connect() as conn:
            return conn.execute(sql, params).rowcount


def _parse_time(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "T"))
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


# the narration --------------------------------------------------------------------------------


ACTS = (
    "Before: the seed's self.jobs = {}",
    "Phase 1: dual_write on two servers",
    "Jobs behind a load balancer",
    "A crash mid-render loses nothing",
    "In-place changes reach the database",
    "Verify: every server diffs its dict against the database",
    "A drift caught, refused and repaired",
    "shadow, then db_primary",
    "Cutover: db_only everywhere, or nowhere",
    "Rollback, and forward again",
    "Done: db_only, every job in the database",
)


class Demo:
    def __init__(self, console: Console, folder: Path, *, fast: bool) -> None:
        self.console = console
        self.folder = folder
        self.fast = fast
        self.db_path = folder / "jobs.db"
        self.url = f"sqlite:///{self.db_path}"
        self.db = Database(self.db_path)
        self.servers: dict[str, Server] = {}
        self.spawned: list[Server] = []  # every server ever started, for the cleanup
        self.titles = iter(TITLES * 4)
        self.crashed_job = ""
        self.jobs: dict[str, str] = {}  # job id -> the server it was created on
        self.started = time.monotonic()
        self.act = 0
        self.commands = 0
        env = {k: v for k, v in os.environ.items()
               if k not in ("JOBSTORE_STAGE", "JOBSTORE_URL", "JOBSTORE_TABLE")}
        env["PYTHONUNBUFFERED"] = "1"
        self.server_env = env

    # output helpers ----------------------------------------------------------------------------

    def heading(self) -> None:
        _checkpoint()
        self.act += 1
        if self.act > 1 and not self.fast:
            time.sleep(PAUSE_S)
        self.console.print()
        self.console.rule(f"[bold cyan]{self.act}/{len(ACTS)}  {escape(ACTS[self.act - 1])}",
                          align="left")

    def say(self, text: str) -> None:
        _checkpoint()
        self.console.print(f"[italic]{text}[/]")

    def step(self, text: str) -> None:
        _checkpoint()
        self.console.print(f"  [blue]▸[/] {text}")

    def ok(self, text: str) -> None:
        _checkpoint()
        self.console.print(f"  [bold green]✓[/] {text}")

    def lost(self, text: str) -> None:
        _checkpoint()
        self.console.print(f"  [bold red]✗[/] {text}")

    def cli(self, *args: str, expect: int = 0, meaning: str | None = None) -> None:
        """Run a real ``jobstore`` command and show its real output.

        It goes through the CLI's own entry point in this process (the same parsing,
        library calls, rendering and exit code as the console script, without starting and
        importing a second interpreter each time, which costs a second or two apiece).
        """
        from .app import cli as jobstore  # the group imports this module: import it late

        shown = "jobstore " + shlex.join(args)
        self.console.print(f"[bold]$ {escape(shown)}[/]")
        sys.stdout.flush()
        started = time.monotonic()
        try:
            jobstore.main(list(args), prog_name="jobstore")
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        else:
            code = 0
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
        if code == EXIT_INTERRUPTED:
            raise KeyboardInterrupt
        _checkpoint()
        self.commands += 1
        took = time.monotonic() - started
        if code != expect:
            raise DemoFailure(f"`{shown}` exited {code}; expected {expect}")
        note = f" ({meaning})" if meaning else ""
        self.console.print(f"[dim]  ↳ exit {code}{escape(note)}, {took:.1f} s[/]")

    def wait_for(self, what: str, check: Callable[[], bool],
                 timeout: float = RENDER_TIMEOUT_S) -> float:
        started = time.monotonic()
        deadline = started + timeout
        while not check():
            _checkpoint()
            if time.monotonic() > deadline:
                raise DemoFailure(f"timed out after {timeout:g} s waiting for {what}")
            time.sleep(0.05)
        return time.monotonic() - started

    # servers -----------------------------------------------------------------------------------

    def start(self, name: str) -> Server:
        server = Server(name, self.url, self.folder, self.server_env, self.spawned)
        self.servers[name] = server
        server.wait_ready()
        self.step(f"server {name} started: pid {server.pid}, runs "
                  f"[bold]{server.ready['stage']}[/]")
        return server

    def create(self, server: Server, step: float = FAST_RENDER_STEP_S) -> str:
        title = next(self.titles)
        job_id = str(server.request("create", title=title, slides=12, step=step)["job_id"])
        self.jobs[job_id] = server.name
        return job_id

    def wait_stage(self, stage: str) -> None:
        """Every running server reports ``stage`` when asked directly."""
        names = sorted(n for n, s in self.servers.items() if s.alive)
        self.wait_for(
            f"{' and '.join(names)} to run {stage}",
            lambda: all(self.servers[n].request("info")["stage"] == stage for n in names),
            STAGE_TIMEOUT_S)
        verb = "runs" if len(names) == 1 else "run"
        self.ok(f"{' and '.join(names)} {verb} [bold]{stage}[/], each says so when asked "
                f"(they follow the stage row every {SYNC_INTERVAL_S:g} s)")

    def wait_completed(self, keys: list[str]) -> None:
        def done() -> bool:
            rows = self.db.rows()
            return all(k in rows and rows[k].status == "completed" for k in keys)
        self.wait_for(f"jobs {', '.join(keys)} to complete in the database", done)

    # the acts ----------------------------------------------------------------------------------

    def run(self) -> None:
        self.console.print(
            "[bold]jobstore demo[/]: the seed's presentation service, migrated from a dict to "
            "a database while it runs. Two servers run as real processes; each $ line is the "
            "real jobstore command with its real output.")
        self.console.print(f"[bold]$ export JOBSTORE_URL={escape(self.url)} "
                           f"JOBSTORE_TABLE={TABLE}[/]")
        self.act_legacy()
        self.act_dual_write()
        self.act_load_balancer()
        self.act_crash()
        self.act_in_place()
        self.act_verify()
        self.act_drift()
        self.act_shadow_and_db_primary()
        self.act_cutover()
        self.act_rollback()
        self.act_done()

    def act_legacy(self) -> None:
        self.heading()
        self.say("The service stores jobs with JobStore, at stage memory: exactly the old dict. "
                 "Watch a job die with its process.")
        self.cli("init", "--stage", "memory")
        server = self.start("A")
        job_id = self.create(server, step=SLOW_RENDER_STEP_S)
        job = server.request("get", job_id=job_id)["job"]
        self.step(f"job {job_id} created on A: {job['status']}")
        server.kill()
        self.lost("server A SIGKILLed (a deploy, a crash, an out-of-memory kill)")
        server = self.start("A")
        if server.request("get", job_id=job_id)["job"] is not None:
            raise DemoFailure(f"job {job_id} survived at stage memory, which keeps no database")
        del self.jobs[job_id]
        self.lost(f"job {job_id} is gone after the restart: the user gets a 404 "
                  "(this is the seed's bug)")

    def act_dual_write(self) -> None:
        self.heading()
        self.say("One command moves every process to dual_write: the dict stays the source of "
                 "truth and every write also goes to the database.")
        self.cli("stage", "dual_write")
        self.wait_stage("dual_write")
        self.start("B")
        self.cli("status")

    def act_load_balancer(self) -> None:
        self.heading()
        a, b = self.servers["A"], self.servers["B"]
        self.say("Requests land on either server. Each writes its jobs to the shared database, "
                 "so the other can serve them.")
        on_a = [self.create(a) for _ in range(3)]
        on_b = [self.create(b) for _ in range(2)]
        self.step(f"created {', '.join(on_a)} on A and {', '.join(on_b)} on B")
        job = b.request("get", job_id=on_a[0])["job"]
        if job is None:
            raise DemoFailure(f"server B cannot see job {on_a[0]} created on A")
        self.ok(f"B serves A's job {on_a[0]} ({escape(job['title'])}, {job['status']}): "
                "no more 404 flapping behind the load balancer")

    def act_crash(self) -> None:
        self.heading()
        a = self.servers["A"]
        self.say("A long render is under way on A when A is killed without warning.")
        job_id = self.create(a, step=SLOW_RENDER_STEP_S)
        self.step(f"job {job_id} rendering on A")

        def mid_render() -> bool:
            row = self.db.row(job_id)
            return row is not None and row.status == "processing" and (
                20 <= row.payload["progress"] < 100)
        self.wait_for(f"job {job_id} to be mid-render in the database", mid_render)
        a.kill()
        row = self.db.row(job_id)
        assert row is not None
        self.lost(f"server A SIGKILLed at {row.payload['progress']}% of job {job_id}")
        self.cli("show", job_id)
        a = self.start("A")
        job = a.request("get", job_id=job_id)["job"]
        if job is None:
            raise DemoFailure(f"the restarted server A lost job {job_id}")
        self.ok(f"the new A reads job {job_id} back from the database: {job['status']} at "
                f"{job['progress']}%")
        resumed = a.request("resume")["resumed"]
        if job_id not in resumed:
            raise DemoFailure(f"the restarted server A did not resume job {job_id}: {resumed}")
        others = len(resumed) - 1
        also = f" (and {others} other job(s) it was rendering)" if others else ""
        self.ok(f"and resumes it from there{also}; all {len(self.jobs)} jobs are still listed "
                "by both servers")
        for server in (a, self.servers["B"]):
            listed = server.request("list")["jobs"]
            missing = sorted(set(self.jobs) - set(listed))
            if missing:
                raise DemoFailure(f"server {server.name} does not list {', '.join(missing)}")
        self.crashed_job = job_id

    def act_in_place(self) -> None:
        self.heading()
        job_id = self.crashed_job
        self.say("The render loop is legacy code: it fetched the job once and sets "
                 "job.progress, job.video_url and job.status = \"completed\" on it, never "
                 "assigning it back. The store notices the change and writes it.")
        self.wait_completed(list(self.jobs))
        row = self.db.row(job_id)
        assert row is not None
        stored_at = self.db.first_completed_at(job_id)
        changed_at = _parse_time(str(row.payload["completed_at"]))
        if stored_at is None:
            raise DemoFailure(f"job {job_id} has no completed version in its history")
        lag = (stored_at - changed_at).total_seconds()
        self.ok(f"job {job_id} completed in memory and reached the database "
                f"{max(lag, 0.0) * 1000:.0f} ms later, with video_url {row.payload['video_url']}")
        self.ok(f"all {len(self.jobs)} jobs completed in the database")
        self.cli("history", job_id)

    def act_verify(self) -> None:
        self.heading()
        self.say("Before going further, ask every live server to compare its dict with the "
                 "database, key by key.")
        self.cli("verify", meaning="consistent")

    def act_drift(self) -> None:
        self.heading()
        b = self.servers["B"]
        job_id = next(k for k, name in self.jobs.items() if name == "B")
        sql = (f"UPDATE {TABLE} SET payload = json_set(payload, '$.video_url', "
               f"'/download/WRONG.mp4') WHERE key = '{job_id}'")
        self.say("Someone \"fixes\" a row by hand, behind the service's back.")
        self.console.print(f"[bold]$ sqlite3 jobs.db \"{escape(sql)}\"[/]")
        if self.db.execute(sql) != 1:
            raise DemoFailure(f"the hand edit did not change job {job_id}")
        self.cli("verify", expect=1, meaning="drift found")
        self.cli("cutover", "--yes", expect=1, meaning="cutover refused")
        self.say("In dual_write the dict is the source of truth: server B writes its copy of "
                 "the job again.")
        b.request("resave", job_id=job_id)
        row = self.db.row(job_id)
        if row is None or row.payload["video_url"] != f"/download/{job_id}.mp4":
            raise DemoFailure(f"re-saving job {job_id} did not repair its row")
        self.ok(f"job {job_id} re-saved by B: video_url is {row.payload['video_url']} again")
        self.cli("verify", meaning="consistent again")

    def act_shadow_and_db_primary(self) -> None:
        self.heading()
        a, b = self.servers["A"], self.servers["B"]
        self.say("shadow: reads still come from the dict, and a sample of them is compared "
                 "with the database.")
        self.cli("stage", "shadow")
        self.wait_stage("shadow")
        checks = mismatches = reads = 0
        for server in (a, b):
            info = server.request("read_all", rounds=20)
            reads += int(info["reads"])
            checks += int(info["shadow_checks"])
            mismatches += int(info["shadow_mismatches"])
        if mismatches:
            raise DemoFailure(f"{mismatches} shadow mismatches")
        self.ok(f"{reads} reads, {checks} of them also read from the database: "
                f"{mismatches} mismatches")
        self.say("db_primary: the database is now the source of truth; the dict is kept "
                 "current as the rollback net.")
        self.cli("stage", "db_primary")
        self.wait_stage("db_primary")
        job_id = self.create(b)
        self.step(f"job {job_id} created on B, written to the database first")
        self.wait_completed([job_id])
        self.ok(f"job {job_id} completed in the database")

    def act_cutover(self) -> None:
        self.heading()
        self.say("cutover verifies once more, sets db_only and returns only when every live "
                 "server runs it.")
        self.cli("cutover", "--yes", meaning="every live server runs db_only")
        stages = {n: s.request("info")["stage"] for n, s in self.servers.items() if s.alive}
        if set(stages.values()) != {"db_only"}:
            raise DemoFailure(f"cutover returned before every server ran db_only: {stages}")
        self.ok("asked right after the command returned: "
                + ", ".join(f"{n} runs {s}" for n, s in sorted(stages.items())))

    def act_rollback(self) -> None:
        self.heading()
        a = self.servers["A"]
        self.say("Something looks off? One step back is one command; the dict starts empty and "
                 "fills from the database.")
        self.cli("rollback", meaning="back to db_primary")
        self.wait_stage("db_primary")
        listed = a.request("list")["jobs"]
        missing = sorted(set(self.jobs) - set(listed))
        if missing:
            raise DemoFailure(f"after the rollback A does not list {', '.join(missing)}")
        self.ok(f"A still serves all {len(self.jobs)} jobs")
        self.say("All clear: forward again.")
        self.cli("cutover", "--yes", meaning="db_only again")
        self.wait_stage("db_only")

    def act_done(self) -> None:
        self.heading()
        self.cli("ls")
        rows = self.db.rows()
        stage = self.db.stage()
        missing = sorted(set(self.jobs) - set(rows))
        unfinished = sorted(k for k in self.jobs if k in rows and rows[k].status != "completed")
        if stage != "db_only" or missing or unfinished:
            raise DemoFailure(f"final state: stage {stage}, missing {missing}, "
                              f"not completed {unfinished}")
        for name in sorted(self.servers):
            self.servers[name].stop()
        self.step("servers A and B stopped cleanly (each flushed and closed its store)")
        summary = Table(show_header=False, box=None, padding=(0, 2))
        summary.add_row("stage", f"[bold]{stage}[/]")
        summary.add_row("jobs in the database", f"{len(rows)}, all completed")
        summary.add_row("lost by the legacy dict", "1 (act 1)")
        summary.add_row("lost after the migration began", "0 (one SIGKILL mid-render)")
        summary.add_row("jobstore commands run", str(self.commands))
        summary.add_row("time", f"{time.monotonic() - self.started:.1f} s")
        self.console.print(summary)
        self.console.print(
            f"[bold green]The migration is done: stage db_only, {len(rows)} jobs in the "
            f"database, all completed.[/]")

    def stop_servers(self) -> None:
        for server in self.spawned:
            with contextlib.suppress(Exception):
                server.stop()


# the command ------------------------------------------------------------------------------------


@contextlib.contextmanager
def _signals_interrupt() -> Iterator[None]:
    """Ctrl-C, SIGTERM and SIGHUP unwind the demo, so the ``finally`` blocks stop the servers."""
    def handler(signum: int, _frame: FrameType | None) -> None:
        _signalled.set()
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Interrupted(signum)

    _signalled.clear()
    handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {s: signal.signal(s, handler) for s in handled}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


@contextlib.contextmanager
def _signals_ignored() -> Iterator[None]:
    """A second Ctrl-C must not cut the cleanup short (it takes about a second)."""
    handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in handled}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    """The demo's database for the ``jobstore`` commands it runs, as a user would export it."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


def _prepare_folder(directory: Path | None) -> tuple[Path, bool]:
    """The folder to run in and whether the demo created it."""
    if directory is None:
        return Path(tempfile.mkdtemp(prefix="jobstore-demo-")), True
    folder = directory.resolve()
    if folder.exists() and any(folder.iterdir()):
        raise click.UsageError(f"{folder} is not empty; give a new or empty folder")
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    return folder, created


@click.command("demo")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              help="Run in this new or empty folder (kept afterwards) instead of a fresh "
                   "temporary one.")
@click.option("--keep", is_flag=True,
              help="Keep the temporary folder (database, server logs) to look at afterwards.")
@click.option("--fast", is_flag=True, help="No pauses between the steps.")
def demo(directory: Path | None, keep: bool, fast: bool) -> None:
    """Run the whole migration, end to end and narrated, on an SQLite file in a fresh folder.

    Two servers of the seed's presentation service run as real processes; every stage change,
    verify and cutover is the real jobstore command. About half a minute.
    """
    console = Console(highlight=False)
    folder, created = _prepare_folder(directory)
    keep = keep or directory is not None
    runner = Demo(console, folder, fast=fast)
    code = 0
    try:
        with _signals_interrupt(), _environment(JOBSTORE_URL=runner.url,
                                                JOBSTORE_TABLE=TABLE):
            try:
                runner.run()
            finally:
                with _signals_ignored():
                    runner.stop_servers()
    except DemoFailure as exc:
        code = 1
        console.print(f"\n[bold red]The demo stopped: {escape(str(exc))}[/]")
        logs = {server.log_path: server for server in runner.spawned}  # A restarts: one log
        for server in logs.values():
            tail = server.log_tail()
            if tail.strip():
                console.print(f"[dim]server {server.name}'s log ({server.log_path}):[/]")
                console.print(escape(tail), style="dim")
        keep = True
    except (KeyboardInterrupt, Interrupted):
        code = 130
        console.print("\n[bold yellow]Interrupted: the demo's servers are stopped.[/]")
    finally:
        if keep:
            console.print(f"[dim]The folder is kept: {escape(str(folder))}  (try: jobstore "
                          f"--url {escape(runner.url)} --table {TABLE} status)[/]")
        elif created:
            shutil.rmtree(folder, ignore_errors=True)
    if code:
        raise SystemExit(code)
