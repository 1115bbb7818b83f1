"""The read-back check's cost per set: ``Codec.encode`` with the check and without it, beside a
whole ``dual_write`` set on SQLite, for jobs whose check is skipped and for one that takes it.

The three jobs hold the same 15 fields as `BenchJob`: the dataclass itself and a flat pydantic
model (both provably round-trip, so the check is skipped), and the same model with range
constraints on two fields (the full check: decode, then compare ``dump_python`` of both).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from jobstore import JobStore, Stage
from jobstore.codec import Codec

from .env import Env
from .model import BenchJob, make_job
from .peers import keys
from .timing import FAST_BATCH, Bench, Case, Result

GROUP = "readback"
ENCODE_OFF, ENCODE_ON, STORE_SET = "encode, no check", "encode", "set (dual_write, SQLite)"
VALUES = 1000
"""Distinct values an encode case cycles through."""


class FlatJob(BaseModel):
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


class CheckedJob(FlatJob):
    progress: float = Field(ge=0, le=1)
    slide_count: int = Field(ge=0, le=1000)


def _as(model: type[BaseModel]) -> Callable[[int], Any]:
    return lambda i: model(**dataclasses.asdict(make_job(i)))


JOBS: dict[str, tuple[Any, Callable[[int], Any]]] = {
    "dataclass (BenchJob)": (BenchJob, make_job),
    "flat model": (FlatJob, _as(FlatJob)),
    "constrained model": (CheckedJob, _as(CheckedJob)),
}


class Encode:
    """``codec.encode(job)``, cycling through `VALUES` jobs."""

    batch = FAST_BATCH

    def __init__(self, job: str, read_back: bool, n: int) -> None:
        model, make = JOBS[job]
        self.codec: Codec[Any] = Codec(model, read_back=read_back)
        self.values = [make(i) for i in range(min(n, VALUES))]

    def run(self, start: int, stop: int) -> None:
        encode, values, m = self.codec.encode, self.values, len(self.values)
        for i in range(start, stop):
            encode(values[i % m])

    def close(self) -> None:
        pass


class StoreSet:
    """``jobs[k] = job`` in ``dual_write`` on a new SQLite file, for keys that hold a job."""

    def __init__(self, env: Env, job: str, n: int) -> None:
        model, make = JOBS[job]
        self.store: JobStore[Any] = JobStore(env.sqlite_url(f"readback-{id(self)}"),
                                             table="jobs", model=model,
                                             stage=Stage.DUAL_WRITE, sync_interval=30.0)
        self.keys = keys(n)
        self.store.update(zip(self.keys, (make(i) for i in range(n)), strict=False))
        self.values = [make(i + 1) for i in range(n)]

    def run(self, start: int, stop: int) -> None:
        s, ks, vs = self.store, self.keys, self.values
        for i in range(start, stop):
            s[ks[i]] = vs[i]

    def close(self) -> None:
        self.store.close()


def _encode(job: str, read_back: bool, n: int) -> Bench:
    return Encode(job, read_back, n)


def _set(env: Env, job: str, n: int) -> Bench:
    return StoreSet(env, job, n)


def cases(env: Env, n_fast: int, n_db: int, n_pg: int) -> list[Case]:
    out = []
    for job in JOBS:
        out += [Case(GROUP, job, ENCODE_OFF, functools.partial(_encode, job, False), n_fast),
                Case(GROUP, job, ENCODE_ON, functools.partial(_encode, job, True), n_fast),
                Case(GROUP, job, STORE_SET, functools.partial(_set, env, job), n_db)]
    return out


HEADERS = ["job", "check", "encode, no check µs", "encode µs", "check µs", "dual_write set µs",
           "check / set"]
TITLE = "The read-back check per set"
ABOUT = ("`Codec.encode` with the read-back check (as every set, update and write-back calls "
         "it) and without it, and a whole `dual_write` set on SQLite with the check, for the "
         "same 15 fields as a dataclass, a flat pydantic model and the model with range "
         "constraints on two fields (`bench/readback.py`). *check µs* is the difference of the "
         "two encode medians.")


def rows(results: list[Result]) -> list[list[str]]:
    """One row per job: which check its codec takes, and what each figure is."""
    idx = {r.key: r for r in results if r.case.group == GROUP and r.ok}
    out = []
    for job, (model, _make) in JOBS.items():
        got = {op: idx[(GROUP, job, op)].median_us for op in (ENCODE_OFF, ENCODE_ON, STORE_SET)
               if (GROUP, job, op) in idx}
        if len(got) < 3:
            continue
        cost = got[ENCODE_ON] - got[ENCODE_OFF]
        out.append([job, Codec(model).round_trip_check, f"{got[ENCODE_OFF]:.2f}",
                    f"{got[ENCODE_ON]:.2f}", f"{cost:.2f}", f"{got[STORE_SET]:.1f}",
                    f"{cost / got[STORE_SET]:.1%}"])
    return out
