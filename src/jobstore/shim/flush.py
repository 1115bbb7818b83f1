"""In-place changes written back to the database: from the loop, from ``sync()``, at a stage
change and at ``close()`` (the queued writes are retried by `jobstore.shim.drain`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import DBAPIError

from ..codec import status_of
from ..db.refusal import write_error
from ..exceptions import EncodeError, StoreUnavailableError
from .parts import Parts
from .reconcile import write_change
from .tracking import Held


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
                payload = parts.encode(key, held.obj)
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
            raise write_error(exc, f"write {key!r}") from exc
        parts.health.trip(exc)
        parts.policy.write(key, held.obj, payload, status_of(held.obj))
        held.baseline = payload
