"""The database an admin command works on, opened without a `JobStore`, and what every
command needs around it: liveness of instances, an identity, errors without passwords."""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, quote_plus

from sqlalchemy import Engine, inspect
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

from ..db.control import ControlPlane
from ..db.engine import create_store_engine, prepare_engine, resolve_url, safe_url, sqlite_path
from ..db.jobs import JobRows, utcnow
from ..db.schema import DEFAULT_TABLE, Schema, build_schema
from ..exceptions import JobStoreError, StoreUnavailableError

STALE_AFTER_INTERVALS = 3
"""An instance whose heartbeat is older than this many of its own sync intervals is stale."""
MIN_STALE_AFTER_S = 1.0
"""...but never sooner than this: a loaded machine can delay a 0.1 s loop by a few tenths."""
POLL_S = 0.1

UrlLike = str | URL | Engine | None


@dataclass(frozen=True)
class Target:
    """One job table in one database, with the statement builders admin commands use."""

    engine: Engine
    schema: Schema
    rows: JobRows
    control: ControlPlane
    url: str
    """The URL with its password hidden."""
    secret: str | None
    """The URL's password, only so that error messages can be scrubbed of it."""

    @property
    def table(self) -> str:
        return self.schema.name

    def scrub(self, text: str) -> str:
        return scrub(text, self.secret)


@dataclass(frozen=True)
class InstanceInfo:
    """One running (or formerly running) store, as its last heartbeat describes it."""

    instance_id: str
    host: str
    pid: int
    stage: str
    pinned: str | None
    started_at: datetime
    heartbeat_at: datetime
    heartbeat_age_s: float
    sync_interval: float
    live: bool
    memory_items: int
    tracked_items: int
    queued_writes: int
    failed_writes: int
    shadow_mismatches: int
    last_error: str | None

    @property
    def name(self) -> str:
        """How a person should read this instance: host and pid."""
        return f"{self.host} pid {self.pid}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "instance_id": self.instance_id, "host": self.host, "pid": self.pid,
            "stage": self.stage, "pinned": self.pinned, "live": self.live,
            "started_at": self.started_at.isoformat(),
            "heartbeat_at": self.heartbeat_at.isoformat(),
            "heartbeat_age_s": round(self.heartbeat_age_s, 3),
            "sync_interval": self.sync_interval, "memory_items": self.memory_items,
            "tracked_items": self.tracked_items, "queued_writes": self.queued_writes,
            "failed_writes": self.failed_writes, "shadow_mismatches": self.shadow_mismatches,
            "last_error": self.last_error,
        }


def as_utc(value: datetime) -> datetime:
    """A datetime read back from the database, in UTC (SQLite returns naive values)."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def stale_after(sync_interval: float) -> float:
    return max(STALE_AFTER_INTERVALS * sync_interval, MIN_STALE_AFTER_S)


def instances(target: Target, now: datetime | None = None) -> list[InstanceInfo]:
    """Every instance of this table with a heartbeat row, live ones first."""
    now = now or utcnow()
    found = []
    for row in target.control.instances():
        beat = as_utc(row["heartbeat_at"])
        age = (now - beat).total_seconds()
        if beat.microsecond == 0:
            # A column made before MySQL/MariaDB kept microseconds holds whole seconds: the
            # heartbeat may be up to a second younger than it reads.
            age = max(age - 1.0, 0.0)
        interval = float(row["sync_interval"])
        error = row["last_error"]
        found.append(InstanceInfo(
            instance_id=row["instance_id"], host=row["host"], pid=int(row["pid"]),
            stage=row["stage"], pinned=row["pinned"], started_at=as_utc(row["started_at"]),
            heartbeat_at=beat, heartbeat_age_s=max(age, 0.0), sync_interval=interval,
            live=age < stale_after(interval), memory_items=int(row["memory_items"]),
            tracked_items=int(row["tracked_items"]), queued_writes=int(row["queued_writes"]),
            failed_writes=int(row["failed_writes"]),
            shadow_mismatches=int(row["shadow_mismatches"]),
            last_error=target.scrub(error) if error else None,
        ))
    found.sort(key=lambda i: (not i.live, i.host, i.pid, i.instance_id))
    return found


def live_instances(target: Target, now: datetime | None = None) -> list[InstanceInfo]:
    return [i for i in instances(target, now) if i.live]


def actor() -> str:
    """Who is running this command, for the control row's ``changed_by``."""
    try:
        user = getpass.getuser()
    except Exception:  # no user name in this environment (a container without passwd)
        user = f"uid {os.getuid()}" if hasattr(os, "getuid") else "unknown"
    return f"jobstore cli: {user}@{socket.gethostname()} pid {os.getpid()}"


