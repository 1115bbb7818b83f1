"""``dual_write`` and ``shadow``: the dict is the truth and the database is written behind it.

A write the database refuses is queued and retried by the loop; a read the dict cannot answer
(a miss, or an entry older than ``sync_interval``) reads the row. Every call here tries the
database as a quick attempt, and not at all while the circuit is open (`jobstore.shim.circuit`).
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError

from ..codec import IMMUTABLE_TYPES
from ..db.attempts import quick_attempt
from ..db.jobs import JobWrite, StoredRow
from ..db.redact import reason
from ..db.refusal import refuses_value
from ..exceptions import StoreUnavailableError
from .audit import shadow_compare
from .circuit import CALLER_PROBE_EVERY_S, database_back
from .keys import MISSING, or_missing
from .order import in_local_order
from .policy import Policy, Writes, settle_default
from .queueing import queue_clear, queue_write, queue_writes
from .reconcile import Seen, assign, last_seen
from .retry import QueuedWrite
from .tier import Entry

V = TypeVar("V")
_monotonic = time.monotonic


class DictFirst(Policy[V]):

    def get(self, key: str) -> V:
        parts = self.parts
        tier = parts.tier
        entry = tier.entries.get(key)
        if entry is not None and entry.fresh_until >= _monotonic():
            value = tier.memory[key]
            held = tier.tracker.held.get(key)
            shadow = parts.rules.shadow_compares
            if (held is not None and held.obj is value and held.baseline is entry.payload
                    and held.version == entry.version and not shadow
                    and tier.bound is None and parts.loop_started):
                return value  # the hot path: tracked as it is, nothing else to do
            if tier.bound is not None:
                tier.entries.move_to_end(key)
            if shadow and random.random() < parts.shadow_rate:
                shadow_compare(parts, key, entry)
            if type(value) not in IMMUTABLE_TYPES:
                tier.tracker.hold(key, value, entry.payload, entry.version)
            parts.start()
            return value
        key = parts.keys.for_read(key)
        parts.ready()
        return self._load(key)

    def contains(self, key: object) -> bool:
        entry = self.parts.tier.entries.get(key)  # type: ignore[call-overload]
        if entry is not None and entry.fresh_until >= _monotonic():
            return True
        return super().contains(key)

    def _load(self, key: str) -> V:
        """A read the dict cannot answer alone: the database's row, revalidating the dict."""
        parts = self.parts
        tier = parts.tier
        entry = tier.entries.get(key)
        if entry is not None and entry.unpersisted:
            return tier.memory[key]
        if entry is None and parts.queue.deletes(key):
            raise KeyError(key)  # deleted here; the database has not taken the deletion yet
        if entry is not None and not parts.health.available_now():
            return tier.memory[key]  # the circuit is open: the dict answers
        if entry is None and not database_back(parts, CALLER_PROBE_EVERY_S):
            raise StoreUnavailableError(
                f"{key!r} is not in memory and the database is unreachable: "
                f"{parts.health.last_error}")
        with quick_attempt():
            return self._revalidate(key, entry)

    def _revalidate(self, key: str, entry: Entry | None) -> V:
        """The row read (as a quick attempt), and the dict brought up to date with it."""
        parts = self.parts
        tier = parts.tier
        try:
            row = parts.rows.get(key)
        except DBAPIError as exc:
            parts.health.trip(exc)
            if entry is not None:
                return tier.memory[key]
            raise StoreUnavailableError(
                f"{key!r} is not in memory and the database is unreachable: {reason(exc)}"
            ) from exc
        with parts.lock:
            entry = tier.entries.get(key)
            if entry is not None and entry.unpersisted:
                return tier.memory[key]
            if row is None:
                tier.forget(key)  # an object held of the job is let go, entry or not
                raise KeyError(key)
            if entry is not None and entry.version is not None and entry.version >= row.version:
                entry.fresh_until = _monotonic() + parts.sync_interval
                value = tier.memory[key]
            else:
                value = self.adopt_row(key, row)
                tier.remember(key, value, row.payload, row.version, pending=False)
            tier.hold(key, value, row.payload, row.version)
            tier.evict()
            return value

    def write(self, key: str, value: V, payload: str, status: str | None) -> None:
        tier = self.parts.tier
        seen = last_seen(self.parts, key)
        previous = tier.entries.get(key)
        tier.remember(key, value, payload, previous.version if previous else None, pending=True)
        tier.hold(key, value, payload, None)
        self._write_through(key, value, payload, status, seen)
        tier.evict()

    def _write_through(self, key: str, value: V, payload: str, status: str | None,
                       seen: Seen | None) -> None:
        """The database half of a write: done now, or queued if the database fails."""
        parts = self.parts
        if parts.health.queue_first(len(parts.queue)):
            queue_write(parts, key, QueuedWrite(payload, status, seen, attempts=0))
            return
        try:
            with quick_attempt():
                written, version = assign(parts, key, value, payload, status, seen)
        except DBAPIError as exc:
            refused = refuses_value(exc)
            if refused:  # a refused value is no outage: it is set aside alone
                parts.health.note_error(exc)
            else:
                parts.health.trip(exc)
            queue_write(parts, key, QueuedWrite(payload, status, seen, last_error=reason(exc),
                                                refused=refused))
            return
        if key in parts.queue:
            parts.queue.discard(key)
        parts.tier.persisted(key, value, written, version)

    def write_many(self, writes: Writes[V]) -> None:
        parts = self.parts
        tier = parts.tier
        seen = {key: last_seen(parts, key) for key in writes}
        for key, (value, w) in writes.items():
            previous = tier.entries.get(key)
            tier.remember(key, value, w.payload, previous.version if previous else None,
                          pending=True)
            tier.hold(key, value, w.payload, None)
        versions: dict[str, int] | None = None
        if not parts.health.queue_first(len(parts.queue)):
            try:
                with quick_attempt():
                    versions = parts.rows.upsert_many([w for _v, w in writes.values()],
                                                      parts.instance_id)
            except DBAPIError as exc:
                parts.health.trip(exc)
        if versions is None:
            queue_writes(parts, [(key, QueuedWrite(w.payload, w.status, seen[key], attempts=0))
                                 for key, (_value, w) in writes.items()])
        else:
            for key, (value, w) in writes.items():
                parts.queue.discard(key)
                tier.persisted(key, value, w.payload, versions[key])
        tier.evict()

    def pop(self, key: str, default: Any) -> Any:
        parts = self.parts
        value = parts.tier.memory.get(key, MISSING)
        parts.tier.forget(key)
        if not parts.health.available_now():
            queue_write(parts, key, QueuedWrite(None, None, attempts=0))
            return or_missing(value, default, key)
        try:
            with quick_attempt():
                row = parts.rows.delete(key, parts.instance_id)
        except DBAPIError as exc:
            parts.health.trip(exc)
            queue_write(parts, key, QueuedWrite(None, None, last_error=reason(exc)))
            return or_missing(value, default, key)
        parts.queue.discard(key)
        if value is MISSING and row is not None:
            value = parts.codec.decode(key, row.payload)
        return or_missing(value, default, key)

    def setdefault(self, key: str, default: V, payload: str, status: str | None) -> V:
        parts = self.parts
        if parts.health.failing:
            memory = parts.tier.memory
            if key in memory:
                return memory[key]
            self.write(key, default, payload, status)
            return default
        try:
            with quick_attempt():
                row = parts.rows.insert_if_absent(JobWrite(key, payload, status),
                                                  parts.instance_id)
        except DBAPIError as exc:
            parts.health.trip(exc)
            self.write(key, default, payload, status)
            return default
        return settle_default(parts, key, default, payload, row)

    def clear(self) -> None:
        parts = self.parts
        if not parts.health.available_now():
            queue_clear(parts)
            return
        try:
            with quick_attempt():
                parts.rows.clear(parts.instance_id)
        except DBAPIError as exc:
            parts.health.trip(exc)
            queue_clear(parts)
            return
        parts.queue.drop_all()

    def keys(self) -> Iterator[str]:
        self.parts.ready()
        yield from self._union_keys()

    def _union_keys(self) -> Iterator[str]:
        """The dict's keys and the database's, each once; the dict alone would hide the
        database's jobs, so a database that cannot answer is the caller's error."""
        parts = self.parts
        deleted = parts.queue.deleted_keys()
        only_here = parts.tier.unpersisted_keys()
        try:
            if not parts.queue.clear_pending:
                for key, _payload, _version in parts.rows.scan(with_payload=False):
                    if key in deleted:
                        continue
                    only_here.discard(key)
                    yield key
        except DBAPIError as exc:
            parts.health.note_error(exc)
            raise StoreUnavailableError(f"cannot list jobs: {reason(exc)}") from exc
        yield from in_local_order(parts.tier.memory, only_here)

    def items(self) -> Iterator[tuple[str, V]]:
        """Every job with its value in one streamed scan, not one query per key."""
        parts = self.parts
        parts.ready()
        if parts.queue.clear_pending:
            yield from list(parts.tier.memory.items())
            return
        yield from self._scan_items(parts.queue.deleted_keys(), parts.tier.unpersisted_keys())

    def _value_for_scan(self, key: str, row: StoredRow) -> V:
        tier = self.parts.tier
        with self.parts.lock:
            entry = tier.entries.get(key)
            if entry is not None and (entry.unpersisted or (entry.version or 0) >= row.version):
                value = tier.memory[key]
                tier.hold(key, value, entry.payload, entry.version)
                return value
            value = self.adopt_row(key, row)
            tier.hold(key, value, row.payload, row.version)
            return value

    def count(self) -> int:
        parts = self.parts
        parts.check_open()
        if len(parts.queue) or parts.tier.has_unpersisted():
            return sum(1 for _ in self._union_keys())
        try:
            return parts.rows.count()
        except DBAPIError as exc:
            parts.health.note_error(exc)
            raise StoreUnavailableError(f"cannot count jobs: {reason(exc)}") from exc
