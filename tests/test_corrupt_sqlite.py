"""An SQLite file whose pages were overwritten with garbage, as a failing disk or a stray write
leaves one: the store's listings and ``jobstore status`` say so instead of answering as if
the jobs were not there."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from conftest import listings_that_answer
from jobstore import JobStore, Stage
from jobstore.cli import cli

JOBS = 2000
ROWS = (b'"pad":',)
"""A member every job written here has: the pages that hold it hold the job table's rows (and
their history), not its indexes."""
ROWS_AND_INDEXES = (*ROWS, b"job-", b"queued")
"""And the keys and the status: the pages of every index on the job table too."""


def write_jobs(path: Path, stage: Stage) -> None:
    with JobStore(f"sqlite:///{path}", table="jobs", stage=stage) as writer:
        writer.update({f"job-{i:04}": {"status": "queued", "pad": "x" * 40}
                       for i in range(JOBS)})


def corrupt_pages(path: Path, marks: tuple[bytes, ...]) -> int:
    """Overwrite every page of the file that holds one of ``marks`` with random bytes (the WAL
    checkpointed into the file first); how many pages."""
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    hit = 0
    with open(path, "r+b") as f:
        data = f.read()
        for start in range(page_size, len(data), page_size):
            page = data[start:start + page_size]
            if any(mark in page for mark in marks):
                f.seek(start)
                f.write(os.urandom(page_size))
                hit += 1
        f.flush()
        os.fsync(f.fileno())
    assert hit > 10, "no page held a job: the test proves nothing"
    return hit


@pytest.mark.parametrize("stage", [Stage.DUAL_WRITE, Stage.SHADOW])
def test_listing_a_dict_first_store_on_a_corrupt_file_raises_rather_than_shrink(
        tmp_path: Path, stage: Stage) -> None:
    path = tmp_path / "jobs.db"
    write_jobs(path, stage)
    jobs: JobStore[Any] = JobStore(f"sqlite:///{path}", table="jobs", sync_interval=600)
    try:
        jobs["mine"] = {"status": "mine"}
        assert len(jobs) == JOBS + 1
        corrupt_pages(path, ROWS_AND_INDEXES)
        assert listings_that_answer(jobs) == [], "answered from the dict alone"
        assert jobs["mine"] == {"status": "mine"}   # the dict still answers what it holds
    finally:
        jobs.close()


@pytest.mark.parametrize("as_json", [False, True])
def test_status_of_a_corrupt_file_is_exit_2_with_one_line(tmp_path: Path, as_json: bool) -> None:
    """Only the job table's pages are damaged: the count by status, which an index answers,
    would still come out right, so status must read the file through to notice."""
    path = tmp_path / "jobs.db"
    write_jobs(path, Stage.DUAL_WRITE)
    corrupt_pages(path, ROWS)
    result = CliRunner().invoke(cli, ["--url", f"sqlite:///{path}", "status",
                                      *(["--json"] if as_json else [])])
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("error: the SQLite database at sqlite:///")
    assert "is damaged" in line
