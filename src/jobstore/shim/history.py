"""A job's audit trail: `JobVersion`, one version of a job as ``history()`` returns it."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from ..codec import Codec
from ..db.jobs import JobEvent

V = TypeVar("V")


class JobVersion(Generic[V]):
    """One version of a job from its history; a deletion has no value."""

    __slots__ = ("at", "key", "op", "payload", "status", "value", "version", "written_by")

    def __init__(self, key: str, version: int, op: str, value: V | None, payload: str | None,
                 status: str | None, at: Any, written_by: str) -> None:
        self.key, self.version, self.op, self.value = key, version, op, value
        self.payload, self.status, self.at, self.written_by = payload, status, at, written_by

    @classmethod
    def from_event(cls, key: str, event: JobEvent, codec: Codec[V]) -> JobVersion[V]:
        value = None if event.payload is None else codec.decode(key, event.payload)
        return cls(key, event.version, event.op, value, event.payload, event.status, event.at,
                   event.written_by)

    def __repr__(self) -> str:
        return f"JobVersion({self.key!r}, version={self.version}, op={self.op!r})"
