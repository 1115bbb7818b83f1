"""What the store knows about each key its dict tier holds."""

from __future__ import annotations

import math

NEVER = math.inf


class Entry:
    """The database's view of one dict entry.

    ``payload`` is the JSON last written to, or read from, the database; ``version`` its row
    version; ``fresh_until`` the monotonic time after which a read checks the database again;
    ``pending`` is true while the dict holds a write the database has not taken yet.
    """

    __slots__ = ("fresh_until", "payload", "pending", "version")

    def __init__(self, payload: str | None, version: int | None, fresh_until: float,
                 pending: bool) -> None:
        self.payload = payload
        self.version = version
        self.fresh_until = fresh_until
        self.pending = pending

    def __repr__(self) -> str:
        return (f"Entry(version={self.version}, pending={self.pending}, "
                f"fresh_until={self.fresh_until:.3f})")
