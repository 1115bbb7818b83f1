"""The answer a running store gives to "which jobs do you hold?": the keys its dict holds and
those it keeps as queued writes, named by the text of their rows.

A move to ``memory`` hides every job that no live dict holds (``memory`` does not read the
database); `jobstore.admin.rollback_guard` asks every live store for this answer, through the
verify requests of the control plane, and counts the jobs in the table that none of them
holds. Answering reads nothing from the jobs, so asking costs the fleet no database load
beyond the answer rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

KIND = "held_keys"
"""The ``kind`` of the answer document, beside a verify report in the same table."""


@dataclass(frozen=True)
class HeldKeys:
    """The keys one store holds: in its dict, or as writes queued for the database."""

    instance_id: str
    stage: str
    keys: frozenset[str]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": KIND, "instance_id": self.instance_id, "stage": self.stage,
                "keys": sorted(self.keys)}

    @classmethod
    def from_json(cls, text: str) -> HeldKeys | None:
        """The answer as an instance wrote it into the control plane, or None for a row that
        is not one (not JSON, or not this answer's shape)."""
        try:
            data = json.loads(text)
        except (TypeError, ValueError):
            return None
        return cls.from_dict(data) if isinstance(data, dict) else None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HeldKeys | None:
        """The answer, or None for a document that is not one (a release that does not know
        the question answers it with a verify report, which names no keys)."""
        if data.get("kind") != KIND or not isinstance(data.get("keys"), list):
            return None
        return cls(instance_id=str(data.get("instance_id")), stage=str(data.get("stage")),
                   keys=frozenset(str(k) for k in data["keys"]))
