"""This process's side of a store: its identity, and what happens at fork and at exit.

A forked child gets a new identity (its own heartbeat row), its own connections and its own
background loop; at interpreter exit every store still open is closed, so changes made in place
since the last round are written back.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import socket
import uuid
import weakref
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from ..timefmt import utcnow


@dataclass(frozen=True)
class Identity:
    """Who writes: the instance id in ``written_by`` and heartbeats, with its host and pid."""

    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    nonce: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    started_at: datetime = field(default_factory=utcnow)

    @property
    def instance_id(self) -> str:
        return f"{self.host}:{self.pid}:{self.nonce}"


class _OpenStore(Protocol):
    def close(self) -> None: ...
    def _after_fork_in_child(self) -> None: ...


_open_stores: weakref.WeakValueDictionary[int, _OpenStore] = weakref.WeakValueDictionary()


def register(store: _OpenStore) -> None:
    _open_stores[id(store)] = store


def unregister(store: _OpenStore) -> None:
    _open_stores.pop(id(store), None)


def _after_fork_in_child() -> None:
    for store in list(_open_stores.values()):
        store._after_fork_in_child()


def _close_open_stores() -> None:
    """At interpreter exit, write back what open stores still hold."""
    for store in list(_open_stores.values()):
        with contextlib.suppress(Exception):
            store.close()


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_close_open_stores)
