"""Putting a write the database refused into the durable retry queue, as a dict-first call does.

A queued write is on local disk before the call returns (`jobstore.shim.journal`). When even
the disk will not take it, the call does not return as if it had been kept: it raises
`StoreUnavailableError`. The write still waits in memory and lands if the database comes back
while the process lives; it is not durable, and the caller is told so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ..exceptions import StoreUnavailableError
from ..logs import QUEUE, emit
from .journal import JournalError
from .parts import Parts
from .retry import QueuedWrite


def queue_write(parts: Parts[Any], key: Any, write: QueuedWrite) -> None:
    _kept(parts, f"the write of {key!r}", lambda: parts.queue.put(key, write))
    if write.refused:
        note_refused(parts, key, write.last_error)


def note_refused(parts: Parts[Any], key: Any, why: str | None) -> None:
    """A queued write the database will not take for its value, however it was found out:
    named by key in ``last_error`` and in one WARNING."""
    parts.health.last_error = f"the database refused the value of {key!r}: {why}"
    emit(QUEUE, logging.WARNING, "queue.refused",
         "table %(table)r: the database refused the value of %(key)r (%(reason)s): it stays "
         "queued, is retried alone and holds back no other write",
         table=parts.table, key=key, reason=why)


def queue_writes(parts: Parts[Any], writes: list[tuple[Any, QueuedWrite]]) -> None:
    _kept(parts, f"{len(writes)} writes", lambda: parts.queue.put_many(writes))


def queue_clear(parts: Parts[Any]) -> None:
    _kept(parts, "the clear", parts.queue.put_clear)


def _kept(parts: Parts[Any], what: str, put: Callable[[], None]) -> None:
    was_empty = not len(parts.queue)
    try:
        put()
    except JournalError as exc:
        emit(QUEUE, logging.ERROR, "queue.not_journaled",
             "table %(table)r: %(what)s is queued in memory only, not on disk: %(reason)s",
             table=parts.table, what=what, reason=str(exc))
        raise StoreUnavailableError(
            f"the database did not take {what} ({parts.health.last_error}) and the queue "
            f"journal could not keep it ({exc.strerror}); it is retried while this process "
            "lives, but would be lost in a crash") from exc
    if was_empty and parts.health.failing:
        journal = parts.queue.journal
        emit(QUEUE, logging.WARNING, "queue.started",
             "table %(table)r: the database did not take %(what)s (%(reason)s); queuing "
             "writes in %(journal)s until it does", table=parts.table, what=what,
             reason=parts.health.last_error,
             journal=journal.path if journal is not None and journal.path else "memory")
