"""Objects handed out to the caller, watched for changes made in place.

Legacy code does ``job = jobs[key]; job.status = "completed"`` and never assigns back. Each
object handed out is remembered with the JSON it had; every round of the loop encodes it again
and writes back any that changed. An object is let go once nothing outside the store refers to
it any more, since nothing can then change it.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Mapping
from typing import Any


class Held:
    """One object handed out: the JSON and row version it was last known to have, and, for
    fields it changed that another process changed too before this one wrote them (seen when
    a read brought the object up to date), the value they had before either change."""

    __slots__ = ("baseline", "obj", "origin", "version")

    def __init__(self, obj: Any, baseline: str | None, version: int | None) -> None:
        self.obj = obj
        self.baseline = baseline
        self.version = version
        self.origin: dict[tuple[str, ...], Any] | None = None


# References a held object has from the store alone while `unreferenced` looks at it:
# the Held slot, the loop's local variable and getrefcount's own argument.
_OWN_REFERENCES = 3


class Tracker:
    """The latest object handed out for each key, with the JSON it was last known to have."""

    def __init__(self) -> None:
        self.held: dict[str, Held] = {}
        """Read without the lock on the hot path; changed only under the store's lock."""
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.held)

    def get(self, key: str) -> Held | None:
        return self.held.get(key)

    def hold(self, key: str, obj: Any, baseline: str | None, version: int | None) -> None:
        held = self.held.get(key)
        if held is not None and held.obj is obj:
            if version is not None and held.version is not None and version < held.version:
                return  # a read older than this object's own last write: keep the newer baseline
            held.baseline = baseline
            held.version = version
            return
        self.held[key] = Held(obj, baseline, version)

    def drop(self, key: str) -> None:
        self.held.pop(key, None)

    def clear(self) -> None:
        self.held.clear()

    def after_fork(self) -> None:
        """In a forked child: a lock another thread of the parent held at the fork stays held."""
        self._lock = threading.Lock()

    def snapshot(self) -> list[tuple[str, Held]]:
        with self._lock:
            return list(self.held.items())

    def unreferenced(self, key: str, held: Held, memory: Mapping[str, Any]) -> bool:
        """Whether only the store refers to ``held``'s object: then nothing else can change it."""
        obj = held.obj
        own = _OWN_REFERENCES + (1 if memory.get(key) is obj else 0)
        return sys.getrefcount(obj) <= own

    def release(self, key: str, held: Held) -> None:
        if self.held.get(key) is held:
            del self.held[key]
