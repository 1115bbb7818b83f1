"""The job type the seed's service stores, importable by the tests and by every worker."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone


class Quality(enum.Enum):
    DRAFT = "draft"
    HD = "hd"


@dataclass
class PresentationJob:
    """A presentation render, as ``presentation_service.py`` keeps it in ``self.jobs``."""

    job_id: str
    status: str = "queued"
    progress: int = 0
    video_url: str | None = None
    slides: list[str] = field(default_factory=list)
    options: dict[str, int] = field(default_factory=dict)
    quality: Quality = Quality.HD
    created_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    request_id: uuid.UUID = field(default_factory=uuid.uuid4)


def sample_job(job_id: str, n: int = 0) -> PresentationJob:
    """A job whose every field is fixed by ``job_id`` and ``n``, so another process can build
    the same value to compare with."""
    return PresentationJob(
        job_id=job_id,
        status="queued",
        progress=n % 101,
        video_url=None if n % 2 else f"/download/{job_id}.mp4",
        slides=[f"slide {i} of {job_id}" for i in range(n % 5)],
        options={"width": 1920, "fps": 24 + n % 7},
        quality=Quality.DRAFT if n % 3 == 0 else Quality.HD,
        created_at=datetime(2026, 11, 29, 10, n % 60, n % 60, 1000 * (n % 1000), timezone.utc),
        request_id=uuid.UUID(int=(n * 2654435761 + len(job_id)) % (1 << 128)),
    )
