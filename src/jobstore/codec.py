"""Values to JSON and back, through pydantic's ``TypeAdapter``; never pickle.

One adapter serves dataclasses, pydantic models, TypedDicts and plain JSON values, with
datetimes, enums and UUIDs inside them. The payload column holds the value's own JSON document.
"""

from __future__ import annotations

import enum
import json
import math
from typing import Any, Generic, TypeVar

from pydantic import JsonValue, TypeAdapter, ValidationError
from pydantic_core import PydanticSerializationError

from .exceptions import DecodeError, EncodeError

T = TypeVar("T")

STATUS_MAX = 64

IMMUTABLE_TYPES: tuple[type, ...] = (str, bytes, int, float, bool, type(None), tuple, frozenset)
"""Values of these types cannot change in place, so handed-out copies need no tracking."""


class Codec(Generic[T]):
    """Encodes values of one model to JSON text and decodes them back."""

    def __init__(self, model: type[T] | Any | None) -> None:
        self.model = model
        self._plain = model is None
        self._adapter: TypeAdapter[Any] = TypeAdapter(JsonValue if model is None else model)
        self.name = "JSON" if model is None else getattr(model, "__name__", repr(model))

    def encode(self, value: Any) -> str:
        """The value's JSON document, or `EncodeError` if it has none that reads back equal."""
        try:
            if self._plain:
                self._adapter.validate_python(value, strict=True)
            data = self._adapter.dump_json(value, warnings="error")
            # JSON has no NaN or infinity: pydantic writes them as null, which would read back
            # as None (or not at all, into a float field), so they are refused here. The
            # usual null is a field set to None: a second dump without those (far cheaper than
            # walking the value) clears most documents before the walk.
            if b"null" in data and (
                self._plain
                or b"null" in self._adapter.dump_json(value, warnings="none", exclude_none=True)
            ) and _has_non_finite(
                value if self._plain else self._adapter.dump_python(value, warnings="none")
            ):
                raise ValueError("NaN and infinity have no JSON form")
        except (PydanticSerializationError, ValidationError, ValueError, TypeError) as exc:
            raise EncodeError(
                f"cannot encode {type(value).__name__} as {self.name}: {_first_line(exc)}"
            ) from exc
        return data.decode()

    def decode(self, key: str, payload: str | bytes | None) -> T:
        """The value stored under ``key``, or `DecodeError` naming the key."""
        if payload is None:
            raise DecodeError(key, "the payload is empty")
        try:
            value: T = self._adapter.validate_json(payload)
        except ValidationError as exc:
            raise DecodeError(key, _first_line(exc)) from exc
        return value


def status_of(value: Any) -> str | None:
    """The value's ``status`` field as text, for the indexed column; None when it has none."""
    status = value.get("status") if isinstance(value, dict) else getattr(value, "status", None)
    if status is None:
        return None
    if isinstance(status, enum.Enum):
        status = status.value
    return str(status)[:STATUS_MAX]


def parse_document(payload: str | bytes | None) -> Any:
    """A payload as plain JSON data, for comparisons that name fields."""
    if payload is None:
        return None
    return json.loads(payload)


def _has_non_finite(data: Any) -> bool:
    """Whether plain data (dicts, lists, scalars) holds a float NaN or infinity."""
    if isinstance(data, float):
        return not math.isfinite(data)
    if isinstance(data, dict):
        return any(_has_non_finite(item) for item in data.values())
    if isinstance(data, (list, tuple, set, frozenset)):
        return any(_has_non_finite(item) for item in data)
    return False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return " ".join(lines[:3]) if lines else type(exc).__name__
