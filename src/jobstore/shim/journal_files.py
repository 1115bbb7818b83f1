"""The queue journals on this host for one database and table, as `jobstore status` lists them.

Read-only: a journal is read as an adopting store would read it, and whether a store holds it
is asked with a shared lock taken and dropped at once (a store adopting it at that moment
skips it for one round)."""

from __future__ import annotations

import contextlib
import fcntl
import os
from dataclasses import dataclass

from sqlalchemy.engine import URL

from .journal import LOCK_SUFFIX, QUEUE_SUFFIX, journal_for
from .keytypes import KEY_TYPES


@dataclass(frozen=True)
class JournalFile:
    path: str
    writes: int
    """Queued writes it holds that the database has not taken."""
    held: bool
    """An open store holds it; else it waits for the next store opened on the database."""

    def to_dict(self) -> dict[str, object]:
        return {"path": self.path, "writes": self.writes, "held": self.held}


def journal_files(url: URL, table: str) -> list[JournalFile]:
    """Every journal file of ``table`` on this host, emptied ones left out."""
    journal = journal_for(url, table, KEY_TYPES[str])
    if journal is None or not os.path.isdir(journal.directory):
        return []
    found = []
    for name in sorted(os.listdir(journal.directory)):
        if not (name.startswith(table + ".") and name.endswith(QUEUE_SUFFIX)):
            continue
        path = os.path.join(journal.directory, name)
        try:
            writes = len(journal.read(path))
        except FileNotFoundError:
            continue  # adopted meanwhile
        if writes:
            found.append(JournalFile(path, writes, _held(path[:-len(QUEUE_SUFFIX)] + LOCK_SUFFIX)))
    return found


def _held(lock_path: str) -> bool:
    try:
        fd = os.open(lock_path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    return False
