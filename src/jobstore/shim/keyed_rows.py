"""`KeyedRows`: the job rows of a store whose keys are not text, converting keys in and out.

The policies, the dict tier, the tracker and the retry queue all hold the store's own keys
(``int`` or `uuid.UUID`); only the database holds text. So the store's `JobRows` is this
subclass when ``key_type`` is not `str` (the `str` default pays nothing), and every statement
that names a key converts it here, on the one boundary. Full rows (`JobRow`, read by the admin
commands) keep their text keys.

Every public method of `JobRows` that takes or gives a key is overridden here;
``tests/test_key_types.py`` fails when one is added to `JobRows` and not here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import Engine

from ..db.jobs import SCAN_BATCH, JobEvent, JobRow, JobRows, JobWrite, StoredRow
from ..db.schema import Schema
from .keytypes import KeyType

TEXT_ONLY = frozenset({"release", "count", "count_by_status", "scan_rows", "rows", "clear",
                       "backfill"})
"""`JobRows` methods that name no key, or that give full rows with their text keys."""


class KeyedRows(JobRows):
    """`JobRows` speaking the store's key type; the database sees text."""

    def __init__(self, engine: Engine, schema: Schema, keys: KeyType[Any], *,
                 keep_connection: bool = False) -> None:
        super().__init__(engine, schema, keep_connection=keep_connection)
        self.keys = keys

    def _write(self, write: JobWrite) -> JobWrite:
        return JobWrite(self.keys.to_db(write.key), write.payload, write.status)

    def get(self, key: Any) -> StoredRow | None:
        return super().get(self.keys.to_db(key))

    def get_many(self, keys: Sequence[Any]) -> dict[Any, StoredRow]:
        by_text = {self.keys.to_db(key): key for key in keys}
        return {by_text[text]: row for text, row in super().get_many(list(by_text)).items()}

    def row(self, key: Any) -> JobRow | None:
        return super().row(self.keys.to_db(key))

    def scan(self, *, with_payload: bool = True, status: str | None = None,
             batch: int = SCAN_BATCH) -> Iterator[tuple[Any, str, int]]:
        from_db = self.keys.from_db
        for text, payload, version in super().scan(with_payload=with_payload, status=status,
                                                   batch=batch):
            yield from_db(text), payload, version

    def history(self, key: Any) -> list[JobEvent]:
        return super().history(self.keys.to_db(key))

    def upsert(self, key: Any, payload: str, status: str | None, written_by: str) -> int:
        return super().upsert(self.keys.to_db(key), payload, status, written_by)

    def upsert_many(self, writes: Iterable[JobWrite], written_by: str) -> dict[Any, int]:
        listed = list(writes)
        by_text = {self.keys.to_db(w.key): w.key for w in listed}
        versions = super().upsert_many([self._write(w) for w in listed], written_by)
        return {by_text[text]: version for text, version in versions.items()}

    def insert_if_absent(self, write: JobWrite, written_by: str) -> StoredRow:
        return super().insert_if_absent(self._write(write), written_by)

    def delete(self, key: Any, written_by: str) -> StoredRow | None:
        return super().delete(self.keys.to_db(key), written_by)

    def write_if_version(self, write: JobWrite, written_by: str, expected: int) -> int | None:
        return super().write_if_version(self._write(write), written_by, expected)

    def deleted_since(self, key: Any, version: int) -> bool:
        return super().deleted_since(self.keys.to_db(key), version)

    def modify(self, key: Any, change: Callable[[StoredRow | None], JobWrite],
               written_by: str) -> StoredRow:
        to_db = self.keys.to_db

        def change_in_text(row: StoredRow | None) -> JobWrite:
            return self._write(change(row))

        return super().modify(to_db(key), change_in_text, written_by)


def rows_for(engine: Engine, schema: Schema, keys: KeyType[Any]) -> JobRows:
    """The rows a store uses: plain `JobRows` for text keys, `KeyedRows` otherwise."""
    if not keys.converts:
        return JobRows(engine, schema, keep_connection=True)
    return KeyedRows(engine, schema, keys, keep_connection=True)
