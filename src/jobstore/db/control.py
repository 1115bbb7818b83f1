"""The control plane: the stage row every process follows, heartbeats, verify requests.

All of it lives in the database the jobs live in, so every process that can reach its jobs can
reach its orders, and a stage change needs no other channel.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Column,
    Engine,
    bindparam,
    case,
    delete,
    func,
    insert,
    select,
    type_coerce,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.types import NullType

from ..exceptions import JobStoreError, StageError
from ..stages import Stage
from ..timefmt import utcnow
from . import row_values as rv
from .engine import begin_statement, write_transaction
from .heartbeat import TIME_COLUMNS, Heartbeat
from .schema import OLDEST_READER, SCHEMA_VERSION, Schema, create_schema
from .stage_push import announce
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


class InvalidStageRow(StageError):
    """The control row holds no stage this release knows (a hand-made ``UPDATE``, a typo, a
    newer release's stage): running stores keep the stage they run, new ones open in their
    seed stage, and ``jobstore stage S --force`` or ``jobstore init`` repairs it."""

    def __init__(self, table: str, value: object, changed_at: object, changed_by: object,
                 why: str) -> None:
        self.value = rv.cut(str(value), 64)
        self.changed_at = changed_at if isinstance(changed_at, datetime) else None
        self.changed_by = rv.cut(str(changed_by), 128)
        super().__init__(
            f"the control row of table {table!r} is invalid: {why} (set by "
            f"{self.changed_by}); set a valid stage with `jobstore stage S --force` or "
            "`jobstore init`")


def _raw(column: Column[Any]) -> Any:
    """A column read as the driver returns it, without SQLAlchemy's conversion (a time
    column of SQLite holds text, and a hand-written one would raise while being fetched)."""
    return type_coerce(column, NullType()).label(column.name)


class ControlPlane:
    """The control tables, seen from one job table."""

    def __init__(self, engine: Engine, schema: Schema) -> None:
        self.engine = engine
        self.schema = schema
        self.job_table = schema.name
        self._begin = begin_statement(engine)
        c = schema.control
        self._read_stage = select(c.c.stage, _raw(c.c.changed_at), c.c.changed_by,
                                  c.c.reason).where(c.c.job_table == bindparam("job_table"))
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
        # One connection at a time: a second one checked out while the first is held would
        # make the pool grow at every store's open (`jobstore.db.store_pool`).
        upgrade(self.engine, self.schema)
        seeded = self._stage_row() is not None
        with self.engine.connect() as conn:
            self._record_layout(conn)
            if not seeded:
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

    def _stage_row(self) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(self._read_stage, {"job_table": self.job_table}).first()

    def stage_row_exists(self) -> bool:
        """Whether the stage row was seeded, valid or not."""
        return self._stage_row() is not None

    def read_stage(self) -> StageState | None:
        """The stage row, or None before one is seeded; `InvalidStageRow` when it holds no
        stage this release knows, or a time that is not one."""
        row = self._stage_row()
        if row is None:
            return None
        value, changed_at, changed_by, reason = row
        try:
            stage = Stage(value)
        except ValueError:
            raise InvalidStageRow(self.job_table, value, changed_at, changed_by,
                                  f"{rv.shown(value)} is not a stage (one of "
                                  f"{', '.join(s.value for s in Stage)})") from None
        try:
            at = rv.moment(changed_at)
        except ValueError as exc:
            raise InvalidStageRow(self.job_table, value, None, changed_by,
                                  f"changed_at {exc}") from None
        return StageState(stage, at, rv.cut(str(changed_by), 128),
                          None if reason is None else rv.cut(str(reason), 255))

    def set_stage(self, stage: Stage, changed_by: str, reason: str | None = None) -> None:
        c = self.schema.control
        values = {"stage": stage.value, "changed_at": utcnow(), "changed_by": changed_by[:128],
                  "reason": (reason or "")[:255] or None}
        with self.engine.connect() as conn, write_transaction(conn, self._begin):
            result = conn.execute(update(c).where(c.c.job_table == self.job_table), values)
            if result.rowcount == 0:
                conn.execute(insert(c), {"job_table": self.job_table, **values})
            announce(conn, self.job_table)

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

    def enter(self, heartbeat: Heartbeat) -> None:
        """A store's first heartbeat, at open: one INSERT (its instance id is new)."""
        with self.engine.connect() as conn:
            _insert_ignoring_race(conn, insert(self.schema.instances),
                                  heartbeat.as_row(self.job_table))

    def forget_instance(self, instance_id: str) -> None:
        self.forget_instances([instance_id])

    def forget_instances(self, instance_ids: list[str]) -> None:
        """Delete these heartbeat rows: a store closed, or instances gone (`liveness`)."""
        i = self.schema.instances
        with self.engine.connect() as conn:
            conn.execute(delete(i).where(i.c.job_table == self.job_table,
                                         i.c.instance_id.in_(instance_ids)))

    def instances(self) -> list[dict[str, Any]]:
        """The heartbeat row of every instance of this job table, by host and pid (read one
        as a `Heartbeat` with `Heartbeat.from_row`)."""
        i = self.schema.instances
        columns = [_raw(c) if c.name in TIME_COLUMNS else c for c in i.columns]
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(*columns).where(i.c.job_table == self.job_table)
                .order_by(i.c.host, i.c.pid)
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

    def newest_requests_after(self, request_id: int) -> tuple[int | None, int | None]:
        """The newest verify request and the newest held-keys request after ``request_id``
        (None where there is none). Only those are answered: an answer made for one is made
        after every request of its kind before it, so it answers them too (`reports`), and a
        thousand requests at once cost one round."""
        r = self.schema.verify_requests
        held = _held_keys(r)
        with self.engine.connect() as conn:
            verify_id, held_id = conn.execute(
                select(func.max(case((~held, r.c.id))), func.max(case((held, r.c.id))))
                .where(r.c.job_table == self.job_table, r.c.id > request_id)).one()
        return (None if verify_id is None else int(verify_id),
                None if held_id is None else int(held_id))

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

    def forget_request(self, request_id: int) -> None:
        """Delete a request's reports once read (held keys: as large as the dicts). The request
        row stays, pruned with the others: deleted, the newest id is given again on SQLite,
        and every store that answered it would take the next request as answered already."""
        rep = self.schema.verify_reports
        with self.engine.connect() as conn, write_transaction(conn, self._begin):
            conn.execute(delete(rep).where(rep.c.request_id == request_id))

    def reports(self, request_id: int, *, held_keys: bool = False) -> dict[str, str]:
        """The answer of each instance to request ``request_id`` (a verify request, or with
        ``held_keys`` one of `request_held_keys`), as the JSON text it wrote: its answer to
        that request or, as it answers only the newest of each kind, to a later one of the
        same kind (made later, so it also answers this one). The text is not parsed here: a
        malformed row is the caller's to show, not an error that hides the other answers."""
        rep, r = self.schema.verify_reports, self.schema.verify_requests
        kind = _held_keys(r)
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(rep.c.instance_id, rep.c.report)
                .join(r, r.c.id == rep.c.request_id)
                .where(r.c.job_table == self.job_table, rep.c.request_id >= request_id,
                       kind if held_keys else ~kind)
                .order_by(rep.c.request_id)).all()
        return {row[0]: row[1] for row in rows}


def _held_keys(requests: Any) -> Any:
    """Whether a verify request row asks for held keys (`request_held_keys`)."""
    return requests.c.requested_by.startswith(HELD_KEYS_REQUEST, autoescape=True)


def _insert_ignoring_race(conn: Any, stmt: Any, params: dict[str, Any]) -> None:
    """Insert a row another process may have inserted a moment before; theirs stands."""
    with contextlib.suppress(IntegrityError):
        conn.execute(stmt, params)
