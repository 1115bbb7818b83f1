"""The seed's presentation service, migrated with one line, run as a process by ``jobstore demo``.

The service is the one the problem document describes: ``ProfessionalPresentationService`` kept
its jobs in ``self.jobs: Dict[str, PresentationJob] = {}``, so every restart lost every job. Here
that line is a `JobStore`; the rest of the code is the legacy code, unchanged in spirit: a render
thread fetches its job once and then changes it in place (``job.status = "processing"``,
``job.progress``, ``job.video_url``) without ever assigning it back.

It is driven over stdin and stdout, one JSON document per line each way, so the demo needs no
web framework and no port::

    python -m jobstore.demo.service --url sqlite:///jobs.db --name A

Commands (``{"cmd": ...}``): ``create`` (title, slides, step), ``get`` (job_id), ``list``,
``resume``, ``resave`` (job_id), ``read_all`` (rounds), ``info``, ``quit``. Every reply has
``ok``. End of input (the demo went away, even killed) closes the store and exits, so the
process never outlives the one that drives it.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import IO, Any

from jobstore import JobStore

TABLE = "presentation_jobs"
RENDER_STEP_S = 0.25
PROGRESS_STEP = 10


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class PresentationJob:
    """A video render of a slide deck, as the seed's service tracks it."""

    job_id: str
    title: str
    slides: int
    status: str = "queued"
    progress: int = 0
    video_url: str | None = None
    error: str | None = None
    rendered_by: str | None = None
    created_at: datetime = field(default_factory=_now)
    completed_at: datetime | None = None


class ProfessionalPresentationService:
    """The seed's service; its one changed line is marked."""

    def __init__(self, url: str, name: str, *, sync_interval: float,
                 table: str = TABLE) -> None:
        self.name = name
        # BEFORE: self.jobs: Dict[str, PresentationJob] = {}   (every restart lost every job)
        self.jobs: JobStore[str, PresentationJob] = JobStore(
            url, table=table, model=PresentationJob, sync_interval=sync_interval)
        # Start the background loop now rather than on first use, so that an idle server
        # heartbeats too: `jobstore status` lists it and cutover's barrier waits for it.
        self.jobs.sync()
        self._rendering: set[str] = set()
        self._rendering_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()

    def create_presentation(self, title: str, slides: int, step: float = RENDER_STEP_S) -> str:
        job_id = uuid.uuid4().hex[:6]
        job = PresentationJob(job_id=job_id, title=title, slides=slides, rendered_by=self.name)
        self.jobs[job_id] = job
        self._start_render(job_id, step)
        return job_id

    def get_job_status(self, job_id: str) -> PresentationJob | None:
        return self.jobs.get(job_id)

    def resume_interrupted(self, step: float = RENDER_STEP_S) -> list[str]:
        """Start again every job this server was rendering when it went down."""
        resumed = []
        for job_id, job in self.jobs.items():
            interrupted = job.status in ("queued", "processing")
            if interrupted and job.rendered_by in (None, self.name) and self._start_render(
                    job_id, step):
                resumed.append(job_id)
        return resumed

    def _start_render(self, job_id: str, step: float) -> bool:
        with self._rendering_lock:
            if job_id in self._rendering:
                return False
            self._rendering.add(job_id)
        thread = threading.Thread(target=self._render, args=(job_id, step),
                                  name=f"render-{job_id}", daemon=True)
        self._threads.append(thread)
        thread.start()
        return True

    def _render(self, job_id: str, step: float) -> None:
        """The legacy render loop: fetch the job once, then change it in place."""
        try:
            job = self.jobs[job_id]
            job.status = "processing"
            job.rendered_by = self.name
            while job.progress < 100:
                if self._stopping.wait(step):
                    return
                job.progress = min(100, job.progress + PROGRESS_STEP)
            job.video_url = f"/download/{job_id}.mp4"
            job.completed_at = _now()
            job.status = "completed"
        except Exception as exc:  # a render failure is the job's, not the server's
            print(f"render {job_id} failed: {exc!r}", file=sys.stderr, flush=True)
        finally:
            with self._rendering_lock:
                self._rendering.discard(job_id)

    @property
    def rendering(self) -> int:
        with self._rendering_lock:
            return len(self._rendering)

    def close(self, timeout: float = 5.0) -> None:
        """Stop rendering (a job keeps the progress it reached) and close the store."""
        self._stopping.set()
        deadline = time.monotonic() + timeout
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))
        self.jobs.close()


