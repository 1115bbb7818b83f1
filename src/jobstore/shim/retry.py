"""Database writes that failed while the dict was the authority, waiting to be retried.

Only the latest write of each key is kept: replaying an older one after a newer one would
undo it. A ``clear`` drops everything queued before it and is replayed first.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass
class QueuedWrite:
    """A write the database has not taken: a payload to store, or a deletion (payload None)."""

    payload: str | None
    status: str | None
    attempts: int = 1
    last_error: str | None = None

    @property
    def is_delete(self) -> bool:
        return self.payload is None


class RetryQueue:
    def __init__(self) -> None:
        self._writes: dict[str, QueuedWrite] = {}
        self.clear_pending = False
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._writes) + (1 if self.clear_pending else 0)

    def __contains__(self, key: object) -> bool:
        return key in self._writes

    def get(self, key: str) -> QueuedWrite | None:
        return self._writes.get(key)

    def after_fork(self) -> None:
        """In a forked child: a lock another thread of the parent held at the fork stays held."""
        self._lock = threading.Lock()

    def deletes(self, key: str) -> bool:
        """Whether the key's latest write waiting here removes it (a deletion or a clear)."""
        write = self._writes.get(key)
        return write.is_delete if write is not None else self.clear_pending

    def put(self, key: str, write: QueuedWrite) -> None:
        with self._lock:
            previous = self._writes.pop(key, None)
            if previous is not None:
                write.attempts += previous.attempts
            self._writes[key] = write

    def discard(self, key: str) -> None:
        with self._lock:
            self._writes.pop(key, None)

    def discard_if_same(self, key: str, write: QueuedWrite) -> None:
        """Remove ``write`` once it has landed, unless a newer write of the key replaced it."""
        with self._lock:
            if self._writes.get(key) is write:
                del self._writes[key]

    def put_clear(self) -> None:
        with self._lock:
            self._writes.clear()
            self.clear_pending = True

    def snapshot(self) -> list[tuple[str, QueuedWrite]]:
        with self._lock:
            return list(self._writes.items())

    def deleted_keys(self) -> set[str]:
        with self._lock:
            return {key for key, write in self._writes.items() if write.is_delete}
