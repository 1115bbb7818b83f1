"""Objects handed out to the caller, watched for changes made in place.

Legacy code does ``job = jobs[key]; job.status = "completed"`` and never assigns back. Each
object handed out is remembered with the JSON it had; every round of the loop encodes it again
and writes back any that changed. An object is let go once nothing outside the store refers to
it any more, since nothing can then change it.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator, Mapping
from typing import Any


class Held:
    __slots__ = ("baseline", "obj", "version")

    def __init__(self, obj: Any, baseline: str | None, version: int | None) -> None:
        self.obj = obj
        self.baseline = baseline
        self.version = version


# References a held object has from the store alone while `release_unreferenced` looks at it:
# the Held slot, the loop's local variable and getrefcount's own argument.
_OWN_REFERENCES = 3


class Tracker:
    """The latest object handed out for each key, with the JSON it was last known to have."""

    def __init__(self) -> None:
        self._held: dict[str, Held] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._held)

    def get(self, key: str) -> Held | None:
        return self._held.get(key)

    def hold(self, key: str, obj: Any, baseline: str | None, version: int | None) -> None:
        held = self._held.get(key)
        if held is not None and held.obj is obj:
            if version is not None and held.version is not None and version < held.version:
                return  # a read older than this object's own last write: keep the newer baseline
            held.baseline = baseline
            held.version = version
            return
        self._held[key] = Held(obj, baseline, version)

    def drop(self, key: str) -> None:
        self._held.pop(key, None)

    def clear(self) -> None:
        self._held.clear()

    def after_fork(self) -> None:
        """In a forked child: a lock another thread of the parent held at the fork stays held."""
        self._lock = threading.Lock()

    def snapshot(self) -> list[tuple[str, Held]]:
        with self._lock:
            return list(self._held.items())

    def unreferenced(self, key: str, held: Held, memory: Mapping[str, Any]) -> bool:
        """Whether only the store refers to ``held``'s object: then nothing else can change it."""
        obj = held.obj
        own = _OWN_REFERENCES + (1 if memory.get(key) is obj else 0)
        return sys.getrefcount(obj) <= own

    def release(self, key: str, held: Held) -> None:
        if self._held.get(key) is held:
            del self._held[key]

    def release_if_unreferenced(self, key: str, held: Held, memory: Mapping[str, Any]) -> bool:
        """Forget ``held`` if only the store refers to its object; whether it was forgotten.

        Ask `unreferenced` before encoding the object for the last time instead: asked after,
        a change made between the encoding and the caller dropping its reference is lost.
        """
        if not self.unreferenced(key, held, memory):
            return False
        self.release(key, held)
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._held))
