"""Jobs survive a restart: the seed's own test plan, and a job read back by a fresh process."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest

from _workers import run_worker
from jobstore import JobStore, Stage
from workers.models import PresentationJob, sample_job


class ProfessionalPresentationService:
    """The seed's service with its one changed line: ``self.jobs`` is a `JobStore`."""

    def __init__(self, url: str) -> None:
        self.jobs: JobStore[str, PresentationJob] = JobStore(
            url, table="presentation_jobs", model=PresentationJob)

    async def create_presentation(self, request: dict[str, Any]) -> str:
        job_id = uuid.uuid4().hex
        job = PresentationJob(job_id=job_id, status="queued", slides=list(request["slides"]))
        self.jobs[job_id] = job
        return job_id

    async def get_job_status(self, job_id: str) -> PresentationJob | None:
        return self.jobs.get(job_id)


def test_the_seed_test_plan_passes_a_job_outlives_a_restart_of_the_service(tmp_path: Path) -> None:
    """The seed's 'Critical Test: Restart Persistence', as written there."""
    url = f"sqlite:///{tmp_path}/service.db"
    services = []

    async def plan() -> None:
        # 1. Create job
        service = ProfessionalPresentationService(url)
        services.append(service)
        job_id = await service.create_presentation({"slides": ["intro", "outro"]})
        assert job_id is not None

        # 2. Verify job exists
        job = await service.get_job_status(job_id)
        assert job is not None
        assert job.status == "queued"

        # 3. **RESTART SERVER** (simulate crash/deploy): the old one is never closed
        service = ProfessionalPresentationService(url)
        services.append(service)

        # 4. Job should STILL exist
        job = await service.get_job_status(job_id)
        assert job is not None
        assert job.job_id == job_id
        assert job.status == "queued"
        assert job.slides == ["intro", "outro"]

    try:
        asyncio.run(plan())
    finally:
        for service in services:
            service.jobs.close()


def test_without_the_store_the_same_plan_fails_as_the_seed_says_a_dict_does() -> None:
    """Control: the plan can fail; with the legacy ``self.jobs = {}`` step 4 finds nothing."""

    class LegacyService(ProfessionalPresentationService):
        def __init__(self) -> None:
            self.jobs = {}  # type: ignore[assignment]

    async def plan() -> PresentationJob | None:
        service = LegacyService()
        job_id = await service.create_presentation({"slides": []})
        service = LegacyService()
        return await service.get_job_status(job_id)

    assert asyncio.run(plan()) is None


@pytest.mark.slow
@pytest.mark.parametrize("stage", [Stage.DUAL_WRITE, Stage.DB_ONLY])
def test_a_job_written_by_one_process_is_read_equal_and_of_its_type_by_a_fresh_one(
        tmp_path: Path, stage: Stage) -> None:
    url = f"sqlite:///{tmp_path}/jobs.db"
    out = run_worker("write_jobs", url, "presentation_jobs", stage, "job", 3)
    assert out.splitlines() == ["ready", "ack job-0 0", "ack job-1 1", "ack job-2 2", "closed"]

    lines = run_worker("read_jobs", url, "presentation_jobs", "job-0:0", "job-1:1", "job-2:2")
    seen = [json.loads(line) for line in lines.splitlines()]
    assert [s["key"] for s in seen] == ["job-0", "job-1", "job-2"]
    for s in seen:
        assert s["type"] == "workers.models.PresentationJob"
        assert s["is_model"] is True
        assert s["equal"] is True, s

    # ...and this process, which imports the same module, decodes the same value
    jobs: JobStore[str, PresentationJob] = JobStore(
        url, table="presentation_jobs", model=PresentationJob)
    with jobs:
        assert jobs["job-2"] == sample_job("job-2", 2)
        assert type(jobs["job-2"]) is PresentationJob


def test_the_payload_is_the_jobs_own_json_document_not_a_pickle(tmp_path: Path) -> None:
    """What the fresh process decodes is plain JSON any other program can read."""
    url = f"sqlite:///{tmp_path}/jobs.db"
    jobs: JobStore[str, PresentationJob] = JobStore(
        url, table="presentation_jobs", model=PresentationJob)
    with jobs:
        jobs["abc123"] = sample_job("abc123", 4)
    with sqlite3.connect(f"{tmp_path}/jobs.db") as conn:
        payload, status = conn.execute(
            "SELECT payload, status FROM presentation_jobs WHERE key = 'abc123'").fetchone()
    conn.close()
    document = json.loads(payload)
    assert document["job_id"] == "abc123"
    assert document["video_url"] == "/download/abc123.mp4"
    assert document["created_at"].startswith("2026-11-29T10:04:04")
    assert status == "queued"
