"""``db_primary`` and ``db_only``: the database is the truth, and its failure the caller's.

A write the database did not take raises `WriteRefusedError` when it refused the data (a
constraint, a trigger, a size limit) and `StoreUnavailableError` otherwise
(`jobstore.db.refusal`); reads only the latter.

``db_primary`` keeps the dict current beside it as the rollback net (and compares reads with
it); ``db_only`` keeps no dict.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError

from ..db.jobs import JobWrite
from ..db.redact import reason
from ..db.refusal import write_error
from ..exceptions import StoreUnavailableError
from .keys import MISSING, or_missing
from .policy import Policy, Writes, settle_default
from .reconcile import assign, last_seen

V = TypeVar("V")


class DatabaseFirst(Policy[V]):
    """``db_primary`` and ``db_only``: the database is the truth and its failure the caller's;
    ``db_primary`` keeps the dict current beside it as the rollback net."""

    def get(self, key: str) -> V:
        parts = self.parts
        key = parts.keys.for_read(key)
        parts.ready()
        try:
            row = parts.rows.get(key)
        except DBAPIError as exc:
            parts.health.note_error(exc)
            raise StoreUnavailableError(f"cannot read {key!r}: {reason(exc)}") from exc
        tier = parts.tier
        with parts.lock:
            if row is None:
                tier.forget(key)
                raise KeyError(key)
            value = self.adopt_row(key, row)
            if parts.rules.keeps_memory:
                tier.remember(key, value, row.payload, row.version, pending=False)
                tier.evict()
            tier.hold(key, value, row.payload, row.version)
            return value

    def write(self, key: str, value: V, payload: str, status: str | None) -> None:
        parts = self.parts
        try:
            written, version = assign(parts, key, value, payload, status,
                                      last_seen(parts, key))
        except DBAPIError as exc:
            parts.health.note_error(exc)
            raise write_error(exc, f"write {key!r}") from exc
        self._written(key, value, written, version)

    def write_many(self, writes: Writes[V]) -> None:
        parts = self.parts
        try:
            versions = parts.rows.upsert_many([w for _v, w in writes.values()],
                                              parts.instance_id)
        except DBAPIError as exc:
            parts.health.note_error(exc)
            raise write_error(exc, f"write {len(writes)} jobs") from exc
        for key, (value, w) in writes.items():
            self._written(key, value, w.payload, versions[key])

    def _written(self, key: str, value: V, payload: str, version: int) -> None:
        parts = self.parts
        parts.queue.discard(key)
        if parts.rules.keeps_memory:
            parts.tier.remember(key, value, payload, version, pending=False)
            parts.tier.evict()
        parts.tier.hold(key, value, payload, version)

    def pop(self, key: str, default: Any) -> Any:
        parts = self.parts
        tier = parts.tier
        value = tier.memory.get(key, MISSING) if parts.rules.keeps_memory else MISSING
        try:
            row = parts.rows.delete(key, parts.instance_id)
        except DBAPIError as exc:
            parts.health.note_error(exc)
            raise write_error(exc, f"delete {key!r}") from exc
        held = tier.tracker.get(key)
        tier.forget(key)
        if row is None:
            return or_missing(MISSING, default, key)
        if held is not None and held.version == row.version:
            return held.obj
        if value is not MISSING:
            return value
        return parts.codec.decode(key, row.payload)

    def setdefault(self, key: str, default: V, payload: str, status: str | None) -> V:
        parts = self.parts
        try:
            row = parts.rows.insert_if_absent(JobWrite(key, payload, status), parts.instance_id)
        except DBAPIError as exc:
            parts.health.note_error(exc)
            raise write_error(exc, f"write {key!r}") from exc
        return settle_default(parts, key, default, payload, row)

    def clear(self) -> None:
        parts = self.parts
        try:
            parts.rows.clear(parts.instance_id)
        except DBAPIError as exc:
            parts.health.note_error(exc)
            raise write_error(exc, "clear") from exc
        parts.queue.drop_all()

    def keys(self) -> Iterator[str]:
        parts = self.parts
        parts.ready()
        try:
            for key, _payload, _version in parts.rows.scan(with_payload=False):
                yield key
        except DBAPIError as exc:
            raise StoreUnavailableError(f"cannot list jobs: {reason(exc)}") from exc

    def items(self) -> Iterator[tuple[str, V]]:
        self.parts.ready()
        yield from self._scan_items(set(), set())

    def count(self) -> int:
        parts = self.parts
        parts.check_open()
        try:
            return parts.rows.count()
        except DBAPIError as exc:
            parts.health.note_error(exc)
            raise StoreUnavailableError(f"cannot count jobs: {reason(exc)}") from exc
