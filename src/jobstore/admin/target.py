"""The database an admin command works on, opened without a `JobStore`: its tables, its URL
without the password, its errors as one line; and who is running the command."""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Engine, inspect
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from .. import config
from ..db.control import ControlPlane
from ..db.engine import create_store_engine, parse_url, prepare_engine, sqlite_path
from ..db.jobs import JobRows
from ..db.redact import password, reason, safe_url, scrub
from ..db.schema import Schema, build_schema
from ..db.upgrade import upgrade
from ..exceptions import JobStoreError, StoreUnavailableError

UrlLike = str | URL | Engine | None


@dataclass(frozen=True)
class Target:
    """One job table in one database, with the statement builders admin commands use."""

    engine: Engine
    schema: Schema
    rows: JobRows
    control: ControlPlane
    url: str
    """The URL with its password hidden."""
    secret: str | None
    """The URL's password, only so that error messages can be scrubbed of it."""

    @property
    def table(self) -> str:
        return self.schema.name

    def scrub(self, text: str) -> str:
        return scrub(text, self.secret)

    def reason(self, exc: BaseException) -> str:
        """One line about a database error, without its SQL, its parameters or the password."""
        return scrub(reason(exc), self.secret)


def actor() -> str:
    """Who is running this command, for the control row's ``changed_by``."""
    try:
        user = getpass.getuser()
    except Exception:  # no user name in this environment (a container without passwd)
        user = f"uid {os.getuid()}" if hasattr(os, "getuid") else "unknown"
    return f"jobstore cli: {user}@{socket.gethostname()} pid {os.getpid()}"


def writer_id() -> str:
    """The ``written_by`` of rows an admin command writes (at most 64 characters)."""
    return f"cli:{socket.gethostname()}:{os.getpid()}"[:64]


def resolve_table(table: str | None) -> str:
    return config.table(table)


@contextmanager
def open_target(url: UrlLike, table: str | None, *, create: bool = False) -> Iterator[Target]:
    """The database at ``url`` (else ``$JOBSTORE_URL``, else ``sqlite:///jobstore.db``).

    Unless ``create``, a missing SQLite file or missing jobstore tables are an error that says
    to run ``jobstore init``, rather than an empty database made by a typo. Database errors
    inside the block become `StoreUnavailableError` with one line and no password.
    """
    resolved = config.url(url)
    shown = safe_url(resolved)
    secret = password(resolved)
    name = resolve_table(table)
    schema = build_schema(name)
    owns = not isinstance(resolved, Engine)
    engine: Engine
    if isinstance(resolved, Engine):
        engine = resolved.execution_options(isolation_level="AUTOCOMMIT")
        prepare_engine(resolved)
    else:
        if not create:
            _require_sqlite_file(resolved, shown)
        engine = create_store_engine(resolved)
    target = Target(engine, schema, JobRows(engine, schema), ControlPlane(engine, schema),
                    shown, secret)
    try:
        if not create:
            _require_tables(target)
        yield target
    except DBAPIError as exc:
        raise StoreUnavailableError(f"database error at {shown}: {target.reason(exc)}") from exc
    except SQLAlchemyError as exc:
        raise JobStoreError(f"database error at {shown}: {target.reason(exc)}") from exc
    finally:
        if owns:
            engine.dispose()


def _require_sqlite_file(url: str | URL, shown: str) -> None:
    parsed = parse_url(url)
    if parsed.get_backend_name() != "sqlite":
        return
    path = sqlite_path(parsed)
    if path is not None and not os.path.exists(path):
        raise JobStoreError(
            f"no SQLite database at {path} ({shown}): run `jobstore init` to create it, "
            "or point --url / JOBSTORE_URL at the service's database"
        )


def _require_tables(target: Target) -> None:
    try:
        present = set(inspect(target.engine).get_table_names())
    except DBAPIError as exc:
        raise StoreUnavailableError(
            f"cannot reach the database at {target.url}: {target.reason(exc)}"
        ) from exc
    missing = [t for t in (target.schema.control.name, target.table) if t not in present]
    if missing:
        raise JobStoreError(
            f"no jobstore table {target.table!r} at {target.url} (missing: "
            f"{', '.join(missing)}): run `jobstore init`, or check --table / JOBSTORE_TABLE"
        )
    upgrade(target.engine, target.schema)
