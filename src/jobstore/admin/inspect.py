"""Read-only commands: the stage and the instances (`status`), one job (`show`, `history`),
a listing (`ls`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import DBAPIError

from ..codec import read_document
from ..db import liveness
from ..db.control import InvalidStageRow
from ..db.integrity import sqlite_damage
from ..db.jobs import JobEvent, JobRow
from ..db.liveness import Pruned, why_pruned
from ..exceptions import DecodeError, StoreUnavailableError
from ..logs import ADMIN, emit
from ..shim.journal_files import JournalFile, journal_files
from ..timefmt import as_utc, json_time
from ..verify import FieldDiff, diff_documents
from .exits import ExitCode
from .instances import InstanceInfo, instances
from .target import Target, UrlLike, open_target

DEFAULT_LS_LIMIT = 50


@dataclass(frozen=True)
class StatusResult:
    """The stage every process follows, who set it, the instances and the row counts."""

    url: str
    table: str
    stage: str | None
    changed_at: datetime | None
    changed_by: str | None
    reason: str | None
    jobs: int
    jobs_by_status: dict[str, int]
    instances: tuple[InstanceInfo, ...]
    journals: tuple[JournalFile, ...] = ()
    """Queue journals on this host holding writes the database has not taken yet."""
    stage_invalid: str | None = None
    """Why the control row holds no valid stage (``stage`` is None then), with the repair."""
    pruned: tuple[Pruned, ...] = ()
    """Heartbeat rows deleted before reading: instances gone, or dated in the future."""

    @property
    def live(self) -> tuple[InstanceInfo, ...]:
        return tuple(i for i in self.instances if i.live)

    @property
    def stale(self) -> tuple[InstanceInfo, ...]:
        return tuple(i for i in self.instances if not i.live)

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.OK

    def to_dict(self) -> dict[str, Any]:
        return {
            "url": self.url, "table": self.table, "stage": self.stage,
            "stage_changed_at": json_time(self.changed_at), "stage_changed_by": self.changed_by,
            "stage_reason": self.reason, "stage_invalid": self.stage_invalid,
            "jobs": self.jobs,
            "jobs_by_status": self.jobs_by_status,
            "live_instances": len(self.live), "stale_instances": len(self.stale),
            "instances": [i.to_dict() for i in self.instances],
            "queue_journals": [j.to_dict() for j in self.journals],
            "pruned": [{"instance_id": p.heartbeat.instance_id, "host": p.heartbeat.host,
                        "pid": p.heartbeat.pid, "standing": p.standing.value,
                        "why": why_pruned(p)} for p in self.pruned],
        }


def status(url: UrlLike = None, *, table: str | None = None) -> StatusResult:
    """The control row, every instance's last heartbeat and how many jobs the table holds.

    An SQLite file is read through first (`sqlite_damage`): a damaged one is an error, not a
    count that an intact index happens to answer.
    """
    with open_target(url, table) as target:
        damage = sqlite_damage(target.engine)
        if damage is not None:
            raise StoreUnavailableError(
                f"the SQLite database at {target.url} is damaged: {target.scrub(damage)} "
                "(PRAGMA quick_check); restore it from a backup")
        invalid: InvalidStageRow | None = None
        try:
            state = target.control.read_stage()
        except InvalidStageRow as exc:
            state, invalid = None, exc
        by_status = target.rows.count_by_status()
        pruned = prune_quietly(target)
        found = instances(target)
        return StatusResult(
            url=target.url, table=target.table,
            stage=state.stage.value if state else None,
            changed_at=as_utc(state.changed_at) if state else None,
            changed_by=(state.changed_by if state
                        else invalid.changed_by if invalid else None),
            reason=state.reason if state else None,
            jobs=sum(by_status.values()),
            jobs_by_status={("(none)" if k is None else k): v
                            for k, v in sorted(by_status.items(), key=lambda kv: -kv[1])},
            instances=tuple(found),
            journals=tuple(journal_files(target.engine.url, target.table)),
            stage_invalid=None if invalid is None else target.scrub(str(invalid)),
            pruned=pruned,
        )


def prune_quietly(target: Target) -> tuple[Pruned, ...]:
    """The rows of gone and future instances deleted (`jobstore.db.liveness`) and logged
    (``admin.pruned``); nothing when the database does not let this user delete."""
    try:
        pruned = liveness.prune(target.control)
    except DBAPIError:
        return ()
    for p in pruned:
        emit(ADMIN, logging.INFO, "admin.pruned",
             "table %(table)r: deleted the heartbeat row of %(pruned)s (pid %(pid)d on "
             "%(host)s): %(why)s", table=target.table, pruned=p.heartbeat.instance_id,
             pid=p.heartbeat.pid, host=p.heartbeat.host, why=why_pruned(p))
    return pruned


@dataclass(frozen=True)
class ShowResult:
    """One job's row, or nothing when the key is not in the table."""

    key: str
    row: JobRow | None
    document: Any = None
    """The row's payload as JSON data (None when it cannot be decoded)."""
    undecodable: str | None = None
    """Why the payload cannot be decoded, naming the key (a `DecodeError`'s message)."""

    @property
    def found(self) -> bool:
        return self.row is not None

    @property
    def exit_code(self) -> ExitCode:
        if not self.found:
            return ExitCode.NOT_FOUND
        return ExitCode.OK if self.undecodable is None else ExitCode.UNDECODABLE

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "found": self.found,
                "job": None if self.row is None else row_to_dict(self.row, self.document),
                "undecodable": self.undecodable}


