"""The contenders that are not jobstore: a dict, the raw drivers, and the peer libraries.

The raw-driver baselines encode with the same pydantic adapter jobstore uses, and SQLite runs
with the same pragmas (WAL, ``synchronous=NORMAL``), so a ratio against them is jobstore's own
cost. diskcache, sqlitedict and shelve run as their users would run them (pickle, defaults).
"""

from __future__ import annotations

import dbm
import functools
import shelve
import sqlite3
from collections.abc import Iterator, MutableMapping
from datetime import datetime, timezone
from typing import Any

from .env import Env, pg_dsn
from .model import BenchJob, decode, encode, key_of, make_job
from .timing import FAST_BATCH, Case

SET, GET_MEMORY, GET_DB, WRITE_BACK = "set", "get (memory hit)", "get (DB)", "in-place change"

_UPSERT_SQLITE = (
    "INSERT INTO jobs (key, payload, status, version, created_at, updated_at) "
    "VALUES (?, ?, ?, 1, ?, ?) ON CONFLICT (key) DO UPDATE SET payload = excluded.payload, "
    "status = excluded.status, version = jobs.version + 1, updated_at = excluded.updated_at"
)
_UPSERT_PG = _UPSERT_SQLITE.replace("?", "%s")
_JOBS_DDL = (
    "CREATE TABLE {t} (key VARCHAR(255) PRIMARY KEY, payload TEXT NOT NULL, status VARCHAR(64), "
    "version INTEGER NOT NULL, created_at {ts} NOT NULL, updated_at {ts} NOT NULL)"
)


def jobs(n: int, offset: int = 0) -> list[BenchJob]:
    return [make_job(i + offset) for i in range(n)]


def keys(n: int) -> list[str]:
    return [key_of(i) for i in range(n)]


class Wrapper(MutableMapping[str, Any]):
    """The thinnest ``MutableMapping`` over a dict: what any mapping class costs at least."""

    def __init__(self) -> None:
        self._data: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._data[key] = value

    def __delitem__(self, key: str) -> None:
        del self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


class MappingSet:
    """``m[k] = job`` on any mapping; every key holds a job already (the update path)."""

    batch = FAST_BATCH

    def __init__(self, mapping: MutableMapping[str, Any], n: int, fast: bool = True,
                 closer: Any = None) -> None:
        self.m = mapping
        self.keys = keys(n)
        self.jobs = jobs(n, offset=1)
        for k, job in zip(self.keys, jobs(n), strict=True):
            mapping[k] = job
        if not fast:
            self.batch = 1
        self._closer = closer

    def run(self, start: int, stop: int) -> None:
        m, ks, js = self.m, self.keys, self.jobs
        for i in range(start, stop):
            m[ks[i]] = js[i]

    def close(self) -> None:
        if self._closer is not None:
            self._closer()


class MappingGet:
    """``m[k]`` on any mapping for keys it holds."""

    batch = FAST_BATCH

    def __init__(self, mapping: MutableMapping[str, Any], n: int, fast: bool = True,
                 closer: Any = None) -> None:
        self.m = mapping
        self.keys = keys(n)
        for k, job in zip(self.keys, jobs(n), strict=True):
            mapping[k] = job
        if not fast:
            self.batch = 1
        self._closer = closer

    def run(self, start: int, stop: int) -> None:
        m, ks = self.m, self.keys
        for i in range(start, stop):
            m[ks[i]]

    def close(self) -> None:
        if self._closer is not None:
            self._closer()


# raw sqlite3 ---------------------------------------------------------------------------------

def sqlite_connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(_JOBS_DDL.format(t="jobs", ts="TEXT"))
    conn.commit()
    return conn


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


class RawSqliteSet:
    """Encode, upsert, commit: Python's sqlite3 as most code uses it (implicit BEGIN)."""

    def __init__(self, env: Env, n: int) -> None:
        self.conn = sqlite_connect(env.path("raw") + ".db")
        self.keys, self.jobs = keys(n), jobs(n, offset=1)
        now = _now()
        self.conn.executemany(_UPSERT_SQLITE, [(k, encode(j), j.status, now, now)
                                               for k, j in zip(self.keys, jobs(n), strict=True)])
        self.conn.commit()

    def run(self, start: int, stop: int) -> None:
        conn, ks, js = self.conn, self.keys, self.jobs
        for i in range(start, stop):
            job = js[i]
            now = _now()
            conn.execute(_UPSERT_SQLITE, (ks[i], encode(job), job.status, now, now))
            conn.commit()

    def close(self) -> None:
        self.conn.close()


