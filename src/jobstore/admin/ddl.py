"""``jobstore init --sql``: the DDL `init` would run, for a DBA who creates the tables himself.

Compiled for the URL's dialect without connecting: a service whose account has no CREATE
rights opens the tables a DBA made from it as if `init` had made them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, create_mock_engine

from .. import config
from ..db.engine import parse_url
from ..db.schema import SCHEMA_VERSION, build_schema
from .exits import ExitCode
from .target import UrlLike, resolve_table


@dataclass(frozen=True)
class DdlResult:
    dialect: str
    table: str
    statements: tuple[str, ...]
    """Each statement without its terminating semicolon, tables before their indexes."""

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.OK

    @property
    def script(self) -> str:
        """The statements as one script, each ended by ``;``."""
        header = (f"-- jobstore schema version {SCHEMA_VERSION}, table {self.table}, "
                  f"for {self.dialect}\n")
        return header + "".join(f"{s};\n\n" for s in self.statements)

    def to_dict(self) -> dict[str, Any]:
        return {"dialect": self.dialect, "table": self.table, "schema_version": SCHEMA_VERSION,
                "statements": list(self.statements)}


def ddl(url: UrlLike = None, *, table: str | None = None) -> DdlResult:
    """The CREATE statements for the job table, its history and the control tables."""
    resolved = config.url(url)
    target = resolved.url if isinstance(resolved, Engine) else parse_url(resolved)
    name = resolve_table(table)
    statements: list[str] = []

    def collect(sql: Any, *_multiparams: Any, **_params: Any) -> None:
        statements.append(str(sql.compile(dialect=mock.dialect)).strip())

    mock = create_mock_engine(target, collect)
    build_schema(name).metadata.create_all(mock, checkfirst=False)
    return DdlResult(mock.dialect.name, name, tuple(statements))
