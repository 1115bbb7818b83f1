"""Replaying the retry queue: a round's second half, after the write-back.

Queued writes land in batches of `DRAIN_BATCH`, the store's lock released between them. A
batch the database fails as a whole is tried again write by write when the failure is the
database refusing a value (`jobstore.db.refusal`): the writes it refuses are set aside, retried
alone in later rounds and reported by key, and never hold back the others. Any other failure
means the database is unavailable: the drain stops and everything stays queued, and journaled.
"""

from __future__ import annotations

import logging
from typing import Any, cast

from sqlalchemy.exc import DBAPIError

from ..db.attempts import unhurried
from ..db.jobs import JobWrite
from ..db.redact import reason
from ..db.refusal import refuses_value
from ..logs import QUEUE, emit
from .journal import JournalError
from .parts import Parts
from .queueing import note_refused
from .reconcile import assign
from .retry import QueuedWrite

DRAIN_BATCH = 200
"""Queued writes per transaction: after an outage the backlog lands in a few commits, and the
lock is released between them so callers' writes are not held behind all of it."""

Batch = list[tuple[Any, QueuedWrite]]


def drain_queue(parts: Parts[Any]) -> None:
    """Retry the queued writes (a clear first, then those of journals no open store holds);
    they stay queued, and journaled, while the database fails."""
    queue = parts.queue
    adopt_orphans(parts)
    if not len(queue):
        parts.health.failing = False
        return
    with parts.lock:
        if queue.clear_pending:
            try:
                with unhurried():  # a large table takes seconds: never a quick attempt
                    parts.rows.clear(parts.instance_id)
            except DBAPIError as exc:
                parts.health.note_error(exc)
                return
            queue.cleared()
    queued = queue.snapshot()
    landed = 0
    batches = _batches(_sendable(parts, queued))
    for batch in batches:
        with parts.lock:
            done = _drain_batch(parts, batch)
        if done is None:
            queue.settle()
            return
        landed += done
    if landed:
        emit(QUEUE, logging.INFO, "queue.replayed",
             "table %(table)r: %(landed)d queued write(s) replayed to the database",
             table=parts.table, landed=landed)
    parts.health.failing = False
    queue.settle()
    with parts.lock:
        parts.tier.evict()  # entries the dict kept only until the database took them may leave


def _sendable(parts: Parts[Any], queued: Batch) -> Batch:
    """The queued writes that fit in one statement; one too large for the database (queued
    before its limit could be read) is not sent, which on MariaDB would only look like an
    outage: it stays queued, refused, until the limit allows it."""
    limit = parts.rows.limit
    sendable = []
    for key, write in queued:
        if write.payload is not None and not limit.fits(write.payload):
            if not write.refused:
                write.refused = True
                write.last_error = (f"larger than the database takes in one write "
                                    f"({limit.most} bytes)")
                note_refused(parts, key, write.last_error)
            continue
        sendable.append((key, write))
    return sendable


def _batches(queued: Batch) -> list[Batch]:
    """The queued writes in batches of `DRAIN_BATCH`; refused ones after them, each alone."""
    others = [(k, w) for k, w in queued if not w.refused]
    batches = [others[start:start + DRAIN_BATCH] for start in range(0, len(others), DRAIN_BATCH)]
    return batches + [[(k, w)] for k, w in queued if w.refused]


def adopt_orphans(parts: Parts[Any]) -> None:
    """Take into this store's queue the journals of stores that died or closed with writes
    the database had not taken."""
    journal = parts.queue.journal
    if journal is None:
        return
    try:
        taken = journal.adopt_orphans(parts.queue.adopt)
    except JournalError as exc:
        emit(QUEUE, logging.WARNING, "queue.adopt_failed",
             "table %(table)r: could not adopt another store's queue journal: %(reason)s",
             table=parts.table, reason=str(exc))
        return
    if taken:
        emit(QUEUE, logging.WARNING, "queue.adopted",
             "table %(table)r: adopted %(writes)d queued write(s) from the journal of a store "
             "that is gone; replaying them", table=parts.table, writes=taken)


def _drain_batch(parts: Parts[Any], batch: Batch) -> int | None:
    """Replay a batch: how many landed, or None when the database is unavailable (they stay
    queued). When it refused a value, the batch is replayed write by write instead."""
    try:
        return _replay(parts, batch)
    except DBAPIError as exc:
        parts.health.note_error(exc)
        if len(batch) == 1 or not refuses_value(exc):
            _failed(parts, batch, exc)
            return None
    landed = 0
    for one in batch:
        try:
            landed += _replay(parts, [one])
        except DBAPIError as exc:
            parts.health.note_error(exc)
            _failed(parts, [one], exc)
            if not refuses_value(exc):
                return None
    return landed


def _failed(parts: Parts[Any], batch: Batch, exc: DBAPIError) -> None:
    """Note the failure on each write still queued; a value refused alone is set aside."""
    queue = parts.queue
    refused = len(batch) == 1 and refuses_value(exc)
    for key, write in batch:
        if queue.get(key) is not write and not write.adopted:
            continue
        write.attempts += 1
        write.last_error = reason(exc)
        if not refused:
            continue
        if write.refused:
            parts.health.last_error = f"the database refused the value of {key!r}: {reason(exc)}"
        else:
            write.refused = True
            note_refused(parts, key, reason(exc))


def _replay(parts: Parts[Any], batch: Batch) -> int:
    """Replay queued writes: a write of a job seen before is merged into the row as it is now
    (DESIGN §2); writes of jobs not seen before go in one statement. One superseded since the
    snapshot (a newer write of the key reached the database first) is not replayed; the
    caller holds the store's lock, so none is superseded while the batch runs."""
    queue = parts.queue
    batch = [(key, w) for key, w in batch if w.adopted or queue.get(key) is w]  # not superseded
    wholes = [(key, w) for key, w in batch if not w.is_delete and w.seen is None]
    for key, write in batch:
        if write.is_delete:
            parts.rows.delete(key, parts.instance_id)
            queue.landed([(key, write)])
        elif write.seen is not None:
            _replay_change(parts, key, write)
    versions = parts.rows.upsert_many(
        [JobWrite(key, cast(str, w.payload), w.status) for key, w in wholes],
        parts.instance_id) if wholes else {}
    queue.landed(wholes)
    for key, write in wholes:
        _persisted(parts, key, cast(str, write.payload), versions[key])
    return len(batch)


def _replay_change(parts: Parts[Any], key: Any, write: QueuedWrite) -> None:
    """A queued change of a job seen before, merged onto its row by the rules of any write."""
    payload = cast(str, write.payload)
    value = parts.tier.memory.get(key) if _is_current(parts, key, payload) else None
    written, version = assign(parts, key, value, payload, write.status, write.seen)
    parts.queue.landed([(key, write)])
    _persisted(parts, key, payload, version, written)


def _is_current(parts: Parts[Any], key: Any, payload: str) -> bool:
    """Whether the dict's entry of ``key`` is the value this queued payload was written from."""
    entry = parts.tier.entries.get(key)
    return key in parts.tier.memory and entry is not None and entry.payload == payload


def _persisted(parts: Parts[Any], key: Any, payload: str, version: int,
               written: str | None = None) -> None:
    tier = parts.tier
    if _is_current(parts, key, payload):
        tier.persisted(key, tier.memory[key], written or payload, version)
