"""The control plane: the stage row every process follows, heartbeats, verify requests.

All of it lives in the database the jobs live in, so every process that can reach its jobs can
reach its orders, and a stage change needs no other channel.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from ..exceptions import JobStoreError
from ..stages import Stage
from ..timefmt import as_utc, utcnow
from .engine import begin_statement, write_transaction
from .schema import OLDEST_READER, SCHEMA_VERSION, Schema, create_schema
from .upgrade import upgrade

COMPONENT = "jobstore"
KEPT_VERIFY_REQUESTS = 100
"""Verify requests kept per job table (with their reports); older ones are deleted."""
HELD_KEYS_REQUEST = "held keys: "
"""How ``requested_by`` of a request begins when it asks each instance which keys it holds
(`jobstore.held_keys`) rather than for a verify."""


@dataclass(frozen=True)
class StageState:
    stage: Stage
    changed_at: datetime
    changed_by: str
    reason: str | None


@dataclass(frozen=True)
class Heartbeat:
    """What one running store reports about itself every round of its loop."""

    instance_id: str
    host: str
    pid: int
    stage: str
    pinned: str | None
    started_at: datetime
    heartbeat_at: datetime
    sync_interval: float
    memory_items: int
    tracked_items: int
    queued_writes: int
    failed_writes: int
    shadow_mismatches: int
    last_error: str | None

    def as_row(self, job_table: str) -> dict[str, Any]:
        row = {f.name: getattr(self, f.name) for f in fields(Heartbeat)}
        row["job_table"] = job_table
        row["sync_interval"] = repr(self.sync_interval)
        return row

    @staticmethod
    def from_row(row: Mapping[Any, Any]) -> Heartbeat:
        """A heartbeat read back: times in UTC, the interval (stored as text) a number."""
        values = {f.name: row[f.name] for f in fields(Heartbeat)}
        values.update(started_at=as_utc(row["started_at"]),
                      heartbeat_at=as_utc(row["heartbeat_at"]),
                      sync_interval=float(row["sync_interval"]))
        return Heartbeat(**values)


class ControlPlane:
    """The control tables, seen from one job table."""

    def __init__(self, engine: Engine, schema: Schema) -> None:
        self.engine = engine
        self.schema = schema
        self.job_table = schema.name
        self._begin = begin_statement(engine)
        c = schema.control
        self._read_stage = select(c.c.stage, c.c.changed_at, c.c.changed_by, c.c.reason).where(
            c.c.job_table == bindparam("job_table")
        )
        i = schema.instances
        self._update_heartbeat = (
            update(i).where(i.c.instance_id == bindparam("b_instance_id"))
        )

    def ensure(self, seed_stage: Stage) -> None:
        """Create the tables if missing, check the schema version, upgrade the job table to
        this release's layout, seed the stage row.

        Two rows of ``jobstore_schema`` say where the database stands: ``jobstore``, the
        oldest layout whose release may still use it (`OLDEST_READER`: every release refuses
        a database whose row is above its own `SCHEMA_VERSION`), and ``layout:<table>``, the
        layout the job table has been brought to.
        """
        create_schema(self.engine, self.schema)
        versions = self.schema.versions
        with self.engine.connect() as conn:
            found = conn.execute(
                select(versions.c.version).where(versions.c.component == COMPONENT)
            ).scalar()
            if found is None:
                _insert_ignoring_race(conn, insert(versions),
                                      {"component": COMPONENT, "version": OLDEST_READER})
            elif found > SCHEMA_VERSION:
                raise JobStoreError(
                    f"the database's jobstore schema is version {found}; this jobstore "
                    f"understands up to {SCHEMA_VERSION}: upgrade jobstore"
                )
            upgrade(self.engine, self.schema)
            self._record_layout(conn)
            if self.read_stage() is None:
                _insert_ignoring_race(conn, insert(self.schema.control), {
                    "job_table": self.job_table, "stage": seed_stage.value,
                    "changed_at": utcnow(), "changed_by": "init", "reason": "seeded",
                })

    def _record_layout(self, conn: Any) -> None:
        versions = self.schema.versions
        component = f"layout:{self.job_table}"
        found = conn.execute(
            select(versions.c.version).where(versions.c.component == component)).scalar()
        if found is None:
            _insert_ignoring_race(conn, insert(versions),
                                  {"component": component, "version": SCHEMA_VERSION})
        elif found < SCHEMA_VERSION:
            conn.execute(update(versions).where(versions.c.component == component)
                         .where(versions.c.version < SCHEMA_VERSION),
                         {"version": SCHEMA_VERSION})

    def layout(self) -> int | None:
        """The layout version the job table was last brought to, or None before this
        release (which records it) opened it."""
        versions = self.schema.versions
        with self.engine.connect() as conn:
            return conn.execute(select(versions.c.version).where(
                versions.c.component == f"layout:{self.job_table}")).scalar()

    def read_stage(self) -> StageState | None:
        with self.engine.connect() as conn:
            row = conn.execute(self._read_stage, {"job_table": self.job_table}).first()
        if row is None:
            return None
        return StageState(Stage.parse(row[0]), row[1], row[2], row[3])

    def set_stage(self, stage: Stage, changed_by: str, reason: str | None = None) -> None:
        c = self.schema.control
        values = {"stage": stage.value, "changed_at": utcnow(), "changed_by": changed_by[:128],
                  "reason": (reason or "")[:255] or None}
        with self.engine.connect() as conn, write_transaction(conn, self._begin):
            result = conn.execute(update(c).where(c.c.job_table == self.job_table), values)
            if result.rowcount == 0:
                conn.execute(insert(c), {"job_table": self.job_table, **values})

    def beat(self, heartbeat: Heartbeat) -> None:
        row = heartbeat.as_row(self.job_table)
        i = self.schema.instances
        with self.engine.connect() as conn:
            updated = conn.execute(
                self._update_heartbeat,
                {"b_instance_id": heartbeat.instance_id,
                 **{k: v for k, v in row.items() if k != "instance_id"}},
            ).rowcount
            if updated == 0:
                _insert_ignoring_race(conn, insert(i), row)

    def forget_instance(self, instance_id: str) -> None:
        i = self.schema.instances
        with self.engine.connect() as conn:
            conn.execute(delete(i).where(i.c.instance_id == instance_id))

    def instances(self) -> list[dict[str, Any]]:
        """The heartbeat row of every instance of this job table, by host and pid (read one
        as a `Heartbeat` with `Heartbeat.from_row`)."""
        i = self.schema.instances
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(i).where(i.c.job_table == self.job_table).order_by(i.c.host, i.c.pid)
            ).mappings().all()
        return [dict(row) for row in rows]

    # verify requests -----------------------------------------------------------------------

    def request_verify(self, requested_by: str) -> int:
        r = self.schema.verify_requests
        with self.engine.connect() as conn, write_transaction(conn, self._begin):
            conn.execute(insert(r), {"job_table": self.job_table, "requested_at": utcnow(),
                                     "requested_by": requested_by[:128]})
            request_id = int(conn.execute(
                select(func.max(r.c.id)).where(r.c.job_table == self.job_table)).scalar_one())
            self._prune_requests(conn)
            return request_id

    def _prune_requests(self, conn: Any) -> None:
        """Drop all but the newest verify requests and their reports: only recent ones are
        ever read."""
        r, rep = self.schema.verify_requests, self.schema.verify_reports
        old = (select(r.c.id).where(r.c.job_table == self.job_table)
               .order_by(r.c.id.desc()).offset(KEPT_VERIFY_REQUESTS))
        old_ids = [int(x) for x in conn.execute(old).scalars()]
        if not old_ids:
            return
        conn.execute(delete(rep).where(rep.c.request_id.in_(old_ids)))
        conn.execute(delete(r).where(r.c.id.in_(old_ids)))

    def latest_request(self) -> int:
        r = self.schema.verify_requests
        with self.engine.connect() as conn:
            found = conn.execute(
                select(func.max(r.c.id)).where(r.c.job_table == self.job_table)).scalar()
        return int(found or 0)

    def requests_after(self, request_id: int) -> list[int]:
        r = self.schema.verify_requests
        with self.engine.connect() as conn:
            return [int(x) for x in conn.execute(
                select(r.c.id).where(r.c.job_table == self.job_table, r.c.id > request_id)
                .order_by(r.c.id)).scalars()]

    def submit_report(self, request_id: int, instance_id: str, report: dict[str, Any]) -> None:
        rep = self.schema.verify_reports
        with self.engine.connect() as conn:
            _insert_ignoring_race(conn, insert(rep), {
                "request_id": request_id, "instance_id": instance_id, "reported_at": utcnow(),
                "report": json.dumps(report),
            })

    def request_held_keys(self, requested_by: str) -> int:
        """A request that each live instance answers with the keys it holds."""
        return self.request_verify(HELD_KEYS_REQUEST + requested_by)

    def asking_held_keys(self, request_ids: list[int]) -> set[int]:
        """Those of ``request_ids`` that ask which keys an instance holds."""
        if not request_ids:
            return set()
        r = self.schema.verify_requests
        with self.engine.connect() as conn:
            return {int(x) for x in conn.execute(select(r.c.id).where(
                r.c.id.in_(request_ids),
                r.c.requested_by.startswith(HELD_KEYS_REQUEST, autoescape=True))).scalars()}

    def forget_request(self, request_id: int) -> None:
        """Delete a request and its reports once read (held keys: as large as the dicts)."""
        r, rep = self.schema.verify_requests, self.schema.verify_reports
        with self.engine.connect() as conn, write_transaction(conn, self._begin):
            conn.execute(delete(rep).where(rep.c.request_id == request_id))
            conn.execute(delete(r).where(r.c.id == request_id))

    def reports(self, request_id: int) -> dict[str, dict[str, Any]]:
        rep = self.schema.verify_reports
        with self.engine.connect() as conn:
            rows = conn.execute(select(rep.c.instance_id, rep.c.report)
                                .where(rep.c.request_id == request_id)).all()
        return {row[0]: json.loads(row[1]) for row in rows}


def _insert_ignoring_race(conn: Any, stmt: Any, params: dict[str, Any]) -> None:
    """Insert a row another process may have inserted a moment before; theirs stands."""
    with contextlib.suppress(IntegrityError):
        conn.execute(stmt, params)
