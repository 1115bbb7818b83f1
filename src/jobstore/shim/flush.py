"""What a sync round sends to the database: in-place changes written back, queued writes
retried. Both run from the loop, from ``sync()``, at a stage change and at ``close()``."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy.exc import DBAPIError

from ..codec import status_of
from ..db.attempts import unhurried
from ..db.jobs import JobWrite
from ..db.redact import reason
from ..exceptions import EncodeError, StoreUnavailableError
from .parts import Parts
from .reconcile import write_change
from .retry import QueuedWrite
from .tracking import Held

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
    queues = not parts.rules.db_authoritative and not parts.health.available_now()
    if held.version is None or (entry is not None and entry.pending) or queues:
        parts.policy.write(key, held.obj, payload, status_of(held.obj))
        held.baseline = payload
        return
    try:
        write_change(parts, key, held, payload)
    except DBAPIError as exc:
        if parts.rules.db_authoritative:
            parts.health.note_error(exc)
            raise StoreUnavailableError(f"cannot write {key!r}: {reason(exc)}") from exc
        parts.health.trip(exc)
        parts.policy.write(key, held.obj, payload, status_of(held.obj))
        held.baseline = payload


def drain_queue(parts: Parts[Any]) -> None:
    """Retry the queued writes, a clear first; they stay queued if the database fails."""
    queue = parts.queue
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
            queue.clear_pending = False
    queued = queue.snapshot()
    for start in range(0, len(queued), DRAIN_BATCH):
        with parts.lock:
            if not _drain_batch(parts, queued[start:start + DRAIN_BATCH]):
                return
    parts.health.failing = False
    with parts.lock:
        parts.tier.evict()  # entries the dict kept only until the database took them may leave


def _drain_batch(parts: Parts[Any], batch: list[tuple[str, QueuedWrite]]) -> bool:
    """Replay queued writes; False when the database failed (they stay queued)."""
    queue = parts.queue
    stores = [(key, write) for key, write in batch if not write.is_delete]
    try:
        for key, write in batch:
            if write.is_delete:
                parts.rows.delete(key, parts.instance_id)
                queue.discard_if_same(key, write)
        versions = parts.rows.upsert_many(
            [JobWrite(key, cast(str, w.payload), w.status) for key, w in stores],
            parts.instance_id) if stores else {}
    except DBAPIError as exc:
        parts.health.note_error(exc)
        for key, write in batch:
            if queue.get(key) is write:
                write.attempts += 1
                write.last_error = reason(exc)
        return False
    tier = parts.tier
    for key, write in stores:
        queue.discard_if_same(key, write)
        entry = tier.entries.get(key)
        if key in tier.memory and entry is not None and entry.payload == write.payload:
            tier.persisted(key, tier.memory[key], cast(str, write.payload), versions[key])
    return True
