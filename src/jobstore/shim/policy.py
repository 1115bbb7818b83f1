"""How reads and writes go: the `Policy` each authority implements, and ``memory``'s own.

The store runs the policy of its stage's authority (``Parts.policy``): `MemoryOnly` here,
`jobstore.shim.dict_first.DictFirst` and `jobstore.shim.db_first.DatabaseFirst` beside it, so
the question "what does a write do in ``shadow`` when the database fails?" has one answer, in
``DictFirst.write``. Every write method runs under the store's lock, taken by the caller.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Generic, TypeVar, cast

from sqlalchemy.exc import DBAPIError

from ..db.jobs import JobWrite, StoredRow
from ..db.redact import reason
from ..exceptions import StoreUnavailableError
from .audit import note_mismatch
from .keys import MISSING, or_missing
from .order import in_local_order
from .parts import Parts
from .reconcile import bring_up_to_date

V = TypeVar("V")
Writes = dict[str, tuple[V, JobWrite]]
"""The latest value of each key in a batch, with its encoded write."""


class Policy(Generic[V]):
    """The reads and writes of one authority; the base holds what they share."""

    def __init__(self, parts: Parts[V]) -> None:
        self.parts = parts

    def get(self, key: str) -> V:
        raise NotImplementedError

    def contains(self, key: object) -> bool:
        if not self.parts.keys.readable(key):
            return False
        try:
            self.get(key)  # type: ignore[arg-type]  # readable: a key of this store's type
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
        if held is not None and held.version is not None and (
                held.version >= row.version or bring_up_to_date(parts, key, held, row)):
            # The same version, or a row read just before this process wrote a newer one (a
            # write-back raced the read), or a newer row whose fields the held object has now
            # taken: the object handed out stays the one tracked.
            return cast(V, held.obj)
        entry = tier.entries.get(key)
        if entry is not None and entry.version == row.version and key in tier.memory:
            if parts.rules.compares_on_read:
                parts.health.count_check()
                if entry.payload != row.payload:
                    note_mismatch(parts, key, "the row differs at the same version")
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
        for key in in_local_order(memory, only_here):
            if key in memory:
                yield key, memory[key]

    def _value_for_scan(self, key: str, row: StoredRow) -> V:
        with self.parts.lock:
            value = self.adopt_row(key, row)
            self.parts.tier.hold(key, value, row.payload, row.version)
            return value


def settle_default(parts: Parts[V], key: str, default: V, payload: str, row: StoredRow) -> V:
    """After an insert-if-absent: the default if it went in, else the job that was there."""
    value = default if row.payload == payload else parts.codec.decode(key, row.payload)
    tier = parts.tier
    if parts.rules.keeps_memory:
        tier.remember(key, value, row.payload, row.version, pending=False)
        tier.evict()
    tier.hold(key, value, row.payload, row.version)
    return value



class MemoryOnly(Policy[V]):
    """``memory``: the legacy dict; deletions are noted for the database to learn later."""

    def get(self, key: str) -> V:
        key = self.parts.keys.for_read(key)
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
