"""`JobStore` in each stage, on SQLite and PostgreSQL: set, get from memory, get from the
database, and an in-place change written back.

Stores run with ``sync_interval=30`` so that what is timed is the operation, not the background
loop's rounds; the in-place case calls ``sync()`` itself, which is the work one round does.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from jobstore import JobStore, Stage

from .env import PG_URL, Env
from .model import BenchJob
from .peers import GET_DB, GET_MEMORY, SET, WRITE_BACK, jobs, keys
from .timing import FAST_BATCH, Bench, Case

SYNC_INTERVAL = 30.0
WRITE_BACK_BATCH = 50
"""Objects changed in place between two ``sync()`` calls in the in-place case."""

HELD_KEYS = 2000

STAGE_OPS: dict[Stage, tuple[str, ...]] = {
    Stage.MEMORY: (SET, GET_MEMORY),
    Stage.DUAL_WRITE: (SET, GET_MEMORY, GET_DB, WRITE_BACK),
    Stage.SHADOW: (SET, GET_MEMORY, GET_DB, WRITE_BACK),
    Stage.DB_PRIMARY: (SET, GET_DB, WRITE_BACK),
    Stage.DB_ONLY: (SET, GET_DB, WRITE_BACK),
}


class Target:
    """Where one benchmark's store lives: a new SQLite file or a new table on the server."""

    def __init__(self, env: Env, backend: str) -> None:
        if backend == "sqlite":
            self.url, self.table = env.sqlite_url("jobstore"), "jobs"
        else:
            self.url, self.table = PG_URL, env.pg_table("js")

    def open(self, stage: Stage) -> JobStore[str, BenchJob]:
        return JobStore(self.url, table=self.table, model=BenchJob, stage=stage,
                        sync_interval=SYNC_INTERVAL)


def _fill(store: JobStore[str, BenchJob], n: int, offset: int = 0) -> list[str]:
    ks = keys(n)
    for start in range(0, n, 500):
        chunk = jobs(min(500, n - start), offset + start)
        store.update(zip(ks[start:start + 500], chunk, strict=True))
    return ks


class StoreSet:
    """``jobs[k] = job`` for keys that hold a job already."""

    def __init__(self, target: Target, stage: Stage, n: int) -> None:
        self.store = target.open(stage)
        self.keys = _fill(self.store, n)
        self.jobs = jobs(n, offset=1)
        if stage is Stage.MEMORY:
            self.batch = FAST_BATCH

    def run(self, start: int, stop: int) -> None:
        s, ks, js = self.store, self.keys, self.jobs
        for i in range(start, stop):
            s[ks[i]] = js[i]

    def close(self) -> None:
        self.store.close()


class StoreGetMemory:
    """``jobs[k]`` for keys this process wrote, so the dict answers (at most `HELD_KEYS`
    distinct keys, read in turn)."""

    batch = FAST_BATCH

    def __init__(self, target: Target, stage: Stage, n: int) -> None:
        self.store = target.open(stage)
        held = _fill(self.store, min(n, HELD_KEYS))
        self.keys = [held[i % len(held)] for i in range(n)]

    def run(self, start: int, stop: int) -> None:
        s, ks = self.store, self.keys
        for i in range(start, stop):
            s[ks[i]]

    def close(self) -> None:
        self.store.close()


class StoreGetDb:
    """``jobs[k]`` in a store just opened, for keys another store wrote: each read once."""

    def __init__(self, target: Target, stage: Stage, n: int) -> None:
        with target.open(stage) as loader:
            self.keys = _fill(loader, n)
        self.store = target.open(stage)

    def run(self, start: int, stop: int) -> None:
        s, ks = self.store, self.keys
        for i in range(start, stop):
            s[ks[i]]

    def close(self) -> None:
        self.store.close()


class StoreWriteBack:
    """``job = jobs[k]; job.progress = ...`` for `WRITE_BACK_BATCH` jobs, then ``sync()``;
    the time per changed job. Handing the jobs out is not timed."""

    batch = WRITE_BACK_BATCH

    def __init__(self, target: Target, stage: Stage, n: int) -> None:
        self.store = target.open(stage)
        self.keys = _fill(self.store, n)
        self.held: list[BenchJob] = []
        self.round = 0

    def prepare(self, start: int, stop: int) -> None:
        s = self.store
        self.held = [s[k] for k in self.keys[start:stop]]
        self.round += 1

    def run(self, start: int, stop: int) -> None:
        progress = self.round / 1000
        for job in self.held:
            job.progress = progress
        self.held = []
        self.store.sync()

    def close(self) -> None:
        self.store.close()


OP_BENCH: dict[str, Callable[[Target, Stage, int], Bench]] = {
    SET: StoreSet, GET_MEMORY: StoreGetMemory, GET_DB: StoreGetDb, WRITE_BACK: StoreWriteBack,
}


def _store_bench(env: Env, backend: str, stage: Stage, op: str, n: int) -> Bench:
    """``op`` on a fresh store; its target (a new file or table) is made only when the case runs."""
    return OP_BENCH[op](Target(env, backend), stage, n)


def cases(env: Env, n_fast: int, n_db: int, n_pg: int) -> list[Case]:
    out: list[Case] = []
    backends = ["sqlite"] + (["postgresql"] if env.has_pg else [])
    for backend in backends:
        for stage, ops in STAGE_OPS.items():
            if stage is Stage.MEMORY and backend != "sqlite":
                continue
            group = "memory" if stage is Stage.MEMORY else backend
            for op in ops:
                if stage is Stage.MEMORY or op == GET_MEMORY:
                    n = n_fast
                else:
                    n = n_db if backend == "sqlite" else n_pg
                out.append(Case(group, f"JobStore {stage.value}", op,
                                functools.partial(_store_bench, env, backend, stage, op), n))
    return out
