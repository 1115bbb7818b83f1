"""The retry queue on local disk: a write the database refused survives a crash and ``close()``.

Each store instance that has to queue a write appends it to a journal file of its own,
``<table>.<pid>-<nonce>.queue`` in the queue directory (`jobstore.config.queue_dir`), and
fsyncs it before the call returns. The file is JSON lines, one record per queued write,
deletion or clear, numbered; a ``done`` record marks one that the database has since taken.
Beside it, ``<...>.lock`` carries an exclusive ``flock`` for as long as its store is open.

A journal whose lock nobody holds belongs to a store that closed with writes it could not land,
or to a process that died: any store opened on the same database and table adopts it (copies
its live records into its own journal, fsynced, then deletes it) and replays them through the
same merge as its own writes. So two processes on one host never share a file, and a restart
under a new pid finds the old one. A torn last line (a crash mid-append) is ignored: its call
never returned.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import URL

from .. import config
from ..db.engine import sqlite_path
from ..db.sqlite_file import QUEUE_DIR_SUFFIX
from ..logs import QUEUE, emit
from .keytypes import KeyType
from .retry import Backlog, QueuedWrite, Seen

QUEUE_SUFFIX = ".queue"
LOCK_SUFFIX = ".lock"
COMPACT_AFTER = 1000
"""Landed records a journal may carry before it is rewritten with only the live ones."""


class JournalError(OSError):
    """The journal could not be written: the write it was keeping is not durable."""


class Journal:
    """One store instance's journal file, opened at its first queued write."""

    def __init__(self, directory: str, table: str,
                 to_text: Callable[[Any], str], from_text: Callable[[str], Any]) -> None:
        self.directory = directory
        self.table = table
        self._to_text = to_text
        self._from_text = from_text
        self._fd: int | None = None
        self._lock_fd: int | None = None
        self.path: str | None = None
        self._next = 1
        self._landed = 0

    # writing ---------------------------------------------------------------------------------

    def record(self, key: Any, write: QueuedWrite) -> None:
        """Append ``write`` and fsync; `JournalError` if the disk would not take it."""
        write.seq = self._append([self._write_record(key, write)])

    def record_clear(self) -> None:
        self._append([{"op": "clear"}])

    def record_many(self, writes: list[tuple[Any, QueuedWrite]]) -> None:
        """Several writes in one append and one fsync (a batch, or an adopted journal)."""
        if not writes:
            return
        first = self._append([self._write_record(key, write) for key, write in writes])
        for offset, (_key, write) in enumerate(writes):
            write.seq = first + offset

    def landed(self, writes: list[QueuedWrite]) -> None:
        """Mark writes the database has taken, so a crash does not replay them twice."""
        done = [{"op": "done", "n": w.seq} for w in writes if w.seq]
        if not done or self._fd is None:
            return
        with contextlib.suppress(JournalError):  # at worst a crash replays them: merged again
            self._append(done, sync=False)  # fsynced by `settle`, once per drain
        self._landed += len(done)

    def settle(self, live: Backlog) -> None:
        """After a drain: empty the file when nothing is left, rewrite it when mostly landed."""
        if self._fd is None:
            return
        try:
            if not len(live):
                os.ftruncate(self._fd, 0)
                os.fsync(self._fd)
                self._landed = 0
            elif self._landed > COMPACT_AFTER and self._landed > len(live):
                self._rewrite(live)
            else:
                os.fsync(self._fd)
        except OSError as exc:
            emit(QUEUE, logging.WARNING, "queue.compact_failed",
                 "the queue journal %(journal)s could not be compacted: %(reason)s",
                 journal=self.path, reason=str(exc))

    def close(self, *, keep: bool) -> None:
        """Release the journal; its files stay only when they hold writes not landed."""
        if self._fd is None:
            return
        path, lock_path = self.path, self._lock_path()
        os.close(self._fd)
        self._fd = None
        if not keep and path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lock_path)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def after_fork(self) -> None:
        """In a forked child: the parent's file stays the parent's; the child opens its own."""
        self._fd = self._lock_fd = None
        self.path = None
        self._next, self._landed = 1, 0

    # adopting ------------------------------------------------------------------------------

    def adopt_orphans(self, take: Callable[[Backlog], bool]) -> int:
        """Offer ``take`` each journal of this table that no open store holds, locked while it
        is offered; one it took (into its own journal) is deleted. How many writes it took."""
        prefix = self.table + "."
        try:
            names = sorted(os.listdir(self.directory))
        except FileNotFoundError:
            return 0
        taken = 0
        for name in names:
            path = os.path.join(self.directory, name)
            if not (name.startswith(prefix) and name.endswith(QUEUE_SUFFIX)) or path == self.path:
                continue
            lock_path = path[:-len(QUEUE_SUFFIX)] + LOCK_SUFFIX
            lock_fd = _try_lock(lock_path)
            if lock_fd is None:
                continue
            try:
                if not os.path.exists(path):
                    continue  # adopted by another store a moment ago
                backlog = self.read(path)
                if not take(backlog):
                    continue
                taken += len(backlog)
                os.unlink(path)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(lock_path)
            finally:
                os.close(lock_fd)
        return taken

    def read(self, path: str) -> Backlog:
        """The live writes a journal file holds: the latest of each key, none that landed."""
        by_seq: dict[int, tuple[Any, QueuedWrite]] = {}
        latest: dict[tuple[Any, bool], int] = {}
        clear = False
        with open(path, encoding="utf-8") as file:
            lines = file.read().split("\n")
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue  # the torn tail of an append that never returned
            op = record.get("op")
            if op == "clear":
                by_seq.clear()
                latest.clear()
                clear = True
            elif op == "done":
                by_seq.pop(record.get("n"), None)
            elif op in ("set", "del"):
                key = self._from_text(record["k"])
                slot = (key, bool(record.get("a")))
                previous = latest.get(slot)
                if previous is not None:
                    by_seq.pop(previous, None)
                latest[slot] = record["n"]
                by_seq[record["n"]] = (key, _queued(record))
        backlog = Backlog({}, clear)
        for key, write in sorted(by_seq.values(), key=lambda kw: kw[1].seq):
            (backlog.adopted if write.adopted else backlog.writes)[key] = write
        return backlog

    # files ---------------------------------------------------------------------------------

    def _write_record(self, key: Any, write: QueuedWrite) -> dict[str, Any]:
        seen = write.seen
        return {"op": "del" if write.is_delete else "set", "k": self._to_text(key),
                "p": write.payload, "s": write.status,
                "b": seen.payload if seen else None, "v": seen.version if seen else None,
                "a": write.adopted}

    def _append(self, records: list[dict[str, Any]], *, sync: bool = True) -> int:
        """Write numbered records and fsync (unless told not to); the number of the first."""
        try:
            fd = self._open()
            first = self._next
            lines = []
            for offset, record in enumerate(records):
                if record["op"] != "done":
                    record["n"] = first + offset
                lines.append(_line(record))
            data = "".join(lines).encode("utf-8")
            written = os.write(fd, data)
            if written != len(data):
                raise OSError(f"short write to {self.path} ({written} of {len(data)} bytes)")
            if sync:
                os.fsync(fd)
        except OSError as exc:
            where = self.path or self.directory
            raise JournalError(exc.errno, f"cannot write the queue journal {where}: "
                               f"{exc.strerror or exc}") from exc
        self._next = first + len(records)
        return first

    def _open(self) -> int:
        if self._fd is not None:
            return self._fd
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        name = f"{self.table}.{os.getpid()}-{uuid.uuid4().hex[:8]}"
        base = os.path.join(self.directory, name)
        lock_fd = _try_lock(base + LOCK_SUFFIX, create=True)
        if lock_fd is None:
            raise OSError(f"cannot lock {base + LOCK_SUFFIX}")
        self._lock_fd = lock_fd
        self.path = base + QUEUE_SUFFIX
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        _fsync_directory(self.directory)
        return self._fd

    def _lock_path(self) -> str:
        assert self.path is not None
        return self.path[:-len(QUEUE_SUFFIX)] + LOCK_SUFFIX

    def _rewrite(self, live: Backlog) -> None:
        """Replace the file by one holding only ``live``, atomically (rename over it)."""
        assert self.path is not None
        assert self._fd is not None
        records: list[dict[str, Any]] = [{"op": "clear", "n": 0}] if live.clear else []
        for key, write in [*live.adopted.items(), *live.writes.items()]:
            records.append({**self._write_record(key, write), "n": write.seq})
        temporary = self.path + ".tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            body = "".join(map(_line, records))
            os.write(fd, body.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, self.path)
        _fsync_directory(self.directory)
        os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND, 0o600)
        self._landed = 0


