"""The statements about a job's version: it only rises, and writes can be conditional on it.

A job deleted and written again does not start at 1, so an object another server still holds
of the old job never passes a compare-and-set against the new one. The first version of a row
comes from its history (the key's newest event), in the same statement as the insert; an
upsert adds one; a compare-and-set writes only over the version a process last saw.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, Update, bindparam, func, literal_column, select, update
from sqlalchemy.dialects import mysql, postgresql, sqlite

from .schema import Schema

ROW_PARAMS = ("key", "payload", "status", "created_at", "updated_at", "written_by")
"""What an insert of a job row binds; ``version`` is computed."""


def insert_values(schema: Schema) -> dict[str, Any]:
    """The VALUES of a job row's insert: bound parameters, and the version after the key's
    newest event (1 for a key never written)."""
    jobs, events = schema.jobs, schema.events
    values: dict[str, Any] = {name: bindparam(name, type_=jobs.c[name].type)
                              for name in ROW_PARAMS}
    # The newest event by id (one probe of the (key, id) index), not max(version): that would
    # read every event of the key.
    newest_id = select(func.max(events.c.id)).where(events.c.key == values["key"])
    newest = (select(events.c.version).where(events.c.id == newest_id.scalar_subquery())
              .scalar_subquery())
    # Literals, not bound values: the hot path binds its parameters by position.
    values["version"] = func.coalesce(newest, literal_column("0")) + literal_column("1")
    return values


def upsert(schema: Schema, dialect: str, *, returning: bool = True) -> Any:
    """Insert the job, or on its key add one to the version and take the new values."""
    jobs = schema.jobs
    values = insert_values(schema)
    if dialect in ("sqlite", "postgresql"):
        module: Any = sqlite if dialect == "sqlite" else postgresql
        stmt = module.insert(jobs).values(values)
        excluded = stmt.excluded
        statement = stmt.on_conflict_do_update(
            index_elements=[jobs.c.key],
            set_={
                "payload": excluded.payload,
                "status": excluded.status,
                "version": jobs.c.version + literal_column("1"),
                "updated_at": excluded.updated_at,
                "written_by": excluded.written_by,
            },
        )
        return statement.returning(jobs.c.version) if returning else statement
    if dialect in ("mysql", "mariadb"):
        stmt = mysql.insert(jobs).values(values)
        return stmt.on_duplicate_key_update(
            payload=stmt.inserted.payload,
            status=stmt.inserted.status,
            # A literal, not a bound 1: PyMySQL's executemany cannot bind parameters after
            # VALUES (...).
            version=jobs.c.version + literal_column("1"),
            updated_at=stmt.inserted.updated_at,
            written_by=stmt.inserted.written_by,
        )
    raise NotImplementedError(dialect)


def compare_and_set(schema: Schema, *, keeping_status: bool = False) -> Update:
    """Write the job only where its row is still at ``expected`` (names other than the
    columns', which an UPDATE reserves for its SET clause).

    ``keeping_status``: the status is matched instead of set, so SQLite (which rewrites an index
    entry whose column is SET even to the value it holds) leaves the status index alone; no row
    when the status differs, and the caller runs the full statement."""
    jobs = schema.jobs
    where = [jobs.c.key == bindparam("at_key"), jobs.c.version == bindparam("expected")]
    status: dict[str, Any] = {"status": bindparam("new_status")}
    if keeping_status:
        where.append(jobs.c.status.is_(status.pop("status")))
    return (update(jobs).where(*where)
            .values(payload=bindparam("new_payload"), **status,
                    version=jobs.c.version + literal_column("1"),
                    updated_at=bindparam("now", type_=jobs.c.updated_at.type),
                    written_by=bindparam("writer")))


def deleted_since(schema: Schema) -> Select[Any]:
    """Whether the key has a deletion in its history after ``version``."""
    events = schema.events
    return (select(literal_column("1")).select_from(events)
            .where(events.c.key == bindparam("key"), events.c.op == "delete",
                   events.c.version > bindparam("version"))
            .limit(1))
