"""``items()`` and ``values()``: set-like views, as a dict's are, iterated in one streamed scan."""

from __future__ import annotations

from collections.abc import ItemsView, Iterator, ValuesView
from typing import TYPE_CHECKING, Any, TypeVar

from .keys import MISSING

if TYPE_CHECKING:
    from .store import JobStore

K = TypeVar("K")
V = TypeVar("V")


class JobItemsView(ItemsView[K, V]):
    def __init__(self, store: JobStore[K, V]) -> None:
        super().__init__(store)
        self._store = store

    def __iter__(self) -> Iterator[tuple[K, V]]:
        return self._store._parts.policy.items()  # type: ignore[return-value]

    def __len__(self) -> int:
        return len(self._store)

    def __contains__(self, item: object) -> bool:
        if not isinstance(item, tuple) or len(item) != 2:
            return False
        key, value = item
        found = self._store.get(key, MISSING)
        return found is not MISSING and (found is value or bool(found == value))


class JobValuesView(ValuesView[V]):
    def __init__(self, store: JobStore[Any, V]) -> None:
        super().__init__(store)
        self._store = store

    def __iter__(self) -> Iterator[V]:
        return (value for _key, value in self._store._parts.policy.items())

    def __len__(self) -> int:
        return len(self._store)

    def __contains__(self, item: object) -> bool:
        return any(value is item or value == item for value in self)
