"""PgBouncer in transaction mode: what a URL's ``?pgbouncer=true`` changes.

In transaction mode PgBouncer gives each transaction whichever server connection is free, so a
client may rely on nothing that lives in a server session. For jobstore's engines that means:

- psycopg prepares a statement the sixth time it runs it (``prepare_threshold``, 5), and the
  prepared statement lives in one server session; PgBouncer before 1.21 (Debian 12 ships 1.18)
  cannot track it, so the next transaction on another server connection fails with
  "prepared statement ... does not exist". Through PgBouncer the engine never prepares
  (``prepare_threshold=None``);
- PgBouncer refuses the ``options`` startup parameter ("unsupported startup parameter:
  options"), which jobstore uses to set ``statement_timeout``. Through PgBouncer it is not sent:
  set the timeout on the role (``ALTER ROLE app SET statement_timeout = '15s'``); the client's
  own reply bound (`jobstore.db.drivers`) holds either way;
- ``LISTEN`` is a session's: other code asks `through_pgbouncer` before relying on it.

The parameter is jobstore's, not libpq's: it is taken out of the URL before the driver sees it.
"""

from __future__ import annotations

import weakref

from sqlalchemy import Engine
from sqlalchemy.engine import URL, Dialect

PARAM = "pgbouncer"
_TRUE = ("true", "1", "yes", "on")

_engines: weakref.WeakSet[Dialect] = weakref.WeakSet()
"""The dialects of engines built to go through PgBouncer: an engine and its
``execution_options`` copies share one dialect, and a disposed engine keeps it."""


def split(url: URL) -> tuple[URL, bool]:
    """``url`` without the ``pgbouncer`` parameter, and whether it asked for PgBouncer."""
    if PARAM not in url.query:
        return url, False
    value = url.query[PARAM]
    text = value[-1] if isinstance(value, tuple) else value
    return url.difference_update_query([PARAM]), text.lower() in _TRUE


def mark(engine: Engine) -> None:
    """Record that ``engine`` reaches its server through PgBouncer."""
    _engines.add(engine.dialect)


def through_pgbouncer(engine: Engine) -> bool:
    """Whether ``engine`` was built from a URL with ``?pgbouncer=true``: then nothing that
    lives in a server session (prepared statements, ``LISTEN``, ``SET``) survives a
    transaction."""
    return engine.dialect in _engines
