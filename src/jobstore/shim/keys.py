"""What a job key may be: checked before the dict changes, so every backend can store it."""

from __future__ import annotations

from typing import Any

from ..db.schema import KEY_MAX

MISSING: Any = object()
"""The default that means "no default given", told apart from None."""


def check_key(key: object) -> None:
    """Raise `TypeError` or `ValueError` for a key the database could not hold as given."""
    if not isinstance(key, str):
        raise TypeError(f"job keys are str, not {type(key).__name__}")
    if len(key) > KEY_MAX:
        raise ValueError(f"job keys are at most {KEY_MAX} characters; this one has {len(key)}")
    # PostgreSQL refuses NUL, and no driver can send a lone surrogate.
    if "\x00" in key:
        raise ValueError(f"job keys cannot contain NUL characters: {key!r}")
    if not key.isascii():
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"job keys must be valid Unicode text: {key!r}") from None


def or_missing(value: Any, default: Any, key: object) -> Any:
    """``value``, else ``default``, else `KeyError`: the ending of ``pop``."""
    if value is not MISSING:
        return value
    if default is MISSING:
        raise KeyError(key)
    return default
