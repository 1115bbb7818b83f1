"""The dict-first stages against a dead or frozen database: quick attempts and the circuit.

In ``dual_write`` and ``shadow`` a database call that fails costs the caller nothing but a
queued write, so the calls there run as quick attempts (`jobstore.db.attempts`: each connection
and each reply bounded by the engine's ``quick_timeout``, 1 s) and the first failure opens the
store's circuit (`Health.unreachable`): no call touches the database again until
`database_back` reaches it. The background loop asks it before anything else in its round,
outside the store's lock, so a server that is still frozen costs the loop one quick timeout per
round and the callers nothing; the retry queue is drained only once the database answers. A call
that cannot do without the database (a read the dict cannot answer, ``modify``) asks it too, at
most once every `CALLER_PROBE_EVERY_S` across the store's threads (the others fail at once),
so it does not wait for the loop's next round after the database came back.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

from sqlalchemy.exc import DBAPIError

from ..db.attempts import quick_attempt
from ..db.engine import probe
from ..db.redact import reason
from ..stages import Authority
from .parts import Parts

CALLER_PROBE_EVERY_S = 1.0


def attempts_of(parts: Parts[Any]) -> AbstractContextManager[object]:
    """The bound the stage's authority puts on database calls: a quick attempt where the dict
    is the authority, the engine's own bounds where the database is."""
    return quick_attempt() if parts.rules.authority is Authority.DICT else nullcontext()


def database_back(parts: Parts[Any], every: float | None = None) -> bool:
    """Whether the database may be used now: the circuit is closed, or a probe (one quick
    round trip, `jobstore.db.engine.probe`) reached it and closed it; with ``every``, no probe
    is made within ``every`` seconds of the last one. Never call it under the store's lock:
    against a frozen server the probe waits out its quick timeout."""
    health = parts.health
    if health.available_now():
        return True
    if not health.claim_probe(every):
        return False
    try:
        with quick_attempt():
            probe(parts.rows.engine)
    except DBAPIError as exc:
        health.last_error = reason(exc)  # not counted again: the circuit opened on an error
        return False
    health.unreachable = False
    return True
