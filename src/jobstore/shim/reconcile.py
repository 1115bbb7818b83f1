"""Several servers, one job: a change written onto the row as it is now, and held objects
brought up to date with what other servers wrote.

A write-back sends the difference between what this process last saw of the job (the held
object's baseline) and what the object holds now, under a compare-and-set on the row's
version: when another server wrote in between, the change is merged into its row and tried
again (`jobstore.shim.merge`). A write-back onto a job another server deleted is dropped.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from sqlalchemy.exc import DBAPIError

from ..codec import status_of
from ..db.jobs import JobWrite, StoredRow
from ..exceptions import DecodeError, EncodeError
from ..logs import MERGE, emit
from .merge import Path, dotted, merge, value_at
from .parts import Parts
from .refresh import refresh_in_place
from .retry import Seen as Seen  # re-exported: the policies import it from here
from .tracking import Held

MAX_ATTEMPTS = 20
"""Compare-and-set rounds before a write-back waits for the next sync round."""
DROPPED: Any = object()
"""The outcome of a write onto a job another process deleted."""


def write_change(parts: Parts[Any], key: str, held: Held, payload: str) -> bool:
    """Write ``held``'s change (now encoded as ``payload``) onto the job's row; False when the
    row kept moving and the change waits for the next round. The caller holds the lock and
    handles the database's errors."""
    base = _document(parts, key, held.baseline)
    if base == json.loads(payload):
        held.baseline = payload
        return True
    assert held.version is not None
    outcome = _compare_and_set(parts, key, payload, status_of(held.obj),
                               Seen(held.baseline, held.version), held)
    if outcome is None:
        return False
    if outcome is DROPPED:
        _dropped(parts, key, held)
        return True
    written, version = outcome
    _landed(parts, key, held, written, version, merged=written is not payload)
    return True


def assign(parts: Parts[Any], key: str, value: Any, payload: str, status: str | None,
           seen: Seen | None) -> tuple[str, int]:
    """Write an assignment: merged into the row as it is now when this process saw the job
    before (``seen``), whole when it did not or the job was deleted since (an assignment
    creates the job again); the payload written and its version. A merged result is given
    to ``value`` in place."""
    if seen is not None:
        held = parts.tier.tracker.get(key)
        outcome = _compare_and_set(parts, key, payload, status, seen,
                                   held if held is not None and held.obj is value else None)
        if outcome is not None and outcome is not DROPPED:
            written, version = outcome
            if written is not payload and value is not None:
                refresh_in_place(value, parts.codec.decode(key, written))
            return written, version
    return payload, parts.rows.upsert(key, payload, status, parts.instance_id)


def last_seen(parts: Parts[Any], key: str) -> Seen | None:
    """The newest sight this process had of the job's row: its held object or its dict entry."""
    tier = parts.tier
    held = tier.tracker.get(key)
    entry = tier.entries.get(key)
    seen: Seen | None = None
    if held is not None and held.version is not None:
        seen = Seen(held.baseline, held.version)
    if entry is not None and not entry.unpersisted and entry.version is not None and (
            seen is None or entry.version > seen.version):
        seen = Seen(entry.payload, entry.version)
    return seen


def _compare_and_set(parts: Parts[Any], key: str, payload: str, status: str | None,
                     seen: Seen, held: Held | None = None) -> tuple[str, int] | Any | None:
    """Write ``payload`` if the row is still at the version seen, else merge the change into
    the row and try again: (payload written, version), `DROPPED` when the job was deleted
    since, or None when the row kept moving."""
    candidate, expected = payload, seen.version
    base: Any = None
    mine: Any = None
    conflicts: list[Path] = []
    for _attempt in range(MAX_ATTEMPTS):
        version = parts.rows.write_if_version(JobWrite(key, candidate, status),
                                              parts.instance_id, expected)
        if version is not None:
            if held is not None and held.origin:
                if mine is None:
                    base, mine = _document(parts, key, seen.payload), json.loads(payload)
                conflicts = [*conflicts, *(path for path in held.origin if path not in conflicts
                                           and value_at(mine, path) != value_at(base, path))]
                held.origin = None
            _count_conflicts(parts, key, conflicts)
            return candidate, version
        row = parts.rows.get(key)
        if row is None or parts.rows.deleted_since(key, seen.version):
            return DROPPED
        if mine is None:
            base, mine = _document(parts, key, seen.payload), json.loads(payload)
        result = merge(base, mine, json.loads(row.payload))
        conflicts = result.conflicts
        candidate = json.dumps(result.document, separators=(",", ":"), ensure_ascii=False)
        status = status_of(result.document)
        expected = row.version
    return None


