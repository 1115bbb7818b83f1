"""Database writes that failed while the dict was the authority, waiting to be retried.

Only the latest write of each key is kept: replaying an older one after a newer one would
undo it. A ``clear`` drops everything queued before it and is replayed first. With a
`Journal` (every store on a database file or server has one) each write put here is on
local disk, fsynced, before `put` returns.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .journal import Journal


@dataclass(frozen=True)
class Seen:
    """What this process last saw of a job: the row's JSON and its version."""

    payload: str | None
    version: int


@dataclass
class QueuedWrite:
    """A write the database has not taken: a payload to store, or a deletion (payload None).

    ``seen`` is the row the write was based on: it is replayed as the change from that row,
    merged into the row as it is then (DESIGN §2), not as a whole new value."""

    payload: str | None
    status: str | None
    seen: Seen | None = None
    attempts: int = 1
    last_error: str | None = None
    refused: bool = False
    """The database refused the value itself: it is retried alone and holds back no other."""
    seq: int = 0
    """Its record's number in the journal (0: not journaled)."""
    adopted: bool = False
    """Taken from the journal of a store that is gone."""

    @property
    def is_delete(self) -> bool:
        return self.payload is None


@dataclass
class Backlog:
    """Queued writes as a journal holds them: the latest of each key, and a clear to replay."""

    writes: dict[Any, QueuedWrite]
    clear: bool = False
    adopted: dict[Any, QueuedWrite] = field(default_factory=dict)
    """Writes this journal's store had adopted from another's, each replayed in its own right."""

    def __len__(self) -> int:
        return len(self.writes) + len(self.adopted) + (1 if self.clear else 0)


class RetryQueue:
    """This store's own failed writes, and those it adopted from the journal of a store that
    is gone. They are kept apart: an own write of a key supersedes the own write queued before
    it (it holds the whole newer value), never another store's change, which is replayed by
    the merge in its own right."""

    def __init__(self, journal: Journal | None = None) -> None:
        self._writes: dict[Any, QueuedWrite] = {}
        self._adopted: dict[Any, QueuedWrite] = {}
        self.clear_pending = False
        self.journal = journal
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._writes) + len(self._adopted) + (1 if self.clear_pending else 0)

    def __contains__(self, key: object) -> bool:
        return key in self._writes

    def get(self, key: Any) -> QueuedWrite | None:
        return self._writes.get(key)

    def after_fork(self) -> None:
        """In a forked child: the queued writes are the parent's to land (its journal has
        them), and a lock another thread of the parent held at the fork stays held."""
        self._lock = threading.Lock()
        self._writes, self._adopted = {}, {}
        self.clear_pending = False
        if self.journal is not None:
            self.journal.after_fork()

    def deletes(self, key: Any) -> bool:
        """Whether the key's latest write waiting here removes it (a deletion or a clear)."""
        write = self._writes.get(key)
        return write.is_delete if write is not None else self.clear_pending

    def put(self, key: Any, write: QueuedWrite) -> None:
        """Queue ``write`` and keep it on disk; `JournalError` when the disk would not take it
        (it stays queued in memory)."""
        with self._lock:
            previous = self._writes.get(key)
            if previous is not None:
                write.attempts += previous.attempts
                _still_from(write, previous)
            self._writes.pop(key, None)
            self._writes[key] = write
            if self.journal is not None:
                self.journal.record(key, write)

    def put_many(self, writes: list[tuple[Any, QueuedWrite]]) -> None:
        with self._lock:
            for key, write in writes:
                previous = self._writes.get(key)
                if previous is not None:
                    _still_from(write, previous)
            for key, write in writes:
                self._writes.pop(key, None)
                self._writes[key] = write
            if self.journal is not None:
                self.journal.record_many(writes)

    def adopt(self, backlog: Backlog) -> bool:
        """Take a gone store's journal: into this one's, then into the queue; False (nothing
        taken) while a change of one of its keys adopted before still waits."""
        with self._lock:
            writes = [*backlog.adopted.items(), *backlog.writes.items()]
            if any(key in self._adopted for key, _write in writes):
                return False
            for _key, write in writes:
                write.adopted = True
            if self.journal is not None:
                if backlog.clear:
                    self.journal.record_clear()
                self.journal.record_many(writes)
            self.clear_pending = self.clear_pending or backlog.clear
            self._adopted.update(writes)
            return True

    def discard(self, key: Any) -> None:
        """A newer write of the key reached the database: what was queued is superseded."""
        with self._lock:
            write = self._writes.pop(key, None)
        if write is not None and self.journal is not None:
            self.journal.landed([write])

    def landed(self, writes: list[tuple[Any, QueuedWrite]]) -> None:
        """Remove writes that reached the database, unless a newer write of the key replaced
        them meanwhile; the journal marks them taken."""
        with self._lock:
            for key, write in writes:
                mine = self._adopted if write.adopted else self._writes
                if mine.get(key) is write:
                    del mine[key]
        if self.journal is not None:
            self.journal.landed([write for _key, write in writes])

    def put_clear(self) -> None:
        with self._lock:
            self._writes.clear()
            self.clear_pending = True
            if self.journal is not None:
                self.journal.record_clear()

    def cleared(self) -> None:
        """The database took the queued clear."""
        self.clear_pending = False

    def drop_all(self) -> None:
        """The database took a clear: every write queued before it is superseded."""
        with self._lock:
            writes = [*self._writes.values(), *self._adopted.values()]
            self._writes.clear()
            self._adopted.clear()
            self.clear_pending = False
        if self.journal is not None:
            self.journal.landed(writes)

    def snapshot(self) -> list[tuple[Any, QueuedWrite]]:
        """Every queued write, the adopted (older) first."""
        with self._lock:
            return [*self._adopted.items(), *self._writes.items()]

    def deleted_keys(self) -> set[Any]:
        with self._lock:
            return {key for key, write in self._writes.items() if write.is_delete}

    def journaled(self) -> int:
        """Queued writes kept on disk (a clear counts as one)."""
        if self.journal is None:
            return 0
        return sum(1 for _key, w in self.snapshot() if w.seq) + (1 if self.clear_pending else 0)

    def refused(self) -> dict[Any, str | None]:
        """Keys whose value the database refused, with its reason."""
        return {key: w.last_error for key, w in self.snapshot() if w.refused}

    def settle(self) -> None:
        """After a drain: the journal is emptied or compacted to what is still queued."""
        if self.journal is None:
            return
        with self._lock:
            self.journal.settle(Backlog(dict(self._writes), self.clear_pending,
                                        dict(self._adopted)))

    def close(self) -> None:
        """Release the journal, keeping its file when writes are still queued."""
        if self.journal is not None:
            with self._lock:
                self.journal.close(keep=bool(len(self)))


def _still_from(write: QueuedWrite, previous: QueuedWrite) -> None:
    """A write replacing a queued one of its key, with no row seen since, is still the change
    from the row the queued one was based on."""
    if write.seen is None and not write.is_delete:
        write.seen = previous.seen