def writer_id() -> str:
    """The ``written_by`` of rows an admin command writes (at most 64 characters)."""
    return f"cli:{socket.gethostname()}:{os.getpid()}"[:64]


def scrub(text: str, secret: str | None) -> str:
    """``text`` with every spelling of ``secret`` (plain, URL-quoted) replaced by ``***``."""
    if not secret:
        return text
    for spelling in {secret, quote(secret, safe=""), quote_plus(secret)}:
        text = text.replace(spelling, "***")
    return text


def db_reason(exc: BaseException, secret: str | None = None) -> str:
    """One line about a database error, without its SQL, its parameters or a password."""
    original = getattr(exc, "orig", None)
    lines = [line.strip() for line in str(original if original is not None else exc).splitlines()]
    lines = [line for line in lines if line]
    return scrub((lines[0] if lines else type(exc).__name__)[:300], secret)


def resolve_table(table: str | None) -> str:
    return table or os.environ.get("JOBSTORE_TABLE") or DEFAULT_TABLE


@contextmanager
def open_target(url: UrlLike, table: str | None, *, create: bool = False) -> Iterator[Target]:
    """The database at ``url`` (else ``$JOBSTORE_URL``, else ``sqlite:///jobstore.db``).

    Unless ``create``, a missing SQLite file or missing jobstore tables are an error that says
    to run ``jobstore init``, rather than an empty database made by a typo. Database errors
    inside the block become `StoreUnavailableError` with one line and no password.
    """
    resolved = resolve_url(url)
    shown = safe_url(resolved)
    secret = _password(resolved)
    name = resolve_table(table)
    schema = build_schema(name)
    owns = not isinstance(resolved, Engine)
    engine: Engine
    if isinstance(resolved, Engine):
        engine = resolved.execution_options(isolation_level="AUTOCOMMIT")
        prepare_engine(resolved)
    else:
        if not create:
            _require_sqlite_file(resolved, shown)
        engine = create_store_engine(resolved)
    target = Target(engine, schema, JobRows(engine, schema), ControlPlane(engine, schema),
                    shown, secret)
    try:
        if not create:
            _require_tables(target)
        yield target
    except DBAPIError as exc:
        raise StoreUnavailableError(
            f"database error at {shown}: {db_reason(exc, secret)}") from exc
    except SQLAlchemyError as exc:
        raise JobStoreError(f"database error at {shown}: {db_reason(exc, secret)}") from exc
    finally:
        if owns:
            engine.dispose()


def _password(url: str | URL | Engine) -> str | None:
    try:
        parsed = url.url if isinstance(url, Engine) else make_url(url)
    except ArgumentError:
        return None
    password = parsed.password
    return None if password is None else str(password)


def _require_sqlite_file(url: str | URL, shown: str) -> None:
    try:
        parsed = make_url(url)
    except ArgumentError:
        return  # create_store_engine explains it
    if parsed.get_backend_name() != "sqlite":
        return
    path = sqlite_path(parsed)
    if path is not None and not os.path.exists(path):
        raise JobStoreError(
            f"no SQLite database at {path} ({shown}): run `jobstore init` to create it, "
            "or point --url / JOBSTORE_URL at the service's database"
        )


def _require_tables(target: Target) -> None:
    try:
        present = set(inspect(target.engine).get_table_names())
    except DBAPIError as exc:
        raise StoreUnavailableError(
            f"cannot reach the database at {target.url}: {db_reason(exc, target.secret)}"
        ) from exc
    missing = [t for t in (target.schema.control.name, target.table) if t not in present]
    if missing:
        raise JobStoreError(
            f"no jobstore table {target.table!r} at {target.url} (missing: "
            f"{', '.join(missing)}): run `jobstore init`, or check --table / JOBSTORE_TABLE"
        )
