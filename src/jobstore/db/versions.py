"""A job's version only rises: a new row starts after the last version its key ever had.

A job deleted and written again does not start at 1, so an object another server still holds
of the old job never passes a compare-and-set against the new one. The first version of a row
comes from its history (the key's newest event), in the same statement as the insert.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, func, literal_column, select

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
