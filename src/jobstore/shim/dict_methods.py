"""The dict methods `MutableMapping` lacks: ``copy``, ``|``, ``|=``, ``popitem`` and ``reversed``.

Each is built on the mapping protocol the store already has, so it means the same in every
stage. ``popitem`` and ``reversed`` follow the store's iteration order (``reversed`` lists the
keys first: a database scan only runs forwards); ``popitem`` takes the last key, as a dict's
does, and deletes it through ``pop``, so a job another process removed in between is skipped
rather than reported as popped.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any, TypeVar

from .keys import MISSING

K = TypeVar("K")
V = TypeVar("V")
Self = TypeVar("Self", bound="DictMethods[Any, Any]")


class DictMethods(MutableMapping[K, V]):
    """``copy``, ``|``, ``|=``, ``popitem`` and ``reversed`` for a `MutableMapping`."""

    def copy(self) -> dict[K, V]:
        """A plain dict of every job, in iteration order: a snapshot, not a second store."""
        return dict(self.items())

    def __or__(self, other: Mapping[K, V]) -> dict[K, V]:
        if not isinstance(other, Mapping):
            return NotImplemented
        merged = self.copy()
        merged.update(other)
        return merged

    def __ror__(self, other: Mapping[K, V]) -> dict[K, V]:
        if not isinstance(other, Mapping):
            return NotImplemented
        merged = dict(other)
        merged.update(self.items())
        return merged

    def __ior__(self: Self, other: Any) -> Self:  # type: ignore[misc]  # as a dict's
        """``store |= other``: ``update`` (one transaction), and the store itself."""
        self.update(other)
        return self

    def popitem(self) -> tuple[K, V]:
        """Remove and return the last job in iteration order; `KeyError` when there is none."""
        for key in reversed(list(self)):
            value = self.pop(key, MISSING)
            if value is not MISSING:
                return key, value
        raise KeyError("popitem(): the store is empty")

    def __reversed__(self) -> Iterator[K]:
        return reversed(list(self))
