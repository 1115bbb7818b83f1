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

from ..codec import status_of
from ..db.jobs import JobWrite, StoredRow
from ..exceptions import DecodeError, EncodeError
from .merge import merge
from .parts import Parts
from .refresh import refresh_in_place
from .tracking import Held

log = logging.getLogger("jobstore")
MAX_ATTEMPTS = 20
"""Compare-and-set rounds before a write-back waits for the next sync round."""


def write_change(parts: Parts[Any], key: str, held: Held, payload: str) -> bool:
    """Write ``held``'s change (now encoded as ``payload``) onto the job's row; False when the
    row kept moving and the change waits for the next round. The caller holds the lock and
    handles the database's errors."""
    base = _document(parts, key, held.baseline)
    mine = json.loads(payload)
    if base == mine:
        held.baseline = payload
        return True
    expected = held.version
    assert expected is not None
    candidate, status = payload, status_of(held.obj)
    conflicts: list[str] = []
    for _attempt in range(MAX_ATTEMPTS):
        version = parts.rows.write_if_version(JobWrite(key, candidate, status),
                                              parts.instance_id, expected)
        if version is not None:
            _landed(parts, key, held, candidate, version, merged=candidate is not payload)
            _count_conflicts(parts, key, conflicts)
            return True
        row = parts.rows.get(key)
        if row is None or parts.rows.deleted_since(key, held.version or 0):
            _dropped(parts, key, held)
            return True
        result = merge(base, mine, json.loads(row.payload))
        conflicts = result.conflicts
        candidate = json.dumps(result.document, separators=(",", ":"), ensure_ascii=False)
        status = status_of(result.document)
        expected = row.version
    return False


def bring_up_to_date(parts: Parts[Any], key: str, held: Held, row: StoredRow) -> bool:
    """Give the held object the fields another server wrote since this process last saw the
    job, keeping its own changes not written yet; whether it could be done in place."""
    try:
        mine = json.loads(parts.codec.encode(held.obj))
        document = merge(_document(parts, key, held.baseline), mine,
                         json.loads(row.payload)).document
        fresh = parts.codec.decode(key, json.dumps(document))
    except (EncodeError, DecodeError, ValueError):
        return False
    if not refresh_in_place(held.obj, fresh):
        return False
    held.baseline = row.payload
    held.version = row.version
    return True


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
    parts.health.dropped_writes += 1
    log.warning("an in-place change of %r was dropped: another process deleted the job", key)
    tier = parts.tier
    tier.tracker.release(key, held)
    if tier.memory.get(key) is held.obj:
        tier.forget(key)


def _count_conflicts(parts: Parts[Any], key: str, fields: list[str]) -> None:
    if not fields:
        return
    parts.health.conflicts += len(fields)
    log.info("%r: this process's change of %s replaced another process's (the earlier value "
             "stays in the history)", key, ", ".join(fields))