_JOBSTORE_UPSERT = (
    'INSERT INTO jobs ("key", payload, status, version, created_at, updated_at, written_by) '
    "VALUES (?, ?, ?, 1, ?, ?, ?) ON CONFLICT (\"key\") DO UPDATE SET payload = excluded.payload, "
    "status = excluded.status, version = jobs.version + 1, updated_at = excluded.updated_at, "
    "written_by = excluded.written_by RETURNING version"
)
_JOBSTORE_RECORD = (
    'INSERT INTO jobs_events ("key", version, op, payload, status, at, written_by) '
    "VALUES (?, ?, 'set', ?, ?, ?, ?)"
)


class RawSqliteHistorySet:
    """What a jobstore write does, by hand, on jobstore's own tables (the job table with its
    status index, the history table with its index): BEGIN IMMEDIATE, the upsert RETURNING the
    version, the history row, COMMIT. The floor under a jobstore write."""

    def __init__(self, env: Env, n: int) -> None:
        from sqlalchemy import create_engine

        from jobstore.db.schema import build_schema

        path = env.path("raw-history") + ".db"
        engine = create_engine(f"sqlite:///{path}")
        schema = build_schema("jobs")
        schema.jobs.create(engine)
        schema.events.create(engine)
        engine.dispose()
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.keys, self.jobs = keys(n), jobs(n, offset=1)
        self._write(jobs(n), 0, n)

    def run(self, start: int, stop: int) -> None:
        self._write(self.jobs, start, stop)

    def _write(self, js: list[BenchJob], start: int, stop: int) -> None:
        conn, ks = self.conn, self.keys
        for i in range(start, stop):
            job = js[i]
            key, payload = ks[i], encode(job)
            now = datetime.now(timezone.utc).isoformat(" ", "microseconds")[:26]
            conn.execute("BEGIN IMMEDIATE")
            version = conn.execute(_JOBSTORE_UPSERT, (key, payload, job.status, now, now,
                                                      "bench")).fetchone()[0]
            conn.execute(_JOBSTORE_RECORD, (key, version, payload, job.status, now, "bench"))
            conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()


class RawSqliteGet:
    """Select by key and decode, each key once."""

    def __init__(self, env: Env, n: int) -> None:
        self.conn = sqlite_connect(env.path("raw") + ".db")
        self.keys = keys(n)
        now = _now()
        self.conn.executemany(_UPSERT_SQLITE, [(k, encode(j), j.status, now, now)
                                               for k, j in zip(self.keys, jobs(n), strict=True)])
        self.conn.commit()

    def run(self, start: int, stop: int) -> None:
        conn, ks = self.conn, self.keys
        select = "SELECT payload, version FROM jobs WHERE key = ?"
        for i in range(start, stop):
            row = conn.execute(select, (ks[i],)).fetchone()
            decode(row[0])

    def close(self) -> None:
        self.conn.close()


# raw psycopg ---------------------------------------------------------------------------------

class RawPgBase:
    def __init__(self, env: Env, n: int, autocommit: bool) -> None:
        import psycopg

        self.table = env.pg_table("raw")
        self.conn = psycopg.connect(pg_dsn(), autocommit=True)
        self.conn.execute(_JOBS_DDL.format(t=self.table, ts="TIMESTAMPTZ"))
        self.upsert = _UPSERT_PG.replace("jobs", self.table)
        self.keys = keys(n)
        now = datetime.now(timezone.utc)
        with self.conn.cursor() as cur:
            cur.executemany(self.upsert, [(k, encode(j), j.status, now, now)
                                          for k, j in zip(self.keys, jobs(n), strict=True)])
        self.conn.autocommit = autocommit

    def close(self) -> None:
        self.conn.close()


class RawPgSet(RawPgBase):
    """Encode, then BEGIN / upsert / COMMIT, as psycopg does outside autocommit."""

    def __init__(self, env: Env, n: int) -> None:
        super().__init__(env, n, autocommit=False)
        self.jobs = jobs(n, offset=1)

    def run(self, start: int, stop: int) -> None:
        conn, ks, js, upsert = self.conn, self.keys, self.jobs, self.upsert
        for i in range(start, stop):
            job = js[i]
            now = datetime.now(timezone.utc)
            conn.execute(upsert, (ks[i], encode(job), job.status, now, now))
            conn.commit()


