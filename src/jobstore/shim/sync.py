"""A sync round: follow the stage, write back, retry, heartbeat, answer verify requests.

The background loop runs one every ``sync_interval``; ``JobStore.sync()`` runs one now. In the
dict-first stages a round's database calls are quick attempts, and while the circuit is open
(`jobstore.shim.circuit`) a round only probes the database: in-place changes are queued, and
nothing else is sent until the probe reaches it.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from sqlalchemy.exc import DBAPIError

from ..db import liveness
from ..db.control import InvalidStageRow, StageState
from ..db.heartbeat import Heartbeat
from ..db.stage_push import StagePush
from ..exceptions import StoreUnavailableError
from ..logs import AUDIT, emit
from ..stages import Authority, Stage
from ..timefmt import utcnow
from . import store_log
from .audit import verify
from .circuit import attempts_of, database_back
from .drain import drain_queue
from .flush import write_back
from .follow import StageFollower
from .health import Clears
from .held import answer_held_keys
from .key_text import text_report
from .loop import BackgroundLoop
from .parts import Parts


class Sync:
    def __init__(self, parts: Parts[Any], follower: StageFollower) -> None:
        self.parts = parts
        self.follower = follower
        self._last_request = 0
        self.push = StagePush.for_engine(parts.control.engine, parts.table)
        """Set before the store's first connection opens, so that every one listens."""
        self._rounds = 0

    def prepare_database(self, seed: Stage) -> StageState | None:
        """Create what is missing and note the verify requests made before this store began;
        the stage the control row holds.

        A process pinned to ``memory`` starts without its database and does this later."""
        parts = self.parts
        parts.control.ensure(seed)
        self._last_request = parts.control.latest_request()
        parts.schema_ready = True
        try:
            return parts.control.read_stage()
        except InvalidStageRow as exc:
            if parts.pinned is None:  # a pinned store does not follow the row anyway
                self.follower.invalid_row(exc)  # the store opens in its seed stage
            return None

    def begin(self, loop: BackgroundLoop) -> None:
        """At open: the first heartbeat (one INSERT), so the store is listed and counted by
        the gate from now, not from its first call; then the loop, whose first round waits
        one interval (at once when the journal holds writes to replay)."""
        parts = self.parts
        parts.loop = loop
        if self.push is not None:
            loop.wait = self.push.wait
        if parts.schema_ready:
            try:
                with attempts_of(parts):
                    parts.control.enter(self._beat())
            except DBAPIError as exc:
                parts.health.note_error(exc)  # the loop's rounds write it when they can
        parts.start(delay=not len(parts.queue))

    def now(self) -> None:
        """``JobStore.sync()``: raises where the database is the authority and a change
        could not be written; in the dict-first stages failed writes stay queued instead."""
        parts = self.parts
        with parts.round_lock, attempts_of(parts):
            errors = parts.health.write_errors
            back = database_back(parts)
            if back:
                self.follower.poll()
            failures = write_back(parts)
            if back:
                drain_queue(parts)
                self._clear_if_clean(errors)
        if failures and parts.rules.db_authoritative:
            raise StoreUnavailableError(
                f"{failures} in-place change(s) could not be written: {parts.health.last_error}")

    def flush(self) -> None:
        """At ``close()``: what is still owed to the database, written or retried once more;
        what it will not take stays in the journal, for the next store opened on it."""
        parts = self.parts
        queued = len(parts.queue)
        with parts.round_lock, attempts_of(parts):
            unwritten = write_back(parts)
            if database_back(parts):
                drain_queue(parts)
        store_log.closed(parts, queued, unwritten)

    def leave(self) -> None:
        """At ``close()``: this instance's heartbeat row removed, unless the database is
        unreachable (a stale row is told apart by its age)."""
        parts = self.parts
        if self.push is not None:
            self.push.close()
        if not parts.health.available_now():
            return
        with contextlib.suppress(DBAPIError), attempts_of(parts):
            parts.control.forget_instance(parts.instance_id)

    def round(self) -> None:
        """One round of the background loop; a failure is counted and raised for the loop to
        log."""
        parts = self.parts
        if parts.closed:
            return
        try:
            with parts.round_lock, attempts_of(parts):
                errors = parts.health.write_errors
                if not database_back(parts):
                    write_back(parts)
                    return
                if not parts.schema_ready:
                    self.prepare_database(parts.stage)
                self.follower.poll()
                write_back(parts)
                drain_queue(parts)
                self._clear_if_clean(errors)
                parts.control.beat(self._beat())
                self._prune()
            self._answer_verify_requests()
        except DBAPIError as exc:
            if parts.rules.authority is Authority.DICT:
                parts.health.trip(exc)  # the loop saw it first: callers need not find out
            else:
                parts.health.note_error(exc)
            raise
        except Exception as exc:
            parts.health.note_error(exc)
            raise

    def _clear_if_clean(self, errors_before: int) -> None:
        """A round that met no database error and leaves nothing queued or unencodable
        clears the error such a round clears (a failure the database has recovered from)."""
        parts = self.parts
        if (parts.health.write_errors == errors_before and not len(parts.queue)
                and not parts.tier.unencodable):
            parts.health.cleared(Clears.ROUND)

    def _prune(self) -> None:
        """Once in `liveness.PRUNE_EVERY_ROUNDS` rounds: the rows of instances gone or dated
        ahead deleted, so dead instances leave the listing without anyone's command."""
        self._rounds += 1
        if self._rounds % liveness.PRUNE_EVERY_ROUNDS == 0:
            for gone in liveness.prune(self.parts.control):
                store_log.pruned(self.parts, gone)

    def _beat(self) -> Heartbeat:
        parts = self.parts
        identity, health = parts.identity, parts.health
        recent_checks, recent_mismatches = health.tally.recent()
        return Heartbeat(
            instance_id=identity.instance_id, host=identity.host, pid=identity.pid,
            stage=parts.stage.value, pinned=parts.pinned.value if parts.pinned else None,
            started_at=identity.started_at, heartbeat_at=utcnow(),
            sync_interval=parts.sync_interval, memory_items=len(parts.tier),
            tracked_items=len(parts.tier.tracker), queued_writes=len(parts.queue),
            failed_writes=len(parts.tier.unencodable),
            shadow_mismatches=health.tally.stage_mismatches,
            shadow_checks=health.tally.stage_checks, recent_shadow_checks=recent_checks,
            recent_shadow_mismatches=recent_mismatches, last_error=health.last_error,
            last_error_at=health.last_error_at,
        )

    def _answer_verify_requests(self) -> None:
        """Answer the newest request of each kind only: its answer, made after the ones
        before it, answers them too, so a flood of requests costs one round."""
        parts = self.parts
        verify_id, held_id = parts.control.newest_requests_after(self._last_request)
        if held_id is not None:
            answer_held_keys(parts, held_id)
        if verify_id is not None:
            report = text_report(verify(parts))
            parts.control.submit_report(verify_id, parts.instance_id, report.to_dict())
            emit(AUDIT, logging.INFO, "audit.verify_answered",
                 "table %(table)r: answered verify request %(request_id)d: %(checked)d "
                 "job(s) checked, %(drifts)d drift(s)", table=parts.table,
                 request_id=verify_id, checked=report.checked, drifts=len(report.drifts),
                 instance_id=parts.instance_id)
        self._last_request = max(self._last_request, verify_id or 0, held_id or 0)
