"""Job rows: every statement the store sends about jobs, each built once.

Writes run in one explicit transaction each: the row's upsert (its version goes up by one) and
the event that records it in the history table, together or not at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    Connection,
    Engine,
    Select,
    bindparam,
    delete,
    func,
    insert,
    literal,
    select,
)
from sqlalchemy.exc import DBAPIError

from ..timefmt import as_utc
from ..timefmt import utcnow as utcnow  # re-exported: the store imports it from here
from .conflicts import MODIFY_ATTEMPTS, lost_race
from .direct import DirectRows
from .engine import begin_statement, write_transaction
from .hot_statements import usable
from .limits import PayloadLimit
from .order import insertion_order
from .schema import Schema
from .versions import compare_and_set, deleted_since, insert_values, upsert

SCAN_BATCH = 2000
"""Rows fetched per round trip when scanning the whole table (keyset pagination on the
insertion order, `jobstore.db.order`; no cursor held open between batches)."""
KEY_BATCH = 500
"""Keys per ``IN (...)`` list: far below every database's limit on bound parameters (SQLite's
is 999 before 3.32), large enough that a batch costs one round trip per few hundred keys."""


def key_batches(keys: Sequence[str], size: int = KEY_BATCH) -> Iterator[list[str]]:
    """``keys`` in lists of at most ``size``, in order."""
    for start in range(0, len(keys), size):
        yield list(keys[start:start + size])


class StoredRow(NamedTuple):
    payload: str
    version: int


class JobWrite(NamedTuple):
    """One job to upsert: the key, its JSON payload and its status column."""

    key: str
    payload: str
    status: str | None


@dataclass(frozen=True)
class JobRow:
    key: str
    payload: str
    status: str | None
    version: int
    created_at: datetime
    updated_at: datetime
    written_by: str


@dataclass(frozen=True)
class JobEvent:
    version: int
    op: str
    payload: str | None
    status: str | None
    at: datetime
    written_by: str


class JobRows:
    """The job table and its history, for one job table."""

    def __init__(self, engine: Engine, schema: Schema, *, keep_connection: bool = False) -> None:
        """``keep_connection``: keep one connection checked out for `get` and `upsert` (a
        store does; `release` gives it back). See `jobstore.db.direct`."""
        self.engine = engine
        self.schema = schema
        self.dialect = engine.dialect.name
        self._begin = begin_statement(engine)
        self.limit = PayloadLimit(engine)
        """The most a payload may take in one write here (`jobstore.db.limits`)."""
        self._direct = (DirectRows(engine, schema, keep_connection=keep_connection)
                        if usable(engine) else None)
        jobs, events = schema.jobs, schema.events
        key = jobs.c.key
        self._get = select(jobs.c.payload, jobs.c.version).where(key == bindparam("key"))
        self._get_many = select(key, jobs.c.payload, jobs.c.version).where(
            key.in_(bindparam("keys", expanding=True))
        )
        self._version = select(jobs.c.version).where(key == bindparam("key"))
        self._count = select(func.count()).select_from(jobs)
        self._full_row = select(*schema.row_columns).where(key == bindparam("key"))
        self._order = insertion_order(jobs, self.dialect)
        self._upsert = upsert(schema, self.dialect)
        self._upsert_each = upsert(schema, self.dialect, returning=False)
        self._versions = select(key, jobs.c.version).where(
            key.in_(bindparam("keys", expanding=True))
        )
        self._record = insert(events)
        self._delete = delete(jobs).where(key == bindparam("key"))
        self._write_at_version = compare_and_set(schema)
        self._deleted_since = deleted_since(schema)
        self._delete_all = delete(jobs)
        self._record_all_deleted = insert(events).from_select(
            ["key", "version", "op", "payload", "status", "at", "written_by"],
            select(
                key,
                jobs.c.version + 1,
                literal("delete"),
                literal(None),
                literal(None),
                bindparam("at", type_=events.c.at.type),
                bindparam("written_by", type_=events.c.written_by.type),
            ),
        )
        self._get_locked = self._get.with_for_update()  # SQLite: BEGIN IMMEDIATE locks already
        self._insert_new = insert(jobs)
        # The version a new row gets, by the rule every insert follows (one index probe).
        self._next_version = select(insert_values(schema)["version"])
        self._history = (
            select(events.c.version, events.c.op, events.c.payload, events.c.status,
                   events.c.at, events.c.written_by)
            .where(events.c.key == bindparam("key"))
            .order_by(events.c.id)
        )

    # reads ---------------------------------------------------------------------------------

    def release(self) -> None:
        """Give back the connection kept for `get` and `upsert`, if any."""
        if self._direct is not None:
            self._direct.release()

    def get(self, key: str) -> StoredRow | None:
        if self._direct is not None:
            found = self._direct.get(key)
            return None if found is None else StoredRow(*found)
        with self.engine.connect() as conn:
            row = conn.execute(self._get, {"key": key}).first()
        return None if row is None else StoredRow(row[0], row[1])

    def get_many(self, keys: Sequence[str]) -> dict[str, StoredRow]:
        found: dict[str, StoredRow] = {}
        with self.engine.connect() as conn:
            for chunk in key_batches(keys):
                for row in conn.execute(self._get_many, {"keys": chunk}):
                    found[row[0]] = StoredRow(row[1], row[2])
        return found

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(self._count).scalar_one())

    def row(self, key: str) -> JobRow | None:
        with self.engine.connect() as conn:
            found = conn.execute(self._full_row, {"key": key}).first()
        return None if found is None else JobRow(*found)

    def scan(self, *, with_payload: bool = True, status: str | None = None,
             batch: int = SCAN_BATCH) -> Iterator[tuple[str, str, int]]:
        """Every row in insertion order as (key, payload, version), streamed batch by batch.

        Each batch is one short statement, so no read transaction stays open while the caller
        works through the rows. Without payload the payload is an empty string.
        """
        jobs = self.schema.jobs
        columns = [jobs.c.key, jobs.c.payload if with_payload else literal(""), jobs.c.version]
        for row in self._in_order(columns, status, batch):
            yield row[1], row[2], row[3]

    def count_by_status(self) -> dict[str | None, int]:
        """How many jobs have each status (None: jobs without one), in one statement."""
        jobs = self.schema.jobs
        query = select(jobs.c.status, func.count()).group_by(jobs.c.status)
        with self.engine.connect() as conn:
            return {row[0]: int(row[1]) for row in conn.execute(query)}

    def scan_rows(self, *, batch: int = SCAN_BATCH) -> Iterator[JobRow]:
        """Every full row in insertion order, streamed batch by batch like `scan`."""
        for row in self._in_order(self.schema.row_columns, None, batch):
            yield JobRow(*row[1:])

    def _in_order(self, columns: Sequence[Any], status: str | None,
                  batch: int) -> Iterator[Any]:
        """Rows of ``columns`` after their insertion-order value, first inserted first, one
        statement per ``batch`` (keyset pagination on that value)."""
        order = self._order
        query: Select[Any] = select(order, *columns).order_by(order).limit(batch)
        if status is not None:
            query = query.where(self.schema.jobs.c.status == status)
        after: int | None = None
        while True:
            page = query if after is None else query.where(order > after)
            with self.engine.connect() as conn:
                rows = conn.execute(page).all()
            yield from rows
            if len(rows) < batch:
                return
            after = rows[-1][0]

    def rows(self, *, status: str | None = None, limit: int | None = None) -> list[JobRow]:
        jobs = self.schema.jobs
        query = select(*self.schema.row_columns).order_by(jobs.c.updated_at.desc(), jobs.c.key)
        if status is not None:
            query = query.where(jobs.c.status == status)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [JobRow(*row) for row in conn.execute(query)]

    def history(self, key: str) -> list[JobEvent]:
        with self.engine.connect() as conn:
            return [JobEvent(*row) for row in conn.execute(self._history, {"key": key})]

    # writes --------------------------------------------------------------------------------

    def upsert(self, key: str, payload: str, status: str | None, written_by: str) -> int:
        """Write one job; its new version."""
        if self._direct is not None:
            return self._direct.upsert(key, payload, status, written_by, utcnow())
        with self.engine.connect() as conn, write_transaction(conn, self._begin):
            return self._upsert_in(conn, JobWrite(key, payload, status), written_by, utcnow())

    def upsert_many(self, writes: Iterable[JobWrite], written_by: str) -> dict[str, int]:
        """Write several jobs in one transaction; each key's new version.

        A handful of statements whatever the number of jobs: one executemany upsert, one
        read of the new versions per `KEY_BATCH` keys, one executemany of history events.
        """
        latest = {write.key: write for write in writes}
        now = utcnow()
        if len(latest) <= 1:
            with self.engine.connect() as conn, write_transaction(conn, self._begin):
                return {w.key: self._upsert_in(conn, w, written_by, now) for w in latest.values()}
        keys = list(latest)
        versions: dict[str, int] = {}
        with self.engine.connect() as conn, write_transaction(conn, self._begin):
            conn.execute(self._upsert_each, [
                {"key": w.key, "payload": w.payload, "status": w.status,
                 "created_at": now, "updated_at": now, "written_by": written_by}
                for w in latest.values()
            ])
            for chunk in key_batches(keys):
                for row in conn.execute(self._versions, {"keys": chunk}):
                    versions[row[0]] = int(row[1])
            conn.execute(self._record, [
                {"key": w.key, "version": versions[w.key], "op": "set", "payload": w.payload,
                 "status": w.status, "at": now, "written_by": written_by}
                for w in latest.values()
            ])
        return versions

    def write_if_version(self, write: JobWrite, written_by: str, expected: int) -> int | None:
        """Write the job only if its row is still at version ``expected`` (a compare-and-set);
        the new version, or None when the row moved on or is gone."""
        now = utcnow()
        if self._direct is not None:
            return self._direct.write_at_version(write.key, write.payload, write.status,
                                                 written_by, now, expected)
        with self.engine.connect() as conn, write_transaction(conn, self._begin):
            changed = conn.execute(self._write_at_version, {
                "at_key": write.key, "expected": expected, "new_payload": write.payload,
                "new_status": write.status, "now": now, "writer": written_by,
            }).rowcount
            if changed != 1:
                return None
            conn.execute(self._record, {
                "key": write.key, "version": expected + 1, "op": "set", "payload": write.payload,
                "status": write.status, "at": now, "written_by": written_by,
            })
        return expected + 1

    def deleted_since(self, key: str, version: int) -> bool:
        """Whether the job was deleted after ``version`` (and perhaps written again since)."""
        with self.engine.connect() as conn:
            return conn.execute(self._deleted_since, {"key": key, "version": version}
                                ).first() is not None

    def insert_if_absent(self, write: JobWrite, written_by: str) -> StoredRow:
        """Insert the job unless the key exists; the row that is stored afterwards."""
        now = utcnow()
        with self.engine.connect() as conn, write_transaction(conn, self._begin):
            existing = conn.execute(self._get, {"key": write.key}).first()
            if existing is not None:
                return StoredRow(existing[0], existing[1])
            version = self._upsert_in(conn, write, written_by, now)
        return StoredRow(write.payload, version)

    def delete(self, key: str, written_by: str) -> StoredRow | None:
        """Delete one job; the row it had, or None if there was none."""
        with self.engine.connect() as conn, write_transaction(conn, self._begin):
            existing = conn.execute(self._get, {"key": key}).first()
            if existing is None:
                return None
            conn.execute(self._delete, {"key": key})
            conn.execute(self._record, {
                "key": key, "version": existing[1] + 1, "op": "delete", "payload": None,
                "status": None, "at": utcnow(), "written_by": written_by,
            })
        return StoredRow(existing[0], existing[1])

    def clear(self, written_by: str) -> int:
        """Delete every job, recording each deletion in the history; how many there were."""
        with self.engine.connect() as conn, write_transaction(conn, self._begin):
            conn.execute(self._record_all_deleted, {"at": utcnow(), "written_by": written_by})
            return int(conn.execute(self._delete_all).rowcount)

    def backfill(self, row: JobRow, written_by: str) -> str:
        """Import one row unless a newer one exists: 'inserted', 'updated' or 'kept'."""
        now = utcnow()
        with self.engine.connect() as conn, write_transaction(conn, self._begin):
            current = conn.execute(self._full_row, {"key": row.key}).first()
            if current is None:
                outcome = "inserted"
            elif as_utc(current.updated_at) >= as_utc(row.updated_at):
                return "kept"
            else:
                outcome = "updated"
            self._upsert_in(conn, JobWrite(row.key, row.payload, row.status), written_by, now,
                            updated_at=row.updated_at)
        return outcome

    def modify(self, key: str, change: Callable[[StoredRow | None], JobWrite],
               written_by: str) -> StoredRow:
        """Read the row under a write lock, store what ``change`` makes of it; the new row.

        One transaction: ``SELECT ... FOR UPDATE`` (SQLite's ``BEGIN IMMEDIATE`` already holds
        the database's write lock), ``change`` called with the row (None if there is none), its
        write stored with its history event, version + 1. An exception from ``change`` rolls
        the transaction back and propagates. A lost race (a deadlock, or another process
        inserting the missing key first) rolls back and runs again, ``change`` included.
        """
        attempt = 0
        while True:
            attempt += 1
            try:
                with self.engine.connect() as conn, write_transaction(conn, self._begin):
                    found = conn.execute(self._get_locked, {"key": key}).first()
                    current = None if found is None else StoredRow(found[0], found[1])
                    write = change(current)
                    now = utcnow()
                    version = (self._insert_in(conn, write, written_by, now) if current is None
                               else self._upsert_in(conn, write, written_by, now))
                return StoredRow(write.payload, version)
            except DBAPIError as exc:
                if attempt >= MODIFY_ATTEMPTS or not lost_race(exc):
                    raise

    def _insert_in(self, conn: Connection, write: JobWrite, written_by: str,
                   now: datetime) -> int:
        """Insert a job that has no row, one version above any it had before (a plain insert:
        a concurrent insert of the key fails here instead of being overwritten)."""
        version = int(conn.execute(self._next_version, {"key": write.key}).scalar_one())
        conn.execute(self._insert_new, {
            "key": write.key, "payload": write.payload, "status": write.status,
            "version": version, "created_at": now, "updated_at": now, "written_by": written_by,
        })
        conn.execute(self._record, {
            "key": write.key, "version": version, "op": "set", "payload": write.payload,
            "status": write.status, "at": now, "written_by": written_by,
        })
        return version

    def _upsert_in(self, conn: Connection, write: JobWrite, written_by: str, now: datetime,
                   updated_at: datetime | None = None) -> int:
        params = {
            "key": write.key, "payload": write.payload, "status": write.status,
            "created_at": now, "updated_at": updated_at or now, "written_by": written_by,
        }
        if self.dialect in ("sqlite", "postgresql"):
            version = int(conn.execute(self._upsert, params).scalar_one())
        else:
            conn.execute(self._upsert, params)
            version = int(conn.execute(self._version, {"key": write.key}).scalar_one())
        conn.execute(self._record, {
            "key": write.key, "version": version, "op": "set", "payload": write.payload,
            "status": write.status, "at": now, "written_by": written_by,
        })
        return version