class RawPgAutocommitSet(RawPgSet):
    """Encode, then the upsert alone in autocommit: one round trip."""

    def __init__(self, env: Env, n: int) -> None:
        super().__init__(env, n)
        self.conn.autocommit = True

    def run(self, start: int, stop: int) -> None:
        conn, ks, js, upsert = self.conn, self.keys, self.jobs, self.upsert
        for i in range(start, stop):
            job = js[i]
            now = datetime.now(timezone.utc)
            conn.execute(upsert, (ks[i], encode(job), job.status, now, now))


class RawPgGet(RawPgBase):
    """Select by key in autocommit (one round trip) and decode, each key once."""

    def __init__(self, env: Env, n: int) -> None:
        super().__init__(env, n, autocommit=True)
        self.select = f"SELECT payload, version FROM {self.table} WHERE key = %s"

    def run(self, start: int, stop: int) -> None:
        conn, ks, select = self.conn, self.keys, self.select
        for i in range(start, stop):
            row = conn.execute(select, (ks[i],)).fetchone()
            assert row is not None
            decode(row[0])


# peer libraries ------------------------------------------------------------------------------

def _diskcache(env: Env) -> tuple[Any, Any]:
    import diskcache

    index = diskcache.Index(env.path("diskcache"))
    return index, index.cache.close


def _sqlitedict(env: Env) -> tuple[Any, Any]:
    from sqlitedict import SqliteDict

    d = SqliteDict(env.path("sqlitedict") + ".db", autocommit=True)
    return d, d.close


def _shelve(env: Env) -> tuple[Any, Any]:
    s = shelve.open(env.path("shelve"))  # noqa: SIM115 - closed by the bench's close()
    return s, s.close


def shelve_backend(env: Env) -> str:
    path = env.path("which")
    with shelve.open(path) as s:
        s["x"] = 1
    return dbm.whichdb(path) or "unknown"


def cases(env: Env, n_fast: int, n_db: int, n_pg: int) -> list[Case]:
    """Every non-jobstore contender, for each operation it has."""
    out = [
        Case("memory", "dict", SET, lambda n: MappingSet({}, n), n_fast),
        Case("memory", "dict", GET_MEMORY, lambda n: MappingGet({}, n), n_fast),
        Case("memory", "MutableMapping wrapper", SET, lambda n: MappingSet(Wrapper(), n), n_fast),
        Case("memory", "MutableMapping wrapper", GET_MEMORY,
             lambda n: MappingGet(Wrapper(), n), n_fast),
        Case("sqlite", "raw sqlite3", SET, lambda n: RawSqliteSet(env, n), n_db,
             note="encode + upsert + commit"),
        Case("sqlite", "raw sqlite3 + history row", SET,
             lambda n: RawSqliteHistorySet(env, n), n_db,
             note="encode, BEGIN IMMEDIATE, upsert RETURNING, event insert, COMMIT"),
        Case("sqlite", "raw sqlite3", GET_DB, lambda n: RawSqliteGet(env, n), n_db,
             note="select by key + decode"),
    ]
    for name, opener in (("diskcache.Index", _diskcache), ("sqlitedict", _sqlitedict),
                         ("shelve", _shelve)):
        out.append(Case("sqlite", name, SET, functools.partial(_peer, MappingSet, opener, env),
                        n_db))
        out.append(Case("sqlite", name, GET_DB, functools.partial(_peer, MappingGet, opener, env),
                        n_db))
    if env.has_pg:
        out += [
            Case("postgresql", "raw psycopg", SET, lambda n: RawPgSet(env, n), n_pg,
                 note="encode + BEGIN / upsert / COMMIT"),
            Case("postgresql", "raw psycopg, autocommit", SET,
                 lambda n: RawPgAutocommitSet(env, n), n_pg,
                 note="encode + the upsert alone: one round trip"),
            Case("postgresql", "raw psycopg", GET_DB, lambda n: RawPgGet(env, n), n_pg,
                 note="select by key (autocommit) + decode"),
        ]
    return out


def _peer(kind: Any, opener: Any, env: Env, n: int) -> Any:
    mapping, closer = opener(env)
    return kind(mapping, n, fast=False, closer=closer)
