"""The SQLite file an engine opened, watched: deleted or replaced under a running store, it is
the database being unavailable, never a file written into unseen.

SQLite keeps reading and writing the file its connections opened, through their descriptors,
whatever happens to the path: delete the file (and its -wal and -shm) and every later write
"succeeds" into an unlinked inode that is gone when the last connection closes; replace it
(``os.replace`` of a copy) and the old connections go on in the old file while new ones open
the new one beside the old -wal. So each engine on a file records the file's identity (device
and inode) when it first has the file, and:

- every write transaction checks, after its ``COMMIT``, that the path still names that file
  (one ``os.stat``: a few microseconds, beside a set's hundreds); so does every pool checkout.
  A write that committed into a file no longer at the path is raised as an `OperationalError`,
  like any database failure: the dict-first stages queue it, the database-first stages raise
  `StoreUnavailableError` with the cause;
- from then on the engine is *lost*: every read, write and checkout fails at once with the same
  message, and no new connection is opened: one would create an empty database at the path
  (``sqlite3.connect`` creates missing files), so a connection opened once the file is known
  is opened ``mode=rw``, which never creates one;
- it stays lost until the store is opened again on a new engine: a file at the path cannot be
  told apart from the one that vanished, so the operator stops the processes, restores the
  file (from a backup; or from a process that still holds the deleted one,
  ``cp /proc/PID/fd/N``, its -wal too) and starts them again; writes queued meanwhile by the
  dict-first stages land then.

A read through a connection a store keeps open (the hot read of the database-first stages)
checks only whether the engine is lost, not the path: it learns of the loss at the next write
or the background loop's next heartbeat, within one ``sync_interval``.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import weakref
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine, event
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import OperationalError

from ..logs import HEALTH, emit

QUEUE_DIR_SUFFIX = ".jobstore-queue"
"""The directory beside an SQLite file where the writes queued for it are journaled."""

_guards: weakref.WeakKeyDictionary[Dialect, FileGuard] = weakref.WeakKeyDictionary()
"""One guard per engine, found by its dialect: an engine and its ``execution_options`` copies
share one dialect (and a disposed engine keeps it), each engine has a dialect of its own."""


class FileGuard:
    """Whether the path still names the file an engine's connections opened."""

    __slots__ = ("identity", "lost", "path")

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        self.identity: tuple[int, int] | None = _identity(self.path)
        """(device, inode) of the file, or None until a first connection has created it."""
        self.lost: str | None = None
        """Why the engine lost its file, once it has."""

    def check(self) -> None:
        """Raise `OperationalError` unless the path still names the engine's file."""
        if not self._still_there():
            raise self.error()

    def ensure_not_lost(self) -> None:
        """Raise `OperationalError` if the engine is known to have lost its file; no stat."""
        if self.lost is not None:
            raise self.error()

    def error(self) -> OperationalError:
        return OperationalError("(the SQLite file)", None, sqlite3.OperationalError(self.lost))

    def connect_args(self, cargs: list[Any], cparams: dict[str, Any]) -> None:
        """Make a new connection open the known file or fail (a driver error, as a failed
        connect raises), never create a new one."""
        if self.identity is None and self.lost is None:
            return
        if not self._still_there():
            raise sqlite3.OperationalError(self.lost)
        if not cparams.get("uri"):
            cargs[0] = f"file:{quote(self.path)}?mode=rw"
            cparams["uri"] = True

    def _still_there(self) -> bool:
        if self.lost is not None:
            return False
        try:
            found = os.stat(self.path)
        except FileNotFoundError:
            if self.identity is None:
                return True  # no file known yet: nothing to lose
            self._lose("deleted")
            return False
        if not stat.S_ISREG(found.st_mode) and self.identity is None:
            return True  # not a database file (SQLite itself refuses it), not one yet known
        identity = (found.st_dev, found.st_ino)
        if identity == self.identity:
            return True
        if self.identity is None:
            self.identity = identity
            return True
        self._lose("replaced by another file")
        return False

    def _lose(self, how: str) -> None:
        self.lost = (f"the SQLite file {self.path} was {how} while the store had it open; "
                     "nothing more is written until the store is opened again")
        emit(HEALTH, logging.ERROR, "health.file_lost",
             "%(lost)s: restore the file, then restart the processes that use it",
             lost=self.lost, path=self.path)


def guard_for(engine: Engine) -> FileGuard | None:
    """The guard of an engine on an SQLite file (None for any other engine)."""
    return _guards.get(engine.dialect)


def watch(engine: Engine, path: str) -> FileGuard:
    """Guard ``engine``'s file at ``path`` (once per engine, however often it is prepared)."""
    guard = _guards.get(engine.dialect)
    if guard is not None:
        return guard
    guard = FileGuard(path)
    _guards[engine.dialect] = guard

    @event.listens_for(engine, "do_connect")
    def _connect(_dialect: Any, _record: Any, cargs: list[Any], cparams: dict[str, Any]) -> None:
        guard.connect_args(cargs, cparams)

    @event.listens_for(engine, "checkout")
    def _checkout(_dbapi: Any, _record: Any, _proxy: Any) -> None:
        guard.check()

    return guard


def check_after_commit(dialect: Dialect) -> None:
    """Raise `OperationalError` when the transaction just committed went into a file that is
    no longer at its path (no-op for an engine without a guard)."""
    guard = _guards.get(dialect)
    if guard is not None:
        guard.check()


def warn_if_new_beside_queue(path: str) -> None:
    """Log a warning when a missing database file is about to be created anew beside a
    journal of writes queued for the file that was there before."""
    if not os.path.exists(path) and os.path.isdir(path + QUEUE_DIR_SUFFIX):
        emit(HEALTH, logging.WARNING, "health.file_new_beside_queue",
             "the SQLite file %(path)s is missing and is created anew, but writes queued for "
             "the database that was there are journaled in %(queue_dir)s: restore the file to "
             "keep its jobs and stage", path=os.path.abspath(path),
             queue_dir=path + QUEUE_DIR_SUFFIX)


def _identity(path: str) -> tuple[int, int] | None:
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return None
    return (found.st_dev, found.st_ino) if stat.S_ISREG(found.st_mode) else None
