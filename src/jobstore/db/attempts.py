"""Quick attempts: database calls whose failure costs their caller nothing but a queued write.

In a dict-first stage a write the database does not take is queued, so waiting 20 s for a frozen
server to answer buys the caller nothing. Inside `quick_attempt()` every connection jobstore's
engines open and every reply they wait for is bounded by the engine's ``quick_timeout`` (1 s
by default) instead of its ``connect_timeout`` and reply bound, on the same pooled connections
(no second pool: a process holds no more connections for it). Once one wait of the attempt has
timed out, the server is taken to be gone: the attempt's later statements and connections
fail at once, before anything is sent, rather than each waiting out the bound again (a pool's
pre-ping that timed out is not followed by a reconnect that times out too).

`unhurried()` lifts the bound for a statement that is long by nature (``clear()`` of a large
table), also inside a quick attempt. The drivers read the bound in `jobstore.db.drivers`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar


class Attempt:
    """One quick attempt: whether a wait of it has already timed out."""

    __slots__ = ("_token", "stalled")

    def __init__(self) -> None:
        self.stalled = False

    def __enter__(self) -> Attempt:
        self._token = _current.set(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        _current.reset(self._token)


_current: ContextVar[Attempt | None] = ContextVar("jobstore_quick_attempt", default=None)


def current() -> Attempt | None:
    """The quick attempt the calling code runs in, or None (the engine's own bounds)."""
    return _current.get()


def quick_attempt() -> Attempt:
    """Run the database calls inside ``with quick_attempt():`` as one quick attempt (see the
    module docstring). A class rather than a generator: it is on every dict-first write."""
    return Attempt()


@contextmanager
def unhurried() -> Iterator[None]:
    """Run the calls inside with the engine's own bounds, even within a quick attempt."""
    token = _current.set(None)
    try:
        yield
    finally:
        _current.reset(token)
