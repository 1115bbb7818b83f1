"""Verify reports: what differs between a dict and the database, as data.

A drift names its key, its kind and, for a changed job, the fields that differ with the dict's
value beside the database's. Reports travel between processes as JSON (through the control
plane), so each type here has ``to_dict`` and ``from_dict``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ._compat import StrEnum

MAX_FIELD_DIFFS = 20


class DriftKind(StrEnum):
    MISSING_IN_DB = "missing_in_db"
    CHANGED = "changed"
    WRITE_PENDING = "write_pending"
    WRITE_FAILED = "write_failed"
    UNENCODABLE = "unencodable"
    UNDECODABLE = "undecodable"


@dataclass(frozen=True)
class FieldDiff:
    """One field that differs: its path (``status``, ``slides[2].title``) and both values."""

    path: str
    memory: Any
    db: Any

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "memory": self.memory, "db": self.db}


@dataclass(frozen=True)
class Drift:
    key: str
    kind: DriftKind
    fields: tuple[FieldDiff, ...] = ()
    detail: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "kind": self.kind.value,
                "fields": [f.to_dict() for f in self.fields], "detail": self.detail}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Drift:
        return cls(
            key=data["key"], kind=DriftKind(data["kind"]),
            fields=tuple(FieldDiff(f["path"], f["memory"], f["db"]) for f in data["fields"]),
            detail=data.get("detail"),
        )


@dataclass(frozen=True)
class VerifyReport:
    """One dict compared with the database: how many keys were checked and what drifted."""

    instance_id: str
    stage: str
    checked: int
    drifts: tuple[Drift, ...] = ()
    queued_writes: int = 0
    failed_writes: int = 0
    source: str = "process"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def consistent(self) -> bool:
        return not self.drifts

    def to_dict(self) -> dict[str, Any]:
        return {
            "instance_id": self.instance_id, "stage": self.stage, "checked": self.checked,
            "consistent": self.consistent, "drifts": [d.to_dict() for d in self.drifts],
            "queued_writes": self.queued_writes, "failed_writes": self.failed_writes,
            "source": self.source, **self.extra,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VerifyReport:
        known = {"instance_id", "stage", "checked", "consistent", "drifts", "queued_writes",
                 "failed_writes", "source"}
        return cls(
            instance_id=data["instance_id"], stage=data["stage"], checked=data["checked"],
            drifts=tuple(Drift.from_dict(d) for d in data["drifts"]),
            queued_writes=data.get("queued_writes", 0),
            failed_writes=data.get("failed_writes", 0), source=data.get("source", "process"),
            extra={k: v for k, v in data.items() if k not in known},
        )


def parse_report(text: str) -> VerifyReport:
    """A report as an instance wrote it into the control plane; `ValueError` saying what is
    wrong when the row is not one (not JSON, or not a report's shape)."""
    try:
        data = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"not JSON ({exc})") from None
    try:
        return VerifyReport.from_dict(data)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a verify report ({type(exc).__name__}: {exc})") from None


def diff_documents(memory: Any, db: Any, path: str = "") -> list[FieldDiff]:
    """The fields where two JSON documents differ, deepest first found, at most a screenful."""
    found: list[FieldDiff] = []
    _diff(memory, db, path, found)
    return found[:MAX_FIELD_DIFFS]


def _diff(memory: Any, db: Any, path: str, found: list[FieldDiff]) -> None:
    if len(found) >= MAX_FIELD_DIFFS:
        return
    if isinstance(memory, dict) and isinstance(db, dict):
        for name in list(memory) + [k for k in db if k not in memory]:
            child = f"{path}.{name}" if path else str(name)
            if name not in db:
                found.append(FieldDiff(child, memory[name], None))
            elif name not in memory:
                found.append(FieldDiff(child, None, db[name]))
            else:
                _diff(memory[name], db[name], child, found)
        return
    if isinstance(memory, list) and isinstance(db, list) and len(memory) == len(db):
        for index, (left, right) in enumerate(zip(memory, db, strict=True)):
            _diff(left, right, f"{path}[{index}]", found)
        return
    if memory != db or type(memory) is not type(db):
        found.append(FieldDiff(path or "(value)", memory, db))