def job_document(job: PresentationJob | None) -> dict[str, Any] | None:
    if job is None:
        return None
    data = dataclasses.asdict(job)
    for name in ("created_at", "completed_at"):
        if data[name] is not None:
            data[name] = data[name].isoformat()
    return data


class Server:
    """Reads commands from stdin and answers each on stdout."""

    def __init__(self, service: ProfessionalPresentationService, out: IO[str]) -> None:
        self.service = service
        self.out = out

    def reply(self, **data: Any) -> None:
        self.out.write(json.dumps(data, default=str) + "\n")
        self.out.flush()

    def info(self) -> dict[str, Any]:
        jobs = self.service.jobs
        return {
            "name": self.service.name, "pid": os.getpid(), "instance_id": jobs.instance_id,
            "stage": str(jobs.stage), "rendering": self.service.rendering,
            "queued_writes": jobs.queued_writes, "failed_writes": jobs.failed_writes,
            "shadow_mismatches": jobs.shadow_mismatches, "shadow_checks": jobs.shadow_checks,
            "last_error": jobs.last_error,
        }

    def handle(self, command: dict[str, Any]) -> bool:
        """Answer one command; False when the server should stop."""
        service = self.service
        name = command.get("cmd")
        if name == "create":
            job_id = service.create_presentation(
                str(command.get("title", "Quarterly review")), int(command.get("slides", 10)),
                float(command.get("step", RENDER_STEP_S)))
            self.reply(ok=True, job_id=job_id)
        elif name == "get":
            self.reply(ok=True, job=job_document(service.get_job_status(str(command["job_id"]))))
        elif name == "list":
            self.reply(ok=True, jobs={k: job_document(v) for k, v in service.jobs.items()})
        elif name == "resume":
            self.reply(ok=True, resumed=service.resume_interrupted(
                float(command.get("step", RENDER_STEP_S))))
        elif name == "resave":
            job_id = str(command["job_id"])
            job = service.jobs[job_id]
            service.jobs[job_id] = job
            self.reply(ok=True, job=job_document(job))
        elif name == "read_all":
            reads = 0
            for _ in range(int(command.get("rounds", 1))):
                for job_id in list(service.jobs):
                    service.jobs.get(job_id)
                    reads += 1
            self.reply(ok=True, reads=reads, **self.info())
        elif name == "info":
            self.reply(ok=True, **self.info())
        elif name == "quit":
            self.reply(ok=True)
            return False
        else:
            self.reply(ok=False, error=f"unknown command {name!r}")
        return True

    def serve(self, lines: IO[str]) -> None:
        for line in lines:
            if not line.strip():
                continue
            try:
                command = json.loads(line)
                keep_going = self.handle(command)
            except Exception as exc:  # one bad command must not take the server down
                self.reply(ok=False, error=f"{type(exc).__name__}: {exc}")
                continue
            if not keep_going:
                return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m jobstore.demo.service",
        description="The seed's presentation service on a JobStore, driven over stdin/stdout.")
    parser.add_argument("--url", required=True, help="the database URL")
    parser.add_argument("--name", required=True, help="this server's name, e.g. A")
    parser.add_argument("--table", default=TABLE)
    parser.add_argument("--sync-interval", type=float, default=0.25)
    args = parser.parse_args(argv)

    def stop(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    # The protocol owns stdout: anything else printed goes to stderr.
    out = sys.stdout
    sys.stdout = sys.stderr
    service = ProfessionalPresentationService(args.url, args.name,
                                              sync_interval=args.sync_interval,
                                              table=args.table)
    try:
        server = Server(service, out)
        server.reply(ok=True, ready=True, **server.info())
        server.serve(sys.stdin)
    finally:
        with contextlib.suppress(Exception):
            service.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
