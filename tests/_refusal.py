"""A real database that refuses some values: triggers on a job table that reject a payload
containing a marker, on SQLite, PostgreSQL and MariaDB alike.

    with refusing(url, table):          # the table must exist: open a store on it first
        jobs["a"] = {"note": "poison"}  # db_only: WriteRefusedError; dual_write: queued

The database answers as it would for any trigger (SQLite ``RAISE(ABORT)``, PostgreSQL
``RAISE EXCEPTION``, MariaDB ``SIGNAL SQLSTATE '45000'``), on inserts and updates of the job
table, so the row's upsert and its history event are rolled back together. Leaving the block
removes the triggers (and PostgreSQL's function).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sqlalchemy import create_engine

MARKER = "poison"
REASON = "refused: the payload holds the marker"

_INSTALL = {
    "sqlite": [
        "CREATE TRIGGER {t}_refuse_{name} BEFORE {op} ON {t} WHEN NEW.payload LIKE '%{m}%' "
        "BEGIN SELECT RAISE(ABORT, '{r}'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION {t}_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF NEW.payload LIKE '%{m}%' THEN RAISE EXCEPTION '{r}'; END IF; RETURN NEW; END $$",
        "CREATE TRIGGER {t}_refuse BEFORE INSERT OR UPDATE ON {t} "
        "FOR EACH ROW EXECUTE FUNCTION {t}_refuse()",
    ],
    "mysql": [
        "CREATE TRIGGER {t}_refuse_{name} BEFORE {op} ON {t} FOR EACH ROW BEGIN "
        "IF NEW.payload LIKE '%{m}%' THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '{r}'; "
        "END IF; END"
    ],
}
"""Per backend, the statements that make the job table refuse; one with ``{name}`` runs once
for INSERT and once for UPDATE."""
_REMOVE = {
    "sqlite": ["DROP TRIGGER IF EXISTS {t}_refuse_{name}"],
    "postgresql": ["DROP FUNCTION IF EXISTS {t}_refuse() CASCADE"],
    "mysql": ["DROP TRIGGER IF EXISTS {t}_refuse_{name}"],
}


@contextlib.contextmanager
def refusing(url: str, table: str, marker: str = MARKER) -> Iterator[None]:
    """While inside, the job table ``table`` refuses every payload that contains ``marker``."""
    _run(url, _INSTALL, table, marker)
    try:
        yield
    finally:
        _run(url, _REMOVE, table, marker)


def _run(url: str, statements: dict[str, list[str]], table: str, marker: str) -> None:
    engine = create_engine(url)
    try:
        backend = engine.dialect.name
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            for template in statements[backend]:
                for op in ("INSERT", "UPDATE") if "{name}" in template else ("",):
                    # No parameters: the drivers leave the statement's % signs alone.
                    cursor.execute(template.format(t=table, op=op, name=op.lower(), m=marker,
                                                   r=REASON))
            raw.commit()
        finally:
            raw.close()
    finally:
        engine.dispose()
