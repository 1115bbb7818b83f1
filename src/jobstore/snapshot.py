"""The memory dump (``jobstore-memory/1``) that `JobStore.dump_memory` writes and ``jobstore
verify --snapshot`` reads, and the private, all-or-nothing file write that it and ``jobstore
export`` share.

A private file is created 0600 (jobs can hold personal data) beside its target, made durable
with ``fsync`` and moved over the target in one ``os.replace``: a reader sees the old file or
the complete new one, never a part. On any failure the temporary file is removed and the
target is left as it was.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

from .exceptions import JobStoreError
from .timefmt import parse_time

FORMAT = "jobstore-memory/1"

PathLike = str | os.PathLike[str]


@contextlib.contextmanager
def atomic_0600(path: PathLike) -> Iterator[IO[str]]:
    """A new text file (mode 0600) that replaces ``path`` when the block ends without an
    error, and is removed when it does not. `OSError` as the system raises it."""
    target = os.fspath(path)
    fd, temporary = tempfile.mkstemp(prefix=f"{os.path.basename(target)}.", suffix=".tmp",
                                     dir=os.path.dirname(os.path.abspath(target)))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def write_json_atomic(path: PathLike, document: Any) -> None:
    """``document`` as JSON in ``path``, through `atomic_0600`."""
    with atomic_0600(path) as out:
        json.dump(document, out)


@dataclass(frozen=True)
class MemoryDump:
    """One process's dict at one moment, as JSON data per key."""

    jobs: dict[str, Any]
    table: str | None = None
    instance_id: str | None = None
    stage: str | None = None
    dumped_at: str | None = None
    """When the dump was taken, ISO 8601 text as written."""
    unencodable: tuple[str, ...] = ()
    """Keys whose value could not be encoded when dumped."""

    @property
    def dumped_time(self) -> datetime | None:
        """``dumped_at`` as a UTC time, or None when absent or unreadable."""
        if self.dumped_at is None:
            return None
        try:
            return parse_time(self.dumped_at)
        except ValueError:
            return None

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "table": self.table, "instance_id": self.instance_id,
                "stage": self.stage, "dumped_at": self.dumped_at, "jobs": self.jobs,
                "unencodable": list(self.unencodable)}

    def write(self, path: PathLike) -> None:
        """Write the dump to ``path`` (0600, all or nothing)."""
        write_json_atomic(path, self.to_dict())


def read_dump(path: PathLike) -> MemoryDump:
    """The dump in ``path``; `JobStoreError` naming the file when it cannot be read, is not
    JSON or is not a ``jobstore-memory/1`` dump."""
    name = os.fspath(path)
    try:
        with open(name, encoding="utf-8") as handle:
            document = json.load(handle)
    except OSError as exc:
        raise JobStoreError(f"cannot read the snapshot {name}: {exc.strerror}") from exc
    except ValueError as exc:
        raise JobStoreError(f"{name} is not JSON: {exc}") from exc
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise JobStoreError(
            f"{name} is not a jobstore memory dump (expected format {FORMAT!r}, "
            "as written by JobStore.dump_memory)")
    jobs = document.get("jobs")
    if not isinstance(jobs, dict):
        raise JobStoreError(f"{name} has no 'jobs' object")
    return MemoryDump(
        jobs=jobs, table=_text(document.get("table")),
        instance_id=_text(document.get("instance_id")), stage=_text(document.get("stage")),
        dumped_at=_text(document.get("dumped_at")),
        unencodable=tuple(str(key) for key in document.get("unencodable") or ()),
    )


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)
