"""Tables and rows in bulk: `init`, `export` (JSON lines) and `import_` (a backfill)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

from sqlalchemy import inspect

from ..codec import read_document, status_of
from ..db.control import InvalidStageRow
from ..db.jobs import JobRow
from ..db.schema import KEY_MAX
from ..exceptions import DecodeError, JobStoreError
from ..snapshot import atomic_0600
from ..stages import Stage
from ..timefmt import parse_time
from .exits import ExitCode
from .inspect import row_to_dict
from .repair import repair_stage
from .target import UrlLike, open_target, writer_id


@dataclass(frozen=True)
class InitResult:
    url: str
    table: str
    stage: str
    seeded: bool
    """True when this call set the stage; False when the table already had one."""
    created: tuple[str, ...]
    """The tables this call created (empty when everything existed)."""
    repaired: str | None = None
    """What the control row held when it held no valid stage, and what `init` wrote."""

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.OK

    def to_dict(self) -> dict[str, Any]:
        return {"url": self.url, "table": self.table, "stage": self.stage,
                "seeded": self.seeded, "created": list(self.created),
                "repaired": self.repaired}


def init(url: UrlLike = None, *, table: str | None = None,
         stage: Stage | str | None = None) -> InitResult:
    """Create the job table, its history and the control tables; seed the stage (``stage``,
    else dual_write).

    Idempotent: existing tables are kept, and an existing stage is left as it is (change it
    with `set_stage`). A control row that holds no valid stage is repaired
    (`jobstore.admin.repair`).
    """
    asked = None if stage is None else Stage.parse(stage)
    seed = asked or Stage.DUAL_WRITE
    with open_target(url, table, create=True) as target:
        before = set(inspect(target.engine).get_table_names())
        had_stage = (target.schema.control.name in before
                     and target.control.stage_row_exists())
        target.control.ensure(seed)
        after = set(inspect(target.engine).get_table_names())
        repaired = None
        try:
            state = target.control.read_stage()
        except InvalidStageRow as exc:
            state, repaired = None, repair_stage(target, asked, exc)
        wanted = [t.name for t in target.schema.metadata.sorted_tables]
        return InitResult(
            url=target.url, table=target.table,
            stage=(state.stage.value if state else repaired[0].value if repaired
                   else seed.value),
            seeded=not had_stage,
            created=tuple(t for t in wanted if t in after and t not in before),
            repaired=None if repaired is None else repaired[1],
        )


@dataclass(frozen=True)
class ExportResult:
    table: str
    count: int
    path: str | None
    """The file written, or None when the lines went to a stream."""
    left_out: tuple[DecodeError, ...] = ()
    """The rows that cannot be decoded (not JSON, nested too deeply), each naming its key:
    not exported, and the export went on past them."""

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.UNDECODABLE if self.left_out else ExitCode.OK

    def to_dict(self) -> dict[str, Any]:
        return {"table": self.table, "count": self.count, "path": self.path,
                "left_out": [{"key": e.key, "reason": e.reason} for e in self.left_out]}


def export(file: str | os.PathLike[str] | IO[str], url: UrlLike = None, *,
           table: str | None = None) -> ExportResult:
    """Every job as one JSON line (key, payload, status, version, times, writer), in insertion
    order (the order a store lists them in).

    A path is written through a temporary file (mode 0600: payloads can be private) that
    replaces it only when complete. A row that cannot be decoded is left out and named in the
    result (``left_out``), and the export goes on.
    """
    with open_target(url, table) as target:
        left_out: list[DecodeError] = []
        if not isinstance(file, (str, os.PathLike)):
            count = _write_lines(target.rows.scan_rows(), file, left_out)
            return ExportResult(target.table, count, None, tuple(left_out))
        path = os.fspath(file)
        try:
            with atomic_0600(path) as out:
                count = _write_lines(target.rows.scan_rows(), out, left_out)
        except OSError as exc:
            raise JobStoreError(f"cannot write {path}: {exc.strerror}") from exc
        return ExportResult(target.table, count, path, tuple(left_out))


def _write_lines(rows: Iterator[JobRow], out: IO[str], left_out: list[DecodeError]) -> int:
    count = 0
    for row in rows:
        try:
            document = read_document(row.key, row.payload)
        except DecodeError as exc:
            left_out.append(exc)
            continue
        out.write(json.dumps(row_to_dict(row, document), ensure_ascii=False) + "\n")
        count += 1
    return count


@dataclass(frozen=True)
class ImportResult:
    table: str
    path: str
    inserted: int
    updated: int
    kept: int
    """Lines not applied because the database's row is as new or newer."""

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.OK

    def to_dict(self) -> dict[str, Any]:
        return {"table": self.table, "path": self.path, "inserted": self.inserted,
                "updated": self.updated, "kept": self.kept}


def import_(file: str | os.PathLike[str], url: UrlLike = None, *,
            table: str | None = None) -> ImportResult:
    """Backfill jobs from JSON lines (as `export` writes them); never overwrite a newer row.

    A line needs ``key``, ``payload`` and ``updated_at`` (which decides which row is newer);
    ``status`` defaults to the payload's own.
    The whole file is checked before anything is written, so a bad line changes nothing.
    """
    path = os.fspath(file)
    for _row in _read_lines(path):
        pass
    counts = {"inserted": 0, "updated": 0, "kept": 0}
    with open_target(url, table) as target:
        writer = writer_id()
        for row in _read_lines(path):
            counts[target.rows.backfill(row, writer)] += 1
        return ImportResult(target.table, path, **counts)


def _read_lines(path: str) -> Iterator[JobRow]:
    try:
        handle = open(path, encoding="utf-8")  # noqa: SIM115 - closed by the with below
    except OSError as exc:
        raise JobStoreError(f"cannot read {path}: {exc.strerror}") from exc
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield _parse_line(line)
            except (ValueError, TypeError, KeyError) as exc:
                raise JobStoreError(f"{path} line {number}: {exc}") from exc


def _parse_line(line: str) -> JobRow:
    data = json.loads(line)
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object with 'key' and 'payload'")
    key = data["key"]
    if not isinstance(key, str) or not key or len(key) > KEY_MAX:
        raise ValueError(f"'key' must be text of 1 to {KEY_MAX} characters")
    if "payload" not in data:
        raise ValueError("no 'payload'")
    payload = json.dumps(data["payload"], ensure_ascii=False, separators=(",", ":"))
    status = data.get("status", status_of(data["payload"]))
    updated = _time(data.get("updated_at"), "updated_at")
    if updated is None:
        raise ValueError("no 'updated_at' (it decides whether the database's row is newer)")
    created = _time(data.get("created_at"), "created_at") or updated
    return JobRow(key=key, payload=payload, status=None if status is None else str(status),
                  version=int(data.get("version") or 1), created_at=created,
                  updated_at=updated, written_by=str(data.get("written_by") or "import"))


def _time(value: Any, name: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"'{name}' must be an ISO 8601 time")
    return parse_time(value)


__all__ = ["ExportResult", "ImportResult", "InitResult", "export", "import_", "init"]
