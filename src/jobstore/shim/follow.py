"""Following the fleet's stage: the control row polled, and a change of stage carried out.

A change writes back what the old stage still owes the database, takes a legacy dict's (or the
``memory`` stage's) jobs and deletions into the database when the new stage writes it, and
empties the dict when the new stage keeps none.

A control row that holds no valid stage changes nothing: the store goes on in the stage it
runs (heartbeats, write-backs, drains), reports the row as its last error and logs it once,
until the row is repaired.
"""

from __future__ import annotations

import itertools
import logging
from typing import Any

from sqlalchemy.exc import DBAPIError

from ..codec import status_of
from ..db.control import InvalidStageRow
from ..exceptions import EncodeError
from ..logs import STAGE, emit
from ..stages import Stage
from .drain import drain_queue
from .flush import write_back
from .health import Clears
from .parts import Parts
from .retry import QueuedWrite
from .tier import NEVER, Entry


class StageFollower:
    def __init__(self, parts: Parts[Any]) -> None:
        self.parts = parts
        # The loop and sync() may poll at once; a read that began before the newest applied
        # one may hold an older stage, and applying it would undo a stage change just made.
        self._tickets = itertools.count(1)
        self._applied = 0
        self._invalid: str | None = None
        """The invalid value the control row held at the last poll, logged once."""

    def poll(self) -> None:
        """Read the control row and follow it, unless ``$JOBSTORE_STAGE`` pins the stage."""
        parts = self.parts
        if parts.pinned is not None:
            return
        ticket = next(self._tickets)
        try:
            state = parts.control.read_stage()
        except DBAPIError as exc:
            parts.health.note_error(exc)
            return
        except InvalidStageRow as exc:
            self.invalid_row(exc)
            return
        with parts.lock:
            if ticket < self._applied:
                return
            self._applied = ticket
            if state is not None:
                self._valid_row(state.stage)
                if state.stage is not parts.stage:
                    self.apply(state.stage)

    def invalid_row(self, exc: InvalidStageRow) -> None:
        """The control row holds no stage: keep this one, say so until it is repaired."""
        parts = self.parts
        parts.health.note(str(exc), Clears.STAGE_ROW)
        if exc.value == self._invalid:
            return
        self._invalid = exc.value
        emit(STAGE, logging.WARNING, "stage.invalid_row",
             "table %(table)r: %(error)s; this store runs %(stage)s until the row is "
             "repaired", table=parts.table, error=str(exc), value=exc.value,
             stage=parts.stage.value, instance_id=parts.instance_id)

    def _valid_row(self, stage: Stage) -> None:
        if self._invalid is None:
            return
        self._invalid = None
        parts = self.parts
        parts.health.cleared(Clears.STAGE_ROW)
        emit(STAGE, logging.INFO, "stage.row_repaired",
             "table %(table)r: the control row holds a valid stage again (%(control)s)",
             table=parts.table, control=stage.value, stage=parts.stage.value,
             instance_id=parts.instance_id)

    def apply(self, new: Stage) -> None:
        """Follow the control row to ``new``, carrying what the dict holds across.

        Leaving ``memory`` takes the dict's jobs into the database first, also when the new
        stage keeps no dict (``memory`` straight to ``db_only``), so none is dropped. Changes
        made in place before the change are written by the rules of the stage they were made
        in (else a move to ``memory`` would leave them out of both the database and the dict).
        """
        parts = self.parts
        with parts.lock:
            old_stage, old, rules = parts.stage, parts.rules, new.rules
            write_back(parts)
            if not old.writes_db and rules.writes_db:
                parts.set_stage(new)
                adopt_dict_entries(parts)
            if old.keeps_memory and not rules.keeps_memory:
                write_back(parts)
                drain_queue(parts)
                parts.tier.drop_values()
            parts.set_stage(new)
            parts.health.tally.new_stage()
        emit(STAGE, logging.INFO, "stage.changed",
             "table %(table)r: this store follows the control row from %(previous)s to "
             "%(stage)s (%(memory_items)d job(s) in its dict, %(queued_writes)d write(s) "
             "queued)", table=parts.table, previous=old_stage.value, stage=new.value,
             memory_items=len(parts.tier), queued_writes=len(parts.queue),
             instance_id=parts.instance_id)


def adopt_dict_entries(parts: Parts[Any]) -> None:
    """Queue for the database every dict entry it does not hold as it is now (a legacy dict's
    contents, what was written in ``memory``, or a job changed in place there), and track every
    dict value: code that took it from the dict goes on changing it in place (a render loop
    started in ``memory``)."""
    tier = parts.tier
    writes_db = parts.rules.writes_db
    if writes_db:
        _replay_memory_deletions(parts)
    for key in list(tier.memory):
        parts.keys.check_write(key)
        entry = tier.entries.get(key)
        if not writes_db:
            if entry is None:
                tier.entries[key] = Entry(None, None, NEVER, pending=False)
            continue
        value = tier.memory[key]
        try:
            payload = parts.encode(key, value)
        except EncodeError:
            tier.unencodable.add(key)
            if entry is None:
                tier.entries[key] = Entry(None, None, NEVER, pending=True)
            continue
        if entry is not None and entry.version is not None and entry.payload == payload:
            tier.hold(key, value, payload, entry.version)
            continue
        version = entry.version if entry is not None else None
        tier.entries[key] = Entry(payload, version, NEVER, pending=True)
        tier.hold(key, value, payload, None)
        parts.queue.put(key, QueuedWrite(payload, status_of(value), attempts=0))


def _replay_memory_deletions(parts: Parts[Any]) -> None:
    """Queue the deletions made in ``memory`` for the database, so a job deleted there does
    not come back from the database once the dict stops being the only copy."""
    tier = parts.tier
    if tier.cleared_in_memory:
        parts.queue.put_clear()
    for key in sorted(tier.deleted_in_memory):
        parts.queue.put(key, QueuedWrite(None, None, attempts=0))
    tier.cleared_in_memory = False
    tier.deleted_in_memory.clear()