def bring_up_to_date(parts: Parts[Any], key: str, held: Held, row: StoredRow) -> bool:
    """Give the held object the fields another server wrote since this process last saw the
    job, keeping its own changes not written yet; whether it could be done in place.

    A field both changed is noted with the value it had before either change: the object's
    change, written later, wins it, and the write that does so counts the conflict.
    An object whose job was deleted since (and created again) is not the new job's object:
    it is let go, its unwritten change dropped, and False tells the caller to decode anew."""
    try:
        if held.version is not None and parts.rows.deleted_since(key, held.version):
            _let_go(parts, key, held)
            return False
    except DBAPIError as exc:
        parts.health.note_error(exc)
        return False
    try:
        mine = json.loads(parts.codec.encode(held.obj))
        base = _document(parts, key, held.baseline)
        result = merge(base, mine, json.loads(row.payload))
        fresh = parts.codec.decode(key, json.dumps(result.document))
    except (EncodeError, DecodeError, ValueError):
        return False
    if not refresh_in_place(held.obj, fresh):
        return False
    if result.conflicts:
        origin = held.origin if held.origin is not None else {}
        for path in result.conflicts:
            origin.setdefault(path, value_at(base, path))
        held.origin = origin
    held.baseline = row.payload
    held.version = row.version
    return True


def still_the_job(parts: Parts[Any], key: str, held: Held) -> bool:
    """Whether ``held`` is an object of the job the key names now: not deleted since (and
    perhaps created again); when the database cannot say, it is not taken to be."""
    if held.version is None:
        return False
    try:
        return not parts.rows.deleted_since(key, held.version)
    except DBAPIError as exc:
        parts.health.note_error(exc)
        return False


def _let_go(parts: Parts[Any], key: str, held: Held) -> None:
    """The held object of a job deleted since: let go, its unwritten change counted dropped."""
    try:
        changed = parts.codec.encode(held.obj) != held.baseline
    except EncodeError:
        changed = True
    if changed:
        _count_dropped(parts, key)
    parts.tier.tracker.release(key, held)


def _document(parts: Parts[Any], key: str, payload: str | None) -> Any:
    """The JSON document of ``payload`` as this process's model sees it: members the model
    does not know are left out, so a change never reads as their deletion."""
    if payload is None:
        return None
    try:
        return json.loads(parts.codec.encode(parts.codec.decode(key, payload)))
    except (EncodeError, DecodeError):
        return json.loads(payload)


def _landed(parts: Parts[Any], key: str, held: Held, payload: str, version: int,
            merged: bool) -> None:
    tier = parts.tier
    if merged:
        refresh_in_place(held.obj, parts.codec.decode(key, payload))
    held.baseline = parts.codec.encode(held.obj) if merged else payload
    held.version = version
    parts.queue.discard(key)
    if parts.rules.keeps_memory and tier.memory.get(key, held.obj) is held.obj:
        tier.remember(key, held.obj, payload, version, pending=False)
        tier.evict()


def _dropped(parts: Parts[Any], key: str, held: Held) -> None:
    _count_dropped(parts, key)
    tier = parts.tier
    tier.tracker.release(key, held)
    if tier.memory.get(key) is held.obj:
        tier.forget(key)


def _count_dropped(parts: Parts[Any], key: str) -> None:
    parts.health.dropped_writes += 1
    emit(MERGE, logging.WARNING, "merge.dropped",
         "table %(table)r, key %(key)r: an in-place change was dropped: another process "
         "deleted the job", table=parts.table, key=key, instance_id=parts.instance_id)


def _count_conflicts(parts: Parts[Any], key: str, fields: list[Path]) -> None:
    if not fields:
        return
    parts.health.conflicts += len(fields)
    emit(MERGE, logging.INFO, "merge.conflict",
         "table %(table)r, key %(key)r: this process's change of %(fields)s replaced another "
         "process's (the earlier value stays in the history)", table=parts.table, key=key,
         fields=", ".join(map(dotted, fields)), instance_id=parts.instance_id)
