"""The demo's eleven acts: the legacy dict losing a job, then every stage walked on two servers,
each narrated claim checked (a step that does not turn out as narrated raises `DemoFailure`)."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..admin import status
from ..db.liveness import GONE_AFTER_INTERVALS, STALE_AFTER_INTERVALS
from ..stages import Stage
from .narrator import Narrator, RunCommand
from .reader import Database, parse_time
from .servers import SYNC_INTERVAL_S, Server
from .service import TABLE
from .stopping import DemoFailure

STAGE_TIMEOUT_S = 10.0
FAST_RENDER_STEP_S = 0.1
SLOW_RENDER_STEP_S = 0.3

TITLES = (
    "Q3 all-hands", "Launch keynote", "Onboarding week 1", "Board update", "Sales kickoff",
    "Design review", "Roadmap 2027", "Security training", "Customer story: Acme",
    "Hiring plan", "Retro: the outage", "Pricing proposal",
)

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


class Demo(Narrator):
    """One run: its folder and database, the servers it started and the jobs they created."""

    def __init__(self, console: Console, folder: Path, run_command: RunCommand, *,
                 fast: bool) -> None:
        super().__init__(console, run_command, ACTS, fast=fast)
        self.folder = folder
        self.db_path = folder / "jobs.db"
        self.url = f"sqlite:///{self.db_path}"
        self.db = Database(self.db_path)
        self.servers: dict[str, Server] = {}
        self.spawned: list[Server] = []  # every server ever started, for the cleanup
        self.titles = iter(TITLES * 4)
        self.crashed_job = ""
        self.killed = ""  # the instance id of the server A killed in act 1
        self.jobs: dict[str, str] = {}  # job id -> the server it was created on
        self.started = time.monotonic()
        env = {k: v for k, v in os.environ.items()
               if k not in ("JOBSTORE_STAGE", "JOBSTORE_URL", "JOBSTORE_TABLE")}
        env["PYTHONUNBUFFERED"] = "1"
        self.server_env = env

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

    def wait_stage(self, stage: Stage) -> None:
        """Every running server reports ``stage`` when asked directly."""
        names = sorted(n for n, s in self.servers.items() if s.alive)
        self.wait_for(
            f"{' and '.join(names)} to run {stage}",
            lambda: all(self.servers[n].stage() is stage for n in names),
            STAGE_TIMEOUT_S)
        verb = "runs" if len(names) == 1 else "run"
        self.ok(f"{' and '.join(names)} {verb} [bold]{stage}[/], each says so when asked "
                f"(they follow the stage row every {SYNC_INTERVAL_S:g} s)")

    def live_instances(self) -> set[str]:
        """The instance ids `jobstore status` lists as live now."""
        return {i.instance_id for i in status(self.url, table=TABLE).live}

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
        self.cli("init", "--stage", Stage.MEMORY)
        server = self.start("A")
        job_id = self.create(server, step=SLOW_RENDER_STEP_S)
        job = server.request("get", job_id=job_id)["job"]
        self.step(f"job {job_id} created on A: {job['status']}")
        server.kill()
        self.killed = str(server.ready["instance_id"])
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
        self.say(f"The A killed a moment ago ({self.killed}) was seen running a few "
                 "heartbeats ago, so the gate would wait for it, and since a dead process "
                 "never answers, exit 3 and change nothing. It is known dead: name it to skip.")
        self.cli("stage", Stage.DUAL_WRITE, "--skip", self.killed)
        self.wait_stage(Stage.DUAL_WRITE)
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
        killed = str(a.ready["instance_id"])
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
        self.wait_for("the killed A to fall silent",
                      lambda: killed not in self.live_instances())
        self.ok(f"the killed A ({killed}) is no longer live: no heartbeat for "
                f"{STALE_AFTER_INTERVALS} of its intervals, so no gate waits for it; its row "
                f"leaves the listing after {GONE_AFTER_INTERVALS}")
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
        changed_at = parse_time(str(row.payload["completed_at"]))
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
        self.cli("stage", Stage.SHADOW)
        self.wait_stage(Stage.SHADOW)
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
        self.cli("stage", Stage.DB_PRIMARY)
        self.wait_stage(Stage.DB_PRIMARY)
        job_id = self.create(b)
        self.step(f"job {job_id} created on B, written to the database first")
        self.wait_completed([job_id])
        self.ok(f"job {job_id} completed in the database")

    def act_cutover(self) -> None:
        self.heading()
        self.say("cutover verifies once more, sets db_only and returns only when every live "
                 "server runs it.")
        self.cli("cutover", "--yes", meaning="every live server runs db_only")
        stages = {n: s.stage() for n, s in self.servers.items() if s.alive}
        runs = ", ".join(f"{n} runs {s}" for n, s in sorted(stages.items()))
        if set(stages.values()) != {Stage.DB_ONLY}:
            raise DemoFailure(f"cutover returned before every server ran db_only: {runs}")
        self.ok(f"asked right after the command returned: {runs}")

    def act_rollback(self) -> None:
        self.heading()
        a = self.servers["A"]
        self.say("Something looks off? One step back is one command; the dict starts empty and "
                 "fills from the database.")
        self.cli("rollback", meaning="back to db_primary")
        self.wait_stage(Stage.DB_PRIMARY)
        listed = a.request("list")["jobs"]
        missing = sorted(set(self.jobs) - set(listed))
        if missing:
            raise DemoFailure(f"after the rollback A does not list {', '.join(missing)}")
        self.ok(f"A still serves all {len(self.jobs)} jobs")
        self.say("All clear: forward again.")
        self.cli("cutover", "--yes", meaning="db_only again")
        self.wait_stage(Stage.DB_ONLY)

    def act_done(self) -> None:
        self.heading()
        self.cli("ls")
        rows = self.db.rows()
        stage = self.db.stage()
        missing = sorted(set(self.jobs) - set(rows))
        unfinished = sorted(k for k in self.jobs if k in rows and rows[k].status != "completed")
        if stage is not Stage.DB_ONLY or missing or unfinished:
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

