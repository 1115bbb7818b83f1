"""`modify`: an atomic read-modify-write of one job, where ``job.n += 1`` from several processes
would lose updates.

Where the stage writes the database, ``fn`` runs inside one transaction that holds the row's
lock, against the row as it is (`jobstore.db.jobs.JobRows.modify`); in ``memory`` it runs under
the store's lock against the dict. Either way it gets a copy decoded from the stored JSON, so
an object the app holds is never changed by ``fn``. Once the result is stored, an object the
app holds of the job is brought up to date with it and stays the job's object.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError

from ..codec import status_of
from ..db.jobs import JobWrite, StoredRow
from ..db.refusal import write_error
from ..exceptions import StoreUnavailableError
from .circuit import CALLER_PROBE_EVERY_S, database_back
from .drain import drain_queue
from .flush import write_one
from .keys import MISSING, check_key
from .parts import Parts
from .reconcile import still_the_job
from .refresh import refresh_in_place

V = TypeVar("V")


def modify(parts: Parts[V], key: str, fn: Callable[[V], V], default: Any = MISSING) -> V:
    """Store ``fn(copy of the job)`` atomically and return it; see `JobStore.modify`."""
    check_key(key)
    parts.ready()
    if parts.rules.writes_db and not database_back(parts, CALLER_PROBE_EVERY_S):
        raise StoreUnavailableError(
            f"cannot modify {key!r}: the database is unreachable: {parts.health.last_error}")
    with parts.lock:
        if not parts.rules.writes_db:
            return _in_memory(parts, key, fn, default)
        _settle(parts, key)
        made: list[V] = []
        gone: list[bool] = []

        def change(row: StoredRow | None) -> JobWrite:
            made.clear()
            if row is None and default is MISSING:
                gone.append(True)
                raise KeyError(key)
            made.append(fn(_current(parts, key, row, default)))
            return JobWrite(key, parts.encode(key, made[0]), status_of(made[0]))

        try:
            stored = parts.rows.modify(key, change, parts.instance_id)
        except DBAPIError as exc:
            parts.health.note_error(exc)
            raise write_error(exc, f"modify {key!r}") from exc
        except KeyError:
            if gone:  # the row is not there (another server deleted it): nor is the job here
                parts.tier.forget(key)
            raise
        return _adopt(parts, key, made[0], stored)


def _current(parts: Parts[V], key: str, row: StoredRow | None, default: Any) -> V:
    """A fresh copy of the job as the row has it, or of ``default`` for a missing row."""
    if row is not None:
        return parts.codec.decode(key, row.payload)
    return parts.codec.decode(key, parts.codec.encode(default))


def _settle(parts: Parts[V], key: str) -> None:
    """Before the row is read: this process's own unwritten changes to the job go first.

    An in-place change to the held object is written (as the loop would), and a write of the
    job waiting in the retry queue is replayed; if it cannot be, the database is not taking
    writes and `modify` does not queue, so it raises.
    """
    held = parts.tier.tracker.get(key)
    if held is not None:
        payload = parts.encode(key, held.obj)
        if payload != held.baseline:
            write_one(parts, key, held, payload)
    queue = parts.queue
    if key in queue or queue.clear_pending:
        drain_queue(parts)
        if key in queue or queue.clear_pending:
            raise StoreUnavailableError(
                f"cannot modify {key!r}: the database has not taken its earlier writes "
                f"({parts.health.last_error})")


def _adopt(parts: Parts[V], key: str, value: V, stored: StoredRow) -> V:
    """The stored value becomes the job's state here: an object the app holds is brought up to
    date in place and stays the job's object (else ``value`` takes its place), in the dict
    where the stage keeps one, and tracked; the job's object is returned."""
    tier = parts.tier
    held = tier.tracker.get(key)
    if held is not None:
        if still_the_job(parts, key, held) and refresh_in_place(held.obj, value):
            value = held.obj
        else:
            tier.tracker.release(key, held)
    if parts.rules.keeps_memory:
        tier.remember(key, value, stored.payload, stored.version, pending=False)
    tier.hold(key, value, stored.payload, stored.version)
    tier.evict()
    return value


def _in_memory(parts: Parts[V], key: str, fn: Callable[[V], V], default: Any) -> V:
    """``memory``: the dict alone, atomic within the process under the store's lock."""
    codec = parts.codec
    current = parts.tier.memory.get(key, MISSING)
    if current is MISSING:
        if default is MISSING:
            raise KeyError(key)
        current = default
    value = fn(codec.decode(key, codec.encode(current)))
    payload = parts.encode(key, value)
    if current is not default and refresh_in_place(current, value):
        value = current
    parts.policy.write(key, value, payload, status_of(value))
    return value
