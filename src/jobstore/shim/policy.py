"""How reads and writes go, one policy per `Authority`: the dict alone, dict first, DB first.

The store runs the policy of its stage's authority (``Parts.policy``), so the question "what
does a write do in ``shadow`` when the database fails?" has one answer, in `DictFirst.write`.
Every write method runs under the store's lock, taken by the caller.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from typing import Any, Generic, TypeVar, cast

from sqlalchemy.exc import DBAPIError

from ..codec import IMMUTABLE_TYPES
from ..db.jobs import JobWrite, StoredRow
from ..db.redact import reason
from ..exceptions import StoreUnavailableError
from ..stages import Authority
from .audit import shadow_compare
from .keys import MISSING, check_key, or_missing
from .parts import Parts
from .retry import QueuedWrite

V = TypeVar("V")
Writes = dict[str, tuple[V, JobWrite]]
"""The latest value of each key in a batch, with its encoded write."""
_monotonic = time.monotonic


class Policy(Generic[V]):
    """The reads and writes of one authority; the base holds what they share."""

    def __init__(self, parts: Parts[V]) -> None:
        self.parts = parts

    def get(self, key: str) -> V:
        raise NotImplementedError

    def contains(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        try:
            self.get(key)
        except KeyError:
            return False
        return True

    def write(self, key: str, value: V, payload: str, status: str | None) -> None:
        raise NotImplementedError

    def write_many(self, writes: Writes[V]) -> None:
        raise NotImplementedError

    def pop(self, key: str, default: Any) -> Any:
        raise NotImplementedError

    def setdefault(self, key: str, default: V, payload: str, status: str | None) -> V:
        raise NotImplementedError

    def clear(self) -> None:
        raise NotImplementedError

    def keys(self) -> Iterator[str]:
        raise NotImplementedError

    def items(self) -> Iterator[tuple[str, V]]:
        raise NotImplementedError

    def count(self) -> int:
        raise NotImplementedError

    def adopt_row(self, key: str, row: StoredRow) -> V:
        """The object for a row read from the database: the one already handed out or held
        when it is of the same version, else a new one decoded from the row."""
        parts = self.parts
        tier = parts.tier
        held = tier.tracker.get(key)
        if held is not None and held.version is not None and held.version >= row.version:
            # The same version, or a row read just before this process wrote a newer one (a
            # write-back raced the read): the object handed out stays the one tracked.
            return cast(V, held.obj)
        entry = tier.entries.get(key)
        if entry is not None and entry.version == row.version and key in tier.memory:
            if parts.rules.compares_on_read and entry.payload != row.payload:
                parts.health.count_mismatch(key)
                return parts.codec.decode(key, row.payload)
            return tier.memory[key]
        return parts.codec.decode(key, row.payload)

    def _scan_items(self, skip: set[str], only_here: set[str]) -> Iterator[tuple[str, V]]:
        """Every database row as an item, then the keys only this process holds."""
        parts = self.parts
        try:
            for key, payload, version in parts.rows.scan():
                if key in skip:
                    continue
                only_here.discard(key)
                yield key, self._value_for_scan(key, StoredRow(payload, version))
        except DBAPIError as exc:
            raise StoreUnavailableError(f"cannot list jobs: {reason(exc)}") from exc
        memory = parts.tier.memory
        for key in sorted(only_here):
            if key in memory:
                yield key, memory[key]

    def _value_for_scan(self, key: str, row: StoredRow) -> V:
        with self.parts.lock:
            value = self.adopt_row(key, row)
            self.parts.tier.hold(key, value, row.payload, row.version)
            return value


class MemoryOnly(Policy[V]):
    """``memory``: the legacy dict; deletions are noted for the database to learn later."""

    def get(self, key: str) -> V:
        check_key(key)
        self.parts.ready()
        return self.parts.tier.memory[key]

    def write(self, key: str, value: V, payload: str, status: str | None) -> None:
        tier = self.parts.tier
        tier.deleted_in_memory.discard(key)
        tier.remember(key, value, None, None, pending=False)
        tier.evict()

    def write_many(self, writes: Writes[V]) -> None:
        for key, (value, _write) in writes.items():
            self.write(key, value, "", None)

    def pop(self, key: str, default: Any) -> Any:
        tier = self.parts.tier
        value = tier.memory.get(key, MISSING)
        if value is not MISSING:
            tier.forget(key)
            tier.deleted_in_memory.add(key)
        return or_missing(value, default, key)

    def setdefault(self, key: str, default: V, payload: str, status: str | None) -> V:
        memory = self.parts.tier.memory
        if key in memory:
            return memory[key]
        self.write(key, default, payload, status)
        return default

    def clear(self) -> None:
        tier = self.parts.tier
        tier.cleared_in_memory = True
        tier.deleted_in_memory.clear()

    def keys(self) -> Iterator[str]:
        self.parts.ready()
        yield from list(self.parts.tier.memory)

    def items(self) -> Iterator[tuple[str, V]]:
        self.parts.ready()
        yield from list(self.parts.tier.memory.items())

    def count(self) -> int:
        self.parts.check_open()
        return len(self.parts.tier.memory)


class DictFirst(Policy[V]):
    """``dual_write`` and ``shadow``: the dict is the truth, the database is written behind it
    and read on a miss; a write the database refuses is queued and retried."""

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
        check_key(key)
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
        if entry is not None and parts.health.recently_down():
            return tier.memory[key]  # the database just failed: don't make every read wait
        try:
            row = parts.rows.get(key)
        except DBAPIError as exc:
            parts.health.note_error(exc)
            if entry is not None:
                parts.health.note_failing_read(parts.sync_interval)
                return tier.memory[key]
            raise StoreUnavailableError(
                f"{key!r} is not in memory and the database is unreachable: {reason(exc)}"
            ) from exc
        with parts.lock:
            entry = tier.entries.get(key)
            if entry is not None and entry.unpersisted:
                return tier.memory[key]
            if row is None:
                if entry is not None:
                    tier.forget(key)
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
        previous = tier.entries.get(key)
        tier.remember(key, value, payload, previous.version if previous else None, pending=True)
        tier.hold(key, value, payload, None)
        self._write_through(key, value, payload, status)
        tier.evict()

    def _write_through(self, key: str, value: V, payload: str, status: str | None) -> None:
        """The database half of a write: done now, or queued if the database fails."""
        parts = self.parts
        if parts.health.failing and len(parts.queue):
            parts.queue.put(key, QueuedWrite(payload, status, attempts=0))
            return
        try:
            version = parts.rows.upsert(key, payload, status, parts.instance_id)
        except DBAPIError as exc:
            parts.health.note_error(exc)
            parts.health.failing = True
            parts.queue.put(key, QueuedWrite(payload, status, last_error=reason(exc)))
            return
        if key in parts.queue:
            parts.queue.discard(key)
        parts.tier.persisted(key, value, payload, version)

    def write_many(self, writes: Writes[V]) -> None:
        parts = self.parts
        tier = parts.tier
        for key, (value, w) in writes.items():
            previous = tier.entries.get(key)
            tier.remember(key, value, w.payload, previous.version if previous else None,
                          pending=True)
            tier.hold(key, value, w.payload, None)
        versions: dict[str, int] | None = None
        if not (parts.health.failing and len(parts.queue)):
            try:
                versions = parts.rows.upsert_many([w for _v, w in writes.values()],
                                                  parts.instance_id)
            except DBAPIError as exc:
                parts.health.note_error(exc)
                parts.health.failing = True
        if versions is None:
            for key, (_value, w) in writes.items():
                parts.queue.put(key, QueuedWrite(w.payload, w.status, attempts=0))
        else:
            for key, (value, w) in writes.items():
                parts.queue.discard(key)
                tier.persisted(key, value, w.payload, versions[key])
        tier.evict()

    def pop(self, key: str, default: Any) -> Any:
        parts = self.parts
        value = parts.tier.memory.get(key, MISSING)
        parts.tier.forget(key)
        try:
            row = parts.rows.delete(key, parts.instance_id)
        except DBAPIError as exc:
            parts.health.note_error(exc)
            parts.health.failing = True
            parts.queue.put(key, QueuedWrite(None, None, last_error=reason(exc)))
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
            row = parts.rows.insert_if_absent(JobWrite(key, payload, status), parts.instance_id)
        except DBAPIError as exc:
            parts.health.note_error(exc)
            self.write(key, default, payload, status)
            return default
        return _settle_default(parts, key, default, payload, row)

    def clear(self) -> None:
        parts = self.parts
        try:
            parts.rows.clear(parts.instance_id)
        except DBAPIError as exc:
            parts.health.note_error(exc)
            parts.health.failing = True
            parts.queue.put_clear()
            return
        parts.queue.put_clear()
        parts.queue.clear_pending = False

    def keys(self) -> Iterator[str]:
        self.parts.ready()
        yield from self._union_keys()

    def _union_keys(self) -> Iterator[str]:
        """The dict's keys and the database's, each once."""
        parts = self.parts
        deleted = parts.queue.deleted_keys()
        only_here = parts.tier.unpersisted_keys()
        yielded = 0
        try:
            if not parts.queue.clear_pending:
                for key, _payload, _version in parts.rows.scan(with_payload=False):
                    if key in deleted:
                        continue
                    only_here.discard(key)
                    yielded += 1
                    yield key
        except DBAPIError as exc:
            parts.health.note_error(exc)
            if yielded:
                raise StoreUnavailableError(f"cannot list jobs: {reason(exc)}") from exc
            yield from list(parts.tier.memory)
            return
        yield from sorted(only_here)

    def items(self) -> Iterator[tuple[str, V]]:
        """Every job with its value in one streamed scan, not one query per key."""
        parts = self.parts
        parts.ready()
        if parts.queue.clear_pending or parts.health.failing:
            yield from list(parts.tier.memory.items())
            return
        yield from self._scan_items(parts.queue.deleted_keys(), parts.tier.unpersisted_keys())

    def _value_for_scan(self, key: str, row: StoredRow) -> V:
        tier = self.parts.tier
        with self.parts.lock:
            entry = tier.entries.get(key)
            if entry is not None and (entry.unpersisted or (entry.version or 0) >= row.version):
                return tier.memory[key]
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
            return len(parts.tier.memory)


class DatabaseFirst(Policy[V]):
    """``db_primary`` and ``db_only``: the database is the truth and its failure the caller's;
    ``db_primary`` keeps the dict current beside it as the rollback net."""

    def get(self, key: str) -> V:
        check_key(key)
        parts = self.parts
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
            version = parts.rows.upsert(key, payload, status, parts.instance_id)
        except DBAPIError as exc:
            parts.health.note_error(exc)
            raise StoreUnavailableError(f"cannot write {key!r}: {reason(exc)}") from exc
        self._written(key, value, payload, version)

    def write_many(self, writes: Writes[V]) -> None:
        parts = self.parts
        try:
            versions = parts.rows.upsert_many([w for _v, w in writes.values()],
                                              parts.instance_id)
        except DBAPIError as exc:
            parts.health.note_error(exc)
            raise StoreUnavailableError(f"cannot write {len(writes)} jobs: "
                                        f"{reason(exc)}") from exc
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
            raise StoreUnavailableError(f"cannot delete {key!r}: {reason(exc)}") from exc
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
            raise StoreUnavailableError(f"cannot write {key!r}: {reason(exc)}") from exc
        return _settle_default(parts, key, default, payload, row)

    def clear(self) -> None:
        parts = self.parts
        try:
            parts.rows.clear(parts.instance_id)
        except DBAPIError as exc:
            parts.health.note_error(exc)
            raise StoreUnavailableError(f"cannot clear: {reason(exc)}") from exc
        parts.queue.put_clear()
        parts.queue.clear_pending = False

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


def _settle_default(parts: Parts[V], key: str, default: V, payload: str, row: StoredRow) -> V:
    """After an insert-if-absent: the default if it went in, else the job that was there."""
    value = default if row.payload == payload else parts.codec.decode(key, row.payload)
    tier = parts.tier
    if parts.rules.keeps_memory:
        tier.remember(key, value, row.payload, row.version, pending=False)
        tier.evict()
    tier.hold(key, value, row.payload, row.version)
    return value


POLICIES: dict[Authority, type[Policy[Any]]] = {
    Authority.MEMORY: MemoryOnly,
    Authority.DICT: DictFirst,
    Authority.DATABASE: DatabaseFirst,
}
