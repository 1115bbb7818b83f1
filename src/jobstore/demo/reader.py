"""What the demo reads from its SQLite file directly, with the stdlib's sqlite3, to check what it
narrates without going through jobstore (and the one bad write it makes on purpose)."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..stages import Stage
from .service import TABLE


@dataclass(frozen=True)
class Row:
    """One job row as stored."""

    key: str
    status: str | None
    version: int
    payload: dict[str, Any]


class Database:
    """Direct reads (and one deliberate bad write) with the stdlib's sqlite3."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        try:
            yield conn
        finally:
            conn.close()

    def row(self, key: str) -> Row | None:
        with self._connect() as conn:
            found = conn.execute(
                f"SELECT key, status, version, payload FROM {TABLE} WHERE key = ?", (key,)
            ).fetchone()
        return None if found is None else Row(found[0], found[1], found[2], json.loads(found[3]))

    def rows(self) -> dict[str, Row]:
        with self._connect() as conn:
            found = conn.execute(f"SELECT key, status, version, payload FROM {TABLE}").fetchall()
        return {r[0]: Row(r[0], r[1], r[2], json.loads(r[3])) for r in found}

    def stage(self) -> Stage | None:
        with self._connect() as conn:
            found = conn.execute("SELECT stage FROM jobstore_control WHERE job_table = ?",
                                 (TABLE,)).fetchone()
        return None if found is None else Stage(found[0])

    def first_completed_at(self, key: str) -> datetime | None:
        """When the database first held the job as completed (its history's timestamp)."""
        with self._connect() as conn:
            found = conn.execute(
                f"SELECT at FROM {TABLE}_events WHERE key = ? AND status = 'completed' "
                "ORDER BY version LIMIT 1", (key,)).fetchone()
        return None if found is None else parse_time(str(found[0]))

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        with self._connect() as conn:
            return conn.execute(sql, params).rowcount


def parse_time(text: str) -> datetime:
    """An ISO time as SQLite or JSON holds it, naive meaning UTC."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "T"))
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
