"""The job every benchmark stores: a 15-field dataclass of about 520 bytes of JSON."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from pydantic import TypeAdapter


@dataclass
class BenchJob:
    job_id: str
    status: str
    progress: float
    created_at: datetime
    updated_at: datetime
    user_id: str
    title: str
    source_url: str
    video_url: str | None
    thumbnail_url: str | None
    slide_count: int
    duration_s: float
    voice: str
    language: str
    error: str | None


_T0 = datetime(2026, 11, 29, 12, 0, 0, 123456, tzinfo=timezone.utc)


def make_job(i: int) -> BenchJob:
    job_id = f"job-{i:08d}"
    return BenchJob(
        job_id=job_id,
        status="processing",
        progress=0.42,
        created_at=_T0,
        updated_at=_T0,
        user_id=f"user-{i % 997:06d}",
        title=f"Quarterly results, region {i % 31}: growth and margins",
        source_url=f"https://files.example.com/{job_id}/deck-v3.pptx",
        video_url=f"https://cdn.example.com/renders/{job_id}/1080p.mp4",
        thumbnail_url=f"https://cdn.example.com/renders/{job_id}/thumb.jpg",
        slide_count=24,
        duration_s=312.5,
        voice="en-US-warm",
        language="en-US",
        error=None,
    )


def key_of(i: int) -> str:
    return f"job-{i:08d}"


ADAPTER: TypeAdapter[BenchJob] = TypeAdapter(BenchJob)
"""The same pydantic encoding jobstore uses, for the raw-driver baselines."""


def encode(job: BenchJob) -> str:
    return ADAPTER.dump_json(job).decode()


def decode(payload: str | bytes) -> BenchJob:
    return ADAPTER.validate_json(payload)


JOB_BYTES = len(encode(make_job(0)))