def show(key: str, url: UrlLike = None, *, table: str | None = None) -> ShowResult:
    """The job stored under ``key`` as the database holds it; a payload that cannot be decoded
    (not JSON, or nested too deeply) is marked rather than an error, so its row still shows."""
    with open_target(url, table) as target:
        row = target.rows.row(key)
    if row is None:
        return ShowResult(key, None)
    try:
        return ShowResult(key, row, read_document(key, row.payload))
    except DecodeError as exc:
        return ShowResult(key, row, undecodable=str(exc))


@dataclass(frozen=True)
class HistoryEntry:
    """One version of a job, with the fields that changed from the version before."""

    event: JobEvent
    changes: tuple[FieldDiff, ...]
    document: Any = None
    """The version's payload as JSON data; as text when it cannot be decoded."""

    def to_dict(self) -> dict[str, Any]:
        e = self.event
        return {
            "version": e.version, "op": e.op, "status": e.status, "at": json_time(as_utc(e.at)),
            "written_by": e.written_by, "payload": self.document,
            "changes": [{"path": c.path, "before": c.memory, "after": c.db}
                        for c in self.changes],
        }


@dataclass(frozen=True)
class HistoryResult:
    key: str
    entries: tuple[HistoryEntry, ...]

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.OK if self.entries else ExitCode.NOT_FOUND

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "found": bool(self.entries),
                "versions": [e.to_dict() for e in self.entries]}


def history(key: str, url: UrlLike = None, *, table: str | None = None) -> HistoryResult:
    """Every version ``key`` has had, oldest first, each with what it changed."""
    with open_target(url, table) as target:
        events = target.rows.history(key)
    entries = []
    before: Any = None
    for event in events:
        document = _document(key, event.payload)
        changes = () if before is None or document is None else tuple(
            diff_documents(before, document))
        entries.append(HistoryEntry(event, changes, document))
        before = document
    return HistoryResult(key, tuple(entries))


@dataclass(frozen=True)
class LsResult:
    """The most recently updated jobs, with how many match in all."""

    status: str | None
    limit: int | None
    total: int
    rows: tuple[JobRow, ...]

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.OK

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "limit": self.limit, "total": self.total,
                "shown": len(self.rows),
                "jobs": [row_to_dict(r) for r in self.rows]}


def ls(url: UrlLike = None, *, table: str | None = None, status: str | None = None,
       limit: int | None = DEFAULT_LS_LIMIT) -> LsResult:
    """Jobs, most recently updated first, optionally only those with ``status``."""
    if limit is not None and limit < 0:
        raise ValueError("limit must not be negative")
    with open_target(url, table) as target:
        counts = target.rows.count_by_status()
        total = counts.get(status, 0) if status is not None else sum(counts.values())
        rows = target.rows.rows(status=status, limit=limit)
    return LsResult(status, limit, total, tuple(rows))


_OMITTED = object()


def row_to_dict(row: JobRow, document: Any = _OMITTED) -> dict[str, Any]:
    """A job row as JSON data, times in ISO 8601 UTC; with the payload's ``document`` when
    given (`read_document` parses it, naming the key when it cannot)."""
    found: dict[str, Any] = {"key": row.key}
    if document is not _OMITTED:
        found["payload"] = document
    found.update({
        "status": row.status, "version": row.version,
        "created_at": json_time(as_utc(row.created_at)),
        "updated_at": json_time(as_utc(row.updated_at)),
        "written_by": row.written_by,
    })
    return found


def _document(key: str, payload: str | None) -> Any:
    """A payload as JSON data; one that cannot be decoded (not JSON, too deep) stays text, so
    the history around it still shows."""
    try:
        return read_document(key, payload)
    except DecodeError:
        return payload

