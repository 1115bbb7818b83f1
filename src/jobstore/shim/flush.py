"""What a sync round sends to the database: in-place changes written back, queued writes
retried. Both run from the loop, from ``sync()``, at a stage change and at ``close()``."""

from __future__ import annotations

import logging
from typing import Any, cast

from sqlalchemy.exc import DBAPIError

from ..codec import status_of
from ..db.jobs import JobWrite
from ..db.redact import reason
from ..exceptions import EncodeError, StoreUnavailableError
from .journal import JournalError
from .parts import Parts
from .reconcile import assign, write_change
from .retry import QueuedWrite
from .tracking import Held

log = logging.getLogger("jobstore")
DRAIN_BATCH = 200
"""Queued writes per transaction: after an outage the backlog lands in a few commits, and the
lock is released between them so callers' writes are not held behind all of it."""


def write_back(parts: Parts[Any]) -> int:
    """Write every handed-out object whose JSON changed; how many could not be written."""
    if not parts.rules.writes_db:
        return 0
    tier = parts.tier
    tracker = tier.tracker
    failures = 0
    for key, held in tracker.snapshot():
        with parts.lock:
            if tracker.get(key) is not held:
                continue
            # Asked before the encoding: once nothing outside the store refers to the object
            # nothing can change it, so what is encoded next is its last state.
            unreferenced = tracker.unreferenced(key, held, tier.memory)
            try:
                payload = parts.codec.encode(held.obj)
            except EncodeError as exc:
                tier.unencodable.add(key)
                parts.health.last_error = str(exc)
                failures += 1
                continue
            tier.unencodable.discard(key)
            if payload != held.baseline:
                try:
                    write_one(parts, key, held, payload)
                except StoreUnavailableError:
                    failures += 1
                    continue
            if unreferenced:
                tracker.release(key, held)
    return failures


def write_one(parts: Parts[Any], key: str, held: Held, payload: str) -> None:
    """A changed object: merged onto its row when the row it came from is known, else written
    by the stage's policy (a job this process created and the database has not taken yet)."""
    entry = parts.tier.entries.get(key)
    if held.version is None or (entry is not None and entry.pending):
        parts.policy.write(key, held.obj, payload, status_of(held.obj))
        held.baseline = payload
        return
    try:
        write_change(parts, key, held, payload)
    except DBAPIError as exc:
        parts.health.note_error(exc)
        if parts.rules.db_authoritative:
            raise StoreUnavailableError(f"cannot write {key!r}: {reason(exc)}") from exc
        parts.health.failing = True
        parts.policy.write(key, held.obj, payload, status_of(held.obj))
        held.baseline = payload


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
                parts.rows.clear(parts.instance_id)
            except DBAPIError as exc:
                parts.health.note_error(exc)
                return
            queue.cleared()
    queued = queue.snapshot()
    landed = 0
    for start in range(0, len(queued), DRAIN_BATCH):
        with parts.lock:
            done = _drain_batch(parts, queued[start:start + DRAIN_BATCH])
        if done is None:
            queue.settle()
            return
        landed += done
    if landed:
        log.info("%d queued write(s) replayed to the database", landed)
    parts.health.failing = False
    queue.settle()
    with parts.lock:
        parts.tier.evict()  # entries the dict kept only until the database took them may leave


def adopt_orphans(parts: Parts[Any]) -> None:
    """Take into this store's queue the journals of stores that died or closed with writes
    the database had not taken."""
    journal = parts.queue.journal
    if journal is None:
        return
    queue = parts.queue

    try:
        taken = journal.adopt_orphans(queue.adopt)
    except JournalError as exc:
        log.warning("could not adopt another store's queue journal: %s", exc)
        return
    if taken:
        log.warning("adopted %d queued write(s) from a store that is gone; replaying them", taken)


def _drain_batch(parts: Parts[Any], batch: list[tuple[str, QueuedWrite]]) -> int | None:
    """Replay queued writes: how many landed, or None when the database failed (they stay
    queued). A write of a job seen before is merged into the row as it is now (DESIGN §2);
    writes of jobs not seen before go in one statement."""
    queue = parts.queue
    wholes = [(key, w) for key, w in batch if not w.is_delete and w.seen is None]
    try:
        for key, write in batch:
            if write.is_delete:
                parts.rows.delete(key, parts.instance_id)
                queue.landed([(key, write)])
            elif write.seen is not None:
                _replay_change(parts, key, write)
        versions = parts.rows.upsert_many(
            [JobWrite(key, cast(str, w.payload), w.status) for key, w in wholes],
            parts.instance_id) if wholes else {}
    except DBAPIError as exc:
        parts.health.note_error(exc)
        for key, write in batch:
            if queue.get(key) is write:
                write.attempts += 1
                write.last_error = reason(exc)
        return None
    queue.landed(wholes)
    for key, write in wholes:
        _persisted(parts, key, cast(str, write.payload), versions[key])
    return len(batch)


def _replay_change(parts: Parts[Any], key: str, write: QueuedWrite) -> None:
    """A queued change of a job seen before, merged onto its row by the rules of any write."""
    payload = cast(str, write.payload)
    value = parts.tier.memory.get(key) if _is_current(parts, key, payload) else None
    written, version = assign(parts, key, value, payload, write.status, write.seen)
    parts.queue.landed([(key, write)])
    _persisted(parts, key, payload, version, written)


def _is_current(parts: Parts[Any], key: str, payload: str) -> bool:
    """Whether the dict's entry of ``key`` is the value this queued payload was written from."""
    entry = parts.tier.entries.get(key)
    return key in parts.tier.memory and entry is not None and entry.payload == payload


def _persisted(parts: Parts[Any], key: str, payload: str, version: int,
               written: str | None = None) -> None:
    tier = parts.tier
    if _is_current(parts, key, payload):
        tier.persisted(key, tier.memory[key], written or payload, version)
