"""How a process checks its dict against the database: shadow reads, ``verify``, the dump.

A shadow read compares a sampled dict read with the row; ``verify`` judges every key the dict
holds and reads a suspect again under the write lock before calling it drift, so a write that
was in flight is not reported.
"""

from __future__ import annotations

import json
import logging
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError

from ..codec import parse_document
from ..db.attempts import quick_attempt
from ..db.jobs import StoredRow, key_batches
from ..exceptions import DecodeError, EncodeError
from ..logs import AUDIT, emit
from ..snapshot import MemoryDump
from ..timefmt import utcnow
from ..verify import Drift, DriftKind, VerifyReport, diff_documents
from .health import Clears
from .keys import MISSING
from .parts import Parts
from .tier import Entry

V = TypeVar("V")
DRIFTS_NAMED = 10
"""Drifted keys a verify's log record names; the report itself names them all."""


def shadow_compare(parts: Parts[Any], key: str, entry: Entry) -> None:
    """Read the database too and count a mismatch; never raise to the caller."""
    health = parts.health
    if entry.unpersisted or not health.available_now():
        return
    health.count_check()
    try:
        with quick_attempt():
            row = parts.rows.get(key)
    except DBAPIError as exc:
        health.trip(exc)
        return
    if row is None or (row.version == entry.version and row.payload != entry.payload):
        note_mismatch(parts, key, "the database has no row" if row is None
                      else "the row differs at the same version")
    elif row.version > (entry.version or 0):
        entry.fresh_until = 0.0


def note_mismatch(parts: Parts[Any], key: str, why: str) -> None:
    """Count a read whose dict and database disagree, and log it (rate-limited per key)."""
    health = parts.health
    health.count_mismatch(key)
    held_back = parts.mismatch_log.allow(key)
    if held_back is not None:
        emit(AUDIT, logging.WARNING, "audit.mismatch",
             "table %(table)r, key %(key)r: a compared read found the dict and the database "
             "differ (%(why)s); %(mismatches)d mismatch(es) so far, %(held_back)d record(s) "
             "held back since the last", table=parts.table, key=key, why=why,
             mismatches=health.shadow_mismatches, held_back=held_back,
             instance_id=parts.instance_id)


def verify(parts: Parts[Any]) -> VerifyReport:
    """This process's dict compared with the database, key by key."""
    parts.check_open()
    keys = list(parts.tier.memory)
    suspects: list[str] = []
    drifts: list[Drift] = []
    for batch in key_batches(keys):
        rows = _read_rows(parts, batch)
        if rows is None:
            drifts.extend(Drift(k, DriftKind.WRITE_PENDING, detail="database unreachable")
                          for k in batch)
            continue
        suspects.extend(key for key in batch if _judge(parts, key, rows.get(key)) is not None)
    if suspects:
        # Read again under the write lock: no write of this process is in flight then, so a
        # write-back that had not committed at the first read is not called drift.
        with parts.lock:
            rows = _read_rows(parts, suspects) or {}
            for key in suspects:
                drift = _judge(parts, key, rows.get(key))
                if drift is not None:
                    drifts.append(drift)
    identity = parts.identity
    if drifts:
        _log_drift(parts, len(keys), drifts)
    else:
        parts.health.cleared(Clears.VERIFY)  # whatever mismatch was seen has been repaired
    return VerifyReport(
        instance_id=identity.instance_id, stage=parts.stage.value, checked=len(keys),
        drifts=tuple(drifts), queued_writes=len(parts.queue),
        failed_writes=len(parts.tier.unencodable),
        extra={"host": identity.host, "pid": identity.pid},
    )


def _log_drift(parts: Parts[Any], checked: int, drifts: list[Drift],
               shown: int = DRIFTS_NAMED) -> None:
    named = ", ".join(f"{d.key!r} ({d.kind.value})" for d in drifts[:shown])
    more = f" and {len(drifts) - shown} more" if len(drifts) > shown else ""
    emit(AUDIT, logging.WARNING, "audit.drift",
         "table %(table)r: verify found %(drifts)d drift(s) in %(checked)d job(s): "
         "%(keys)s", table=parts.table, drifts=len(drifts), checked=checked,
         keys=named + more, instance_id=parts.instance_id)


def _read_rows(parts: Parts[Any], keys: list[str]) -> dict[str, StoredRow] | None:
    try:
        return parts.rows.get_many(keys)
    except DBAPIError as exc:
        parts.health.note_error(exc)
        return None


def _judge(parts: Parts[Any], key: str, row: StoredRow | None) -> Drift | None:
    tier = parts.tier
    value = tier.memory.get(key, MISSING)
    if value is MISSING:
        return None
    queued = parts.queue.get(key)
    if queued is not None or parts.queue.clear_pending:
        kind = DriftKind.WRITE_FAILED if queued and queued.attempts else DriftKind.WRITE_PENDING
        return Drift(key, kind, detail=queued.last_error if queued else "clear pending")
    try:
        payload = parts.codec.encode(value)
    except EncodeError as exc:
        return Drift(key, DriftKind.UNENCODABLE, detail=str(exc))
    if row is None:
        return Drift(key, DriftKind.MISSING_IN_DB)
    if row.payload == payload:
        return None
    entry = tier.entries.get(key)
    if entry is not None and not entry.unpersisted and row.version > (entry.version or 0):
        # An older copy of a job another process has rewritten since (this one read it
        # earlier): the next read revalidates it, so it is a stale cache, not drift.
        return None
    held = tier.tracker.get(key)
    if held is not None and held.obj is value and held.baseline == row.payload:
        # The database holds what this process last wrote; the object has changed in place
        # since, and the next write-back round (or a stage change, or close) persists it.
        return None
    try:
        parts.codec.decode(key, row.payload)
    except DecodeError as exc:
        return Drift(key, DriftKind.UNDECODABLE, detail=exc.reason)
    memory_doc, db_doc = json.loads(payload), parse_document(row.payload)
    if memory_doc == db_doc:
        return None
    return Drift(key, DriftKind.CHANGED, tuple(diff_documents(memory_doc, db_doc)))


def memory_dump(parts: Parts[Any]) -> MemoryDump:
    """The dict as the document ``jobstore verify --snapshot`` reads."""
    jobs: dict[str, Any] = {}
    unencodable: list[str] = []
    memory = parts.tier.memory
    for key in list(memory):
        value = memory.get(key, MISSING)
        if value is MISSING:
            continue
        try:
            jobs[key] = json.loads(parts.codec.encode(value))
        except EncodeError:
            unencodable.append(key)
    return MemoryDump(jobs, table=parts.table, instance_id=parts.instance_id,
                      stage=parts.stage.value, dumped_at=utcnow().isoformat(),
                      unencodable=tuple(unencodable))
