"""The tables jobstore owns, built in one place, and their creation on first use.

- ``<table>``: one row per job (the columns are part of the contract), and the insertion
  order it is scanned in (`jobstore.db.order`).
- ``<table>_events``: every version of every job, oldest first: the audit trail.
- ``jobstore_*``: the control plane, shared by every job table in the database and keyed by the
  job table's name: the stage row, instance heartbeats, verify requests and their reports, and
  the schema version.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    inspect,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.types import TypeEngine

from ..exceptions import JobStoreError
from .order import order_column, order_key

SCHEMA_VERSION = 3
"""The layout this release creates, and upgrades a job table (and the control tables) to
when it opens it (`jobstore.db.upgrade`). 2: the insertion-order column. 3: the heartbeat's
shadow checks beside its mismatches, per stage and recent, and the time of its last error
(`heartbeat_columns_3`)."""
OLDEST_READER = 1
"""The oldest layout whose release can still use tables of this layout. It is what the
``jobstore`` row of ``jobstore_schema`` holds: every release refuses a database whose row is
above its own `SCHEMA_VERSION`, so this stays 1 while the previous release (which writes
without the order column, and reads only the columns it knows) can run beside this one."""
KEY_MAX = 255
DEFAULT_TABLE = "jobs"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,47}")
"""A table name, matched whole (`re.fullmatch`: `$` would let a trailing newline through)."""

LongText = Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")


class KeyString(TypeDecorator[str]):
    """A job key, compared character for character as a dict compares ``str`` keys.

    MySQL's and MariaDB's default collations fold case and ignore trailing spaces, so "abc",
    "ABC" and "abc " would be one row there; the key columns use a binary collation without
    padding instead (MariaDB ``utf8mb4_nopad_bin``, MySQL 8 ``utf8mb4_0900_bin``).
    """

    impl = String(KEY_MAX)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name in ("mysql", "mariadb"):
            collation = ("utf8mb4_nopad_bin" if getattr(dialect, "is_mariadb", False)
                         else "utf8mb4_0900_bin")
            return dialect.type_descriptor(
                mysql.VARCHAR(KEY_MAX, charset="utf8mb4", collation=collation))
        return dialect.type_descriptor(String(KEY_MAX))


AutoId = BigInteger().with_variant(Integer(), "sqlite")
UtcDateTime = DateTime(timezone=True).with_variant(mysql.DATETIME(timezone=True, fsp=6),
                                                  "mysql", "mariadb")
"""Microseconds on MySQL/MariaDB too (a plain DATETIME keeps whole seconds, which makes a
0.2 s heartbeat look a second old and blurs which of two rows is newer)."""


def validate_table_name(name: str) -> str:
    """``name`` if it is a plain identifier that is not one of the control tables.

    A table name cannot be a bound parameter, so it is checked here instead.
    """
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
        raise JobStoreError(
            f"invalid table name {name!r}: use letters, digits and underscores, "
            "starting with a letter, at most 48 characters"
        )
    if name.lower().startswith("jobstore_"):
        raise JobStoreError(f"invalid table name {name!r}: the jobstore_ prefix is reserved")
    return name


ROW_COLUMNS = ("key", "payload", "status", "version", "created_at", "updated_at", "written_by")


@dataclass(frozen=True)
class Schema:
    """The job table, its history and the control tables, as SQLAlchemy Core tables."""

    metadata: MetaData
    jobs: Table
    events: Table
    versions: Table
    control: Table
    instances: Table
    verify_requests: Table
    verify_reports: Table

    @property
    def name(self) -> str:
        return self.jobs.name

    @property
    def row_columns(self) -> list[Column[Any]]:
        """The job table's fixed columns (DESIGN section 3), in their order, without the
        insertion-order column."""
        return [self.jobs.c[name] for name in ROW_COLUMNS]


def build_schema(table: str = DEFAULT_TABLE) -> Schema:
    validate_table_name(table)
    metadata = MetaData()
    jobs = Table(
        table,
        metadata,
        Column("key", KeyString(), primary_key=True),
        Column("payload", LongText, nullable=False),
        Column("status", String(64), nullable=True, index=True),
        Column("version", Integer, nullable=False),
        Column("created_at", UtcDateTime, nullable=False),
        Column("updated_at", UtcDateTime, nullable=False),
        Column("written_by", String(64), nullable=False),
        order_column(),
        order_key(table),
    )
    events = Table(
        f"{table}_events",
        metadata,
        Column("id", AutoId, primary_key=True, autoincrement=True),
        Column("key", KeyString(), nullable=False),
        Column("version", Integer, nullable=False),
        Column("op", String(8), nullable=False),
        Column("payload", LongText, nullable=True),
        Column("status", String(64), nullable=True),
        Column("at", UtcDateTime, nullable=False),
        Column("written_by", String(64), nullable=False),
        Index(f"ix_{table}_events_key", "key", "id"),
    )
    versions = Table(
        "jobstore_schema",
        metadata,
        Column("component", String(64), primary_key=True),
        Column("version", Integer, nullable=False),
    )
    control = Table(
        "jobstore_control",
        metadata,
        Column("job_table", String(64), primary_key=True),
        Column("stage", String(16), nullable=False),
        Column("changed_at", UtcDateTime, nullable=False),
        Column("changed_by", String(128), nullable=False),
        Column("reason", String(255), nullable=True),
    )
    instances = Table(
        "jobstore_instances",
        metadata,
        Column("instance_id", String(64), primary_key=True),
        Column("job_table", String(64), nullable=False, index=True),
        Column("host", String(255), nullable=False),
        Column("pid", Integer, nullable=False),
        Column("stage", String(16), nullable=False),
        Column("pinned", String(16), nullable=True),
        Column("started_at", UtcDateTime, nullable=False),
        Column("heartbeat_at", UtcDateTime, nullable=False),
        Column("sync_interval", Text, nullable=False),
        Column("memory_items", Integer, nullable=False),
        Column("tracked_items", Integer, nullable=False),
        Column("queued_writes", Integer, nullable=False),
        Column("failed_writes", Integer, nullable=False),
        Column("shadow_mismatches", Integer, nullable=False),
        Column("last_error", Text, nullable=True),
        *heartbeat_columns_3(),
    )
    verify_requests = Table(
        "jobstore_verify_requests",
        metadata,
        Column("id", AutoId, primary_key=True, autoincrement=True),
        Column("job_table", String(64), nullable=False, index=True),
        Column("requested_at", UtcDateTime, nullable=False),
        Column("requested_by", String(128), nullable=False),
    )
    verify_reports = Table(
        "jobstore_verify_reports",
        metadata,
        Column("request_id", BigInteger, primary_key=True),
        Column("instance_id", String(64), primary_key=True),
        Column("reported_at", UtcDateTime, nullable=False),
        Column("report", LongText, nullable=False),
    )
    return Schema(metadata, jobs, events, versions, control, instances, verify_requests,
                  verify_reports)


def heartbeat_columns_3() -> list[Column[Any]]:
    """The heartbeat columns of layout 3, added to an older ``jobstore_instances`` when it is
    opened (`jobstore.db.upgrade`). NULL is allowed: the release before writes rows without
    them."""
    return [Column("shadow_checks", Integer, nullable=True),
            Column("recent_shadow_checks", Integer, nullable=True),
            Column("recent_shadow_mismatches", Integer, nullable=True),
            Column("last_error_at", UtcDateTime, nullable=True)]


def create_schema(engine: Engine, schema: Schema) -> None:
    """Create whatever tables are missing; safe when several processes race to do it."""
    for attempt in range(3):
        try:
            schema.metadata.create_all(engine, checkfirst=True)
            break
        except DBAPIError:
            if attempt == 2 or not _all_tables_exist(engine, schema):
                if attempt == 2:
                    raise
                continue
            break


def _all_tables_exist(engine: Engine, schema: Schema) -> bool:
    existing = set(inspect(engine).get_table_names())
    return all(table.name in existing for table in schema.metadata.sorted_tables)