def _line(record: dict[str, Any]) -> str:
    """One record as a line of the journal."""
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n"


def _queued(record: dict[str, Any]) -> QueuedWrite:
    version = record.get("v")
    seen = Seen(record.get("b"), version) if isinstance(version, int) else None
    payload = record.get("p") if record["op"] == "set" else None
    return QueuedWrite(payload, record.get("s"), seen=seen, attempts=0, seq=record["n"],
                       adopted=bool(record.get("a")))


def _try_lock(path: str, *, create: bool = False) -> int | None:
    """An fd holding an exclusive flock on ``path``, or None when another holds it (or the
    file is gone and ``create`` is false)."""
    flags = os.O_RDWR | (os.O_CREAT if create else 0)
    try:
        fd = os.open(path, flags, 0o600)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _fsync_directory(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def journal_for(url: URL, table: str, keys: KeyType[Any]) -> Journal | None:
    """The journal of a store on ``url``: beside an SQLite file, in the queue directory for a
    server; None for an in-memory database (its writes die with the process anyway)."""
    if url.get_backend_name() == "sqlite":
        path = sqlite_path(url)
        if path is None:
            return None
        directory = os.path.abspath(path) + QUEUE_DIR_SUFFIX
    else:
        place = "-".join(str(part) for part in (url.get_backend_name(), url.host or "local",
                                                url.port or "default", url.database or ""))
        directory = os.path.join(config.queue_dir(), _safe_name(place))
    return Journal(directory, table, keys.to_db, keys.from_db)


def _safe_name(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)
