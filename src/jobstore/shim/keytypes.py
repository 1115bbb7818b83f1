"""The type a store's keys have (`str`, `int` or `uuid.UUID`) and how it crosses to the database.

The database always holds text keys. A `KeyType` says which keys a store may write (anything
else is a `TypeError`, before the dict changes), which keys a read may look for (anything else
is simply not there, as in a dict: ``get`` gives the default, ``in`` is False), and how a key
becomes the text of its row and comes back. ``int`` keys are canonical decimal text; UUID keys
canonical lowercase hyphenated text, so two processes always name one job by one row.

``bool`` is not an ``int`` key: writing ``True`` is a `TypeError` (a dict would silently merge
it with ``1``, which is never what a job id means). Reading ``True`` finds job ``1``, as a dict
does, because the store's own dict tier cannot tell them apart.
"""

from __future__ import annotations

import uuid
from typing import Any, Generic, TypeVar

from ..db.schema import KEY_MAX
from .keys import check_key

K = TypeVar("K")


class KeyType(Generic[K]):
    """``str`` keys: today's rules (at most 255 characters, no NUL, valid Unicode)."""

    python: type[Any] = str
    converts = False
    """Whether keys need converting at the database boundary (the `str` default does not)."""

    def check_write(self, key: object) -> K:
        """The key as the store keeps it; `TypeError` or `ValueError` for one it cannot."""
        check_key(key)
        return key  # type: ignore[return-value]

    def for_read(self, key: object) -> K:
        """The stored key equal to ``key``; `KeyError` when no stored key can be."""
        if not isinstance(key, str):
            raise KeyError(key)
        check_key(key)
        return key  # type: ignore[return-value]

    def readable(self, key: object) -> bool:
        try:
            self.for_read(key)
        except (KeyError, ValueError):
            return False
        return True

    def to_db(self, key: K) -> str:
        return str(key)

    def from_db(self, text: str) -> K:
        return text  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"<KeyType {self.python.__name__}>"


class IntKeys(KeyType[int]):
    """``int`` keys, held in the database as canonical decimal text."""

    python = int
    converts = True

    def check_write(self, key: object) -> int:
        if not isinstance(key, int) or isinstance(key, bool):
            raise TypeError(f"job keys of this store are int, not {type(key).__name__}")
        key = int(key)  # an IntEnum member is stored as its number
        if len(str(key)) > KEY_MAX:
            raise ValueError(f"job keys are at most {KEY_MAX} digits")
        return key

    def for_read(self, key: object) -> int:
        if isinstance(key, int):
            return int(key)
        if isinstance(key, float) and key.is_integer():
            return int(key)  # 1.0 == 1 with the same hash: a dict finds job 1 for it too
        raise KeyError(key)

    def from_db(self, text: str) -> int:
        return int(text)


class UUIDKeys(KeyType[uuid.UUID]):
    """`uuid.UUID` keys, held in the database as canonical lowercase hyphenated text."""

    python = uuid.UUID
    converts = True

    def check_write(self, key: object) -> uuid.UUID:
        if not isinstance(key, uuid.UUID):
            raise TypeError(f"job keys of this store are UUID, not {type(key).__name__}")
        return key

    def for_read(self, key: object) -> uuid.UUID:
        if not isinstance(key, uuid.UUID):
            raise KeyError(key)
        return key

    def from_db(self, text: str) -> uuid.UUID:
        return uuid.UUID(text)


KEY_TYPES: dict[type[Any], KeyType[Any]] = {str: KeyType(), int: IntKeys(), uuid.UUID: UUIDKeys()}
"""The key types a store can have, by the Python type given as ``key_type``."""


def key_type(python: type[Any]) -> KeyType[Any]:
    """The `KeyType` for ``key_type=``; `ValueError` names the ones there are."""
    found = KEY_TYPES.get(python)
    if found is None:
        names = ", ".join(t.__qualname__ if t.__module__ == "builtins" else
                          f"{t.__module__}.{t.__qualname__}" for t in KEY_TYPES)
        raise ValueError(f"key_type must be one of {names}, not {python!r}")
    return found


def text_key(key: object) -> str:
    """A key as reports, heartbeats and the CLI name it: the text of its row."""
    return str(key)
