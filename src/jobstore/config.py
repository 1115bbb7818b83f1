"""Every ``JOBSTORE_*`` environment variable the library reads, and the defaults behind them."""

from __future__ import annotations

import math
import os

from sqlalchemy import Engine
from sqlalchemy.engine import URL

from .db.schema import DEFAULT_TABLE
from .exceptions import JobStoreError
from .stages import Stage

DEFAULT_URL = "sqlite:///jobstore.db"
DEFAULT_SHADOW_SAMPLE = 0.1
DEFAULT_POOL_SIZE = 1
"""Connections a store's engine keeps: one, shared by its callers and its background loop."""
DEFAULT_POOL_MAX_OVERFLOW = 7
"""Connections it may open beyond those while its threads contend, closed when they stop."""


def url(given: str | URL | Engine | None = None) -> str | URL | Engine:
    """The database: the one given, else ``$JOBSTORE_URL``, else an SQLite file here."""
    if given is not None:
        return given
    return os.environ.get("JOBSTORE_URL") or DEFAULT_URL


def table(given: str | None = None) -> str:
    """The job table: the one given, else ``$JOBSTORE_TABLE``, else ``jobs``."""
    return given or os.environ.get("JOBSTORE_TABLE") or DEFAULT_TABLE


def pinned_stage() -> Stage | None:
    """The stage ``$JOBSTORE_STAGE`` pins this process to (an emergency override), if any."""
    name = os.environ.get("JOBSTORE_STAGE")
    return Stage.parse(name) if name else None


def shadow_sample_rate(given: float | None = None) -> float:
    """The share of shadow reads compared: given, else ``$JOBSTORE_SHADOW_SAMPLE``, else 0.1."""
    value = given
    if value is None:
        value = float(os.environ.get("JOBSTORE_SHADOW_SAMPLE", DEFAULT_SHADOW_SAMPLE))
    if not 0.0 <= value <= 1.0 or math.isnan(value):
        raise ValueError("shadow_sample_rate must be between 0 and 1")
    return value


def queue_dir() -> str:
    """Where server databases' queue journals live: ``$JOBSTORE_QUEUE_DIR``, else
    ``$XDG_STATE_HOME/jobstore``, else ``~/.local/state/jobstore``. (An SQLite database keeps
    its journal beside its file.)"""
    given = os.environ.get("JOBSTORE_QUEUE_DIR")
    if given:
        return given
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                              "state")
    return os.path.join(state, "jobstore")


def pool_size() -> int:
    """Connections a store's own engine keeps: ``$JOBSTORE_POOL_SIZE``, else 1."""
    return _whole("JOBSTORE_POOL_SIZE", DEFAULT_POOL_SIZE, least=1)


def pool_max_overflow() -> int:
    """Connections beyond `pool_size` under contention: ``$JOBSTORE_POOL_MAX_OVERFLOW``, else 7."""
    return _whole("JOBSTORE_POOL_MAX_OVERFLOW", DEFAULT_POOL_MAX_OVERFLOW, least=0)


def _whole(name: str, default: int, *, least: int) -> int:
    given = os.environ.get(name, "").strip()
    if not given:
        return default
    try:
        value = int(given)
    except ValueError:
        value = least - 1
    if value < least:
        raise JobStoreError(f"{name} must be a whole number, {least} or more (not {given[:40]!r})")
    return value
