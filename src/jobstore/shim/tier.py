"""The dict tier: the values the process holds, what the database knows of each, and its bound.

``memory`` is the app's dict itself (a legacy dict passed in is used as it is); ``entries``
says, per key, which payload and row version the database has, whether a write is still on its
way there, and when a read should check the database again. The tracker remembers the objects
handed out, so changes made to them in place can be written back.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import MutableMapping
from typing import Any, Generic, TypeVar

from ..codec import IMMUTABLE_TYPES
from .retry import RetryQueue
from .tracking import Tracker

V = TypeVar("V")
NEVER = math.inf


class Entry:
    """The database's view of one dict entry.

    ``payload`` is the JSON last written to, or read from, the database; ``version`` its row
    version; ``fresh_until`` the monotonic time after which a read checks the database again;
    ``pending`` is true while the dict holds a write the database has not taken yet.
    """

    __slots__ = ("fresh_until", "payload", "pending", "version")

    def __init__(self, payload: str | None, version: int | None, fresh_until: float,
                 pending: bool) -> None:
        self.payload = payload
        self.version = version
        self.fresh_until = fresh_until
        self.pending = pending

    @property
    def unpersisted(self) -> bool:
        """The database does not hold this entry's value (yet)."""
        return self.pending or self.version is None

    def __repr__(self) -> str:
        return (f"Entry(version={self.version}, pending={self.pending}, "
                f"fresh_until={self.fresh_until:.3f})")


class DictTier(Generic[V]):
    """The dict, its entries and the objects handed out, kept in step with one another."""

    def __init__(self, memory: MutableMapping[str, V], bound: int | None, sync_interval: float,
                 queue: RetryQueue) -> None:
        self.memory = memory
        self.entries: OrderedDict[str, Entry] = OrderedDict()
        self.tracker = Tracker()
        self.bound = bound
        self.sync_interval = sync_interval
        self.queue = queue
        self.writes_db = False
        """Set by the stage: whether handed-out objects are tracked and entries revalidated."""
        self.unencodable: set[str] = set()
        """Keys whose value no longer encodes: their change cannot be written as it is."""
        self.deleted_in_memory: set[str] = set()
        self.cleared_in_memory = False
        """Deletions made in ``memory``, replayed to the database once the fleet moves on."""

    def __len__(self) -> int:
        return len(self.entries)

    def remember(self, key: str, value: Any, payload: str | None, version: int | None,
                 pending: bool) -> None:
        """Note what the database holds of ``key`` now that the dict holds ``value``."""
        self.memory[key] = value
        fresh = NEVER if (pending or not self.writes_db) else (
            time.monotonic() + self.sync_interval)
        entry = self.entries.get(key)
        if entry is None:
            self.entries[key] = Entry(payload, version, fresh, pending)
        else:
            entry.payload, entry.version, entry.fresh_until, entry.pending = (
                payload, version, fresh, pending)
            if self.bound is not None:
                self.entries.move_to_end(key)

    def persisted(self, key: str, value: Any, payload: str, version: int) -> None:
        """The database took ``value`` as ``version``: the entry and held object know it."""
        entry = self.entries.get(key)
        if entry is not None and self.memory.get(key) is value:
            entry.payload = payload
            entry.version = version
            entry.pending = False
            entry.fresh_until = time.monotonic() + self.sync_interval
        held = self.tracker.get(key)
        if held is not None and held.obj is value:
            held.baseline = payload
            held.version = version

    def hold(self, key: str, value: Any, payload: str | None, version: int | None) -> None:
        """Track ``value`` for in-place changes, where the stage writes the database. An
        object held before for the key is let go, as a dict lets it go when the job is
        replaced: changing it writes nothing."""
        if not self.writes_db:
            return
        if type(value) in IMMUTABLE_TYPES:
            self.tracker.drop(key)
        else:
            self.tracker.hold(key, value, payload, version)

    def forget(self, key: str) -> None:
        self.memory.pop(key, None)
        self.entries.pop(key, None)
        self.tracker.drop(key)
        self.unencodable.discard(key)

    def clear(self) -> None:
        self.memory.clear()
        self.entries.clear()
        self.tracker.clear()

    def drop_values(self) -> None:
        """Empty the dict where the stage keeps none; objects handed out stay tracked."""
        self.memory.clear()
        self.entries.clear()

    def unpersisted_keys(self) -> set[str]:
        return {key for key, entry in list(self.entries.items()) if entry.unpersisted}

    def has_unpersisted(self) -> bool:
        return any(entry.unpersisted for entry in list(self.entries.values()))

    def evict(self) -> None:
        """Drop least recently used entries beyond the bound, only those safe in the DB."""
        bound = self.bound
        if bound is None or len(self.entries) <= bound or not self.writes_db:
            return
        for key in list(self.entries):
            if len(self.entries) <= bound:
                return
            entry = self.entries[key]
            if entry.unpersisted or key in self.queue:
                continue
            del self.entries[key]
            self.memory.pop(key, None)
