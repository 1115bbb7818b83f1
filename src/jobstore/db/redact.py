"""What of a database error or URL a person may see: one line, no SQL, no password."""

from __future__ import annotations


def reason(exc: BaseException) -> str:
    """One line about a database error, without its SQL or parameters."""
    original = getattr(exc, "orig", None)
    text = str(original if original is not None else exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]
