from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jobstore import JobStore, Stage

MakeStore = Callable[..., JobStore[Any]]


def test_a_job_written_in_dual_write_is_read_back_after_reopening(make_store: MakeStore) -> None:
    jobs = make_store(stage=Stage.DUAL_WRITE)
    jobs["abc123"] = {"status": "queued"}
    jobs.close()
    again: JobStore[str, dict[str, str]] = make_store()
    assert again["abc123"] == {"status": "queued"}
