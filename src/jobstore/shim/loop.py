"""The background loop: one light thread per store that runs its sync rounds.

It holds the store weakly, so a store the program forgot can still be collected; it is started
when the store opens (its first round one interval later: the store has just read the stage and
written its first heartbeat), restarted in a forked child (threads do not survive ``fork``) and
stopped by ``close``.
A round that fails is logged when its reason is new (not once a round while the database is
down), and the first round that succeeds after it is logged too.

A ``fork`` waits for the rounds under way in the process to end (at most `FORK_WAIT_S`), and
none starts until it is done: SQLite is not fork-safe while another thread is inside it (a
child inherits the library's mutexes as they were, and one the parent's loop held at the fork
would stop the child's first connection forever).
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from ..db.redact import reason
from ..logs import LOOP, emit

JOIN_TIMEOUT_S = 30.0
FORK_WAIT_S = 5.0
"""Seconds a fork waits for a round under way (a round on a frozen server may not end)."""

Waiter = Callable[[threading.Event, float], bool]
"""Waits between two rounds: given the stop event and the interval, True when stopped;
False to run the next round (the interval is up, or a stage change was heard early)."""


def _sleep(stop: threading.Event, interval: float) -> bool:
    return stop.wait(interval)


class BackgroundLoop:
    def __init__(self, owner: Any, round_fn: Callable[[Any], None], interval: float) -> None:
        self._owner = weakref.ref(owner)
        self._round = round_fn
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._failing: str | None = None
        """The reason the last round failed; None after a round that succeeded."""
        self._busy = threading.Lock()
        """Held while a round runs; a fork takes it (`_before_fork`)."""
        _loops.add(self)
        self.wait: Waiter = _sleep
        """How the loop waits between rounds (`jobstore.db.stage_push` ends it early)."""

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def ensure_started(self, *, delay: bool = False) -> None:
        """Start the thread; with ``delay`` its first round waits one interval."""
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is not None or self._stop.is_set():
                return
            thread = threading.Thread(target=self._run, args=(delay,), name="jobstore-sync",
                                      daemon=True)
            self._thread = thread
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(JOIN_TIMEOUT_S)

    def reset_after_fork(self) -> None:
        """In a forked child: the parent's thread is gone; the child starts a new one."""
        self._stop = threading.Event()
        self._thread = None
        self._start_lock = threading.Lock()
        self._busy = threading.Lock()

    def _run(self, delay: bool) -> None:
        if delay and self.wait(self._stop, self.interval):
            return
        while True:
            owner = self._owner()
            if owner is None:
                return
            try:
                with self._busy:
                    self._round(owner)
            except Exception as exc:  # the loop must outlive any one failure
                self._failed(owner, exc)
            else:
                self._succeeded(owner)
            del owner
            if self.wait(self._stop, self.interval):
                return

    def _failed(self, owner: Any, exc: Exception) -> None:
        why = f"{type(exc).__name__}: {reason(exc)}"
        if why == self._failing:
            return
        self._failing = why
        # A database error is the database's; anything else is a bug, shown with its traceback.
        emit(LOOP, logging.WARNING, "loop.round_failed",
             "a background sync round failed: %(error)s (logged again only when the reason "
             "changes)", error=why, exc_info=not isinstance(exc, SQLAlchemyError),
             table=owner.table, instance_id=owner.instance_id)

    def _succeeded(self, owner: Any) -> None:
        if self._failing is not None:
            emit(LOOP, logging.INFO, "loop.round_recovered",
                 "background sync rounds succeed again (the last failure: %(error)s)",
                 error=self._failing, table=owner.table, instance_id=owner.instance_id)
            self._failing = None


_loops: weakref.WeakSet[BackgroundLoop] = weakref.WeakSet()
_held_at_fork: list[threading.Lock] = []


def _before_fork() -> None:
    for loop in list(_loops):
        if loop._busy.acquire(timeout=FORK_WAIT_S):
            _held_at_fork.append(loop._busy)


def _after_fork_in_parent() -> None:
    while _held_at_fork:
        _held_at_fork.pop().release()


def _after_fork_in_child() -> None:
    _held_at_fork.clear()  # the child's loops start with locks of their own


os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                    after_in_child=_after_fork_in_child)
