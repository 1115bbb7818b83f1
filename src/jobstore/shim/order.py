"""Where the jobs only this process holds come in a listing: after the database's, in the
order the dict holds them (its insertion order), as DESIGN section 2 "Order" says."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def in_local_order(memory: Mapping[str, Any], keys: Iterable[str]) -> list[str]:
    """``keys`` in the order ``memory`` holds them; keys it does not hold are left out."""
    wanted = set(keys)
    if not wanted:
        return []
    return [key for key in list(memory) if key in wanted]
