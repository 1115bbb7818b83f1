"""The seed's presentation service, with its jobs kept in a `JobStore` instead of a dict.

Run it from this folder::

    pip install 'jobstore[example]'
    uvicorn app:app

``POST /presentations`` with ``{"title": "Q3 review", "slides": 15}`` answers ``{"job_id": ...}``;
``GET /presentations/{job_id}`` answers the job (``job_id``, ``status``, ``progress``,
``video_url``...) or 404; ``GET /presentations`` lists the jobs; ``GET /healthz`` shows the stage
this process runs. A background task renders each job, and, as the legacy code did, it changes the
job object in place and never assigns it back: jobstore writes those changes back by itself.

Configuration (environment):

- ``JOBSTORE_URL``: the database; default ``sqlite:///presentations.db`` in the working folder.
- ``JOBSTORE_TABLE``: the job table; default ``presentation_jobs``.
- ``JOBSTORE_STAGE``: pins this process's stage (an emergency override); normally the stage comes
  from the database's control row, set with ``jobstore stage`` / ``jobstore cutover``.
- ``PRESENTATION_SYNC_INTERVAL``: the store's ``sync_interval`` in seconds; default 1.
- ``PRESENTATION_STEP_SECONDS``: how long rendering one slide takes; default 2.
- ``PRESENTATION_RESUME``: ``0`` to not resume unfinished jobs at start; default ``1``.

The store's calls are synchronous (a dict lookup, or a database round trip, depending on the
stage); the handlers are ``async def``, so every store call goes through ``asyncio.to_thread``
rather than stalling the event loop. ``docs/async.md`` has the measurements behind that choice.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field, TypeAdapter

from jobstore import JobStore

DEFAULT_URL = "sqlite:///presentations.db"
DEFAULT_TABLE = "presentation_jobs"

log = logging.getLogger("presentation_service")


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class PresentationJob:
    """One presentation being rendered to video, as the seed's service keeps it."""

    job_id: str
    title: str
    slides: int
    status: str = "queued"  # queued -> processing -> completed (or failed)
    progress: float = 0.0  # 0.0 .. 1.0
    video_url: str | None = None
    error: str | None = None
    created_at: datetime = field(default_factory=_now)
    completed_at: datetime | None = None


JOB_JSON: TypeAdapter[PresentationJob] = TypeAdapter(PresentationJob)


class PresentationRequest(BaseModel):
    title: str = Field(min_length=1, max_length=200)
    slides: int = Field(ge=1, le=500)


