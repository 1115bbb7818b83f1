"""What a store's log says about its life: where it opened and in which stage, and what it
still sent to the database when it closed."""

from __future__ import annotations

import logging
from typing import Any

from ..db.control import StageState
from ..db.liveness import Pruned, why_pruned
from ..logs import QUEUE, STAGE, STORE, emit
from .parts import Parts


def opened(parts: Parts[Any], control: StageState | None) -> None:
    """One INFO record naming the database (its URL without the password), the table, the
    stage and the instance id; a WARNING too when ``$JOBSTORE_STAGE`` pins the stage."""
    emit(STORE, logging.INFO, "store.opened",
         "opened table %(table)r at %(url)s in stage %(stage)s as instance %(instance_id)s",
         table=parts.table, url=parts.url, stage=parts.stage.value,
         instance_id=parts.instance_id)
    if parts.pinned is not None:
        emit(STAGE, logging.WARNING, "stage.pinned",
             "table %(table)r: JOBSTORE_STAGE pins this process to %(stage)s; it does not "
             "follow the control row (%(control)s)", table=parts.table,
             stage=parts.pinned.value,
             control=control.stage.value if control else "not read",
             instance_id=parts.instance_id)


def closed(parts: Parts[Any], queued_before: int, unwritten: int) -> None:
    """At ``close()``, after the last flush: INFO, or WARNING when something did not land."""
    queued = len(parts.queue)
    journal = parts.queue.journal
    emit(STORE, logging.WARNING if queued or unwritten else logging.INFO, "store.closed",
         "closed table %(table)r as instance %(instance_id)s: %(landed)d queued write(s) "
         "landed at close, %(queued_writes)d still queued, %(unwritten)d in-place change(s) "
         "not written", table=parts.table, instance_id=parts.instance_id,
         landed=max(queued_before - queued, 0), queued_writes=queued, unwritten=unwritten)
    if queued:
        emit(QUEUE, logging.WARNING, "queue.left_at_close",
             "table %(table)r: %(queued_writes)d queued write(s) the database has not taken "
             "stay in %(journal)s; the next store opened on this database replays them",
             table=parts.table, queued_writes=queued,
             journal=journal.path if journal is not None and journal.path else
             "memory only (an in-memory database has no journal): lost at exit")


def pruned(parts: Parts[Any], gone: Pruned) -> None:
    """A heartbeat row of another instance deleted by this store's loop (`liveness`)."""
    beat = gone.heartbeat
    emit(STORE, logging.INFO, "store.pruned",
         "table %(table)r: deleted the heartbeat row of %(pruned)s (pid %(pid)d on "
         "%(host)s): %(why)s", table=parts.table, pruned=beat.instance_id, pid=beat.pid,
         host=beat.host, why=why_pruned(gone), instance_id=parts.instance_id)