class ProfessionalPresentationService:
    """The seed's service. Only ``__init__`` changed: the dict became a `JobStore`."""

    def __init__(
        self,
        url: str | None = None,
        *,
        table: str | None = None,
        sync_interval: float | None = None,
        step_seconds: float | None = None,
    ) -> None:
        # before: self.jobs: Dict[str, PresentationJob] = {}
        self.jobs: JobStore[str, PresentationJob] = JobStore(
            url or os.environ.get("JOBSTORE_URL") or DEFAULT_URL,
            table=table or os.environ.get("JOBSTORE_TABLE") or DEFAULT_TABLE,
            model=PresentationJob,
            sync_interval=sync_interval or _env_float("PRESENTATION_SYNC_INTERVAL", 1.0),
        )
        self.step_seconds = (step_seconds if step_seconds is not None
                             else _env_float("PRESENTATION_STEP_SECONDS", 2.0))
        self._renders: set[asyncio.Task[None]] = set()

    # the legacy methods, unchanged but for the thread around store calls -------------------

    async def create_presentation(self, request: PresentationRequest) -> str:
        job_id = uuid.uuid4().hex[:12]
        job = PresentationJob(job_id=job_id, title=request.title, slides=request.slides)
        await asyncio.to_thread(self.jobs.__setitem__, job_id, job)
        self._start_render(job)
        return job_id

    async def get_job_status(self, job_id: str) -> PresentationJob | None:
        return await asyncio.to_thread(self.jobs.get, job_id)

    async def list_jobs(self, status: str | None, limit: int) -> list[PresentationJob]:
        def collect() -> list[PresentationJob]:
            found = []
            for job in self.jobs.values():
                if status is None or job.status == status:
                    found.append(job)
                    if len(found) >= limit:
                        break
            return found

        return await asyncio.to_thread(collect)

    async def _render(self, job: PresentationJob) -> None:
        """Render the slides. The job is changed in place and never assigned back to
        ``self.jobs``, exactly as the legacy code did; jobstore persists each change."""
        try:
            job.status = "processing"
            done = round(job.progress * job.slides)
            for slide in range(done + 1, job.slides + 1):
                await asyncio.sleep(self.step_seconds)
                job.progress = slide / job.slides
            job.video_url = f"/download/{job.job_id}.mp4"
            job.completed_at = _now()
            job.status = "completed"
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a render failure is the job's, not the server's
            job.status = "failed"
            job.error = str(exc)

    def _start_render(self, job: PresentationJob) -> None:
        task = asyncio.get_running_loop().create_task(self._render(job))
        self._renders.add(task)
        task.add_done_callback(self._renders.discard)

    # start and stop ------------------------------------------------------------------------

    async def resume_unfinished(self) -> int:
        """Start rendering again every job a previous process left unfinished (a restart or a
        crash interrupted it); how many. With several servers each would resume them: a real
        service would claim each job first."""
        unfinished = await asyncio.to_thread(
            lambda: [job for job in self.jobs.values() if job.status in ("queued", "processing")]
        )
        for job in unfinished:
            self._start_render(job)
        return len(unfinished)

    async def close(self) -> None:
        for task in list(self._renders):
            task.cancel()
        await asyncio.gather(*self._renders, return_exceptions=True)
        await asyncio.to_thread(self.jobs.close)

    def health(self) -> dict[str, Any]:
        jobs = self.jobs
        return {
            "stage": str(jobs.stage),
            "pinned": str(jobs.pinned) if jobs.pinned else None,
            "instance_id": jobs.instance_id,
            "pid": os.getpid(),
            "rendering": len(self._renders),
            "queued_writes": jobs.queued_writes,
            "failed_writes": jobs.failed_writes,
            "shadow_mismatches": jobs.shadow_mismatches,
            "last_error": jobs.last_error,
        }


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


def job_json(job: PresentationJob) -> dict[str, Any]:
    return JOB_JSON.dump_python(job, mode="json")  # type: ignore[no-any-return]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    service = ProfessionalPresentationService()
    app.state.service = service
    if os.environ.get("PRESENTATION_RESUME", "1") != "0":
        resumed = await service.resume_unfinished()
        if resumed:
            log.warning("resumed %d unfinished job(s)", resumed)
    try:
        yield
    finally:
        await service.close()


app = FastAPI(title="Presentation service (jobstore example)", lifespan=lifespan)


def _service() -> ProfessionalPresentationService:
    service: ProfessionalPresentationService = app.state.service
    return service


@app.post("/presentations", status_code=201)
async def create_presentation(request: PresentationRequest) -> dict[str, str]:
    job_id = await _service().create_presentation(request)
    return {"job_id": job_id}


@app.get("/presentations/{job_id}")
async def get_presentation(job_id: str) -> dict[str, Any]:
    job = await _service().get_job_status(job_id) if len(job_id) <= 255 else None
    if job is None:
        raise HTTPException(status_code=404, detail=f"no job {job_id}")
    return job_json(job)


@app.get("/presentations")
async def list_presentations(status: str | None = None, limit: int = 1000) -> dict[str, Any]:
    jobs = await _service().list_jobs(status, max(0, min(limit, 10_000)))
    return {"count": len(jobs), "jobs": [job_json(job) for job in jobs]}


@app.get("/healthz")
async def healthz() -> dict[str, Any]:
    return _service().health()
