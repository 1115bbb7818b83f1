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
from pydantic_core import (
    PydanticSerializationError,
    SchemaSerializer,
    SchemaValidator,
    from_json,
)

from .exceptions import DecodeError, EncodeError
from .readback import FULL, SKIPPED, complete, flat_shape, read_back_error

T = TypeVar("T")

STATUS_MAX = 64

IMMUTABLE_TYPES: tuple[type, ...] = (str, bytes, int, float, bool, type(None), tuple, frozenset)
"""Values of these types cannot change in place, so handed-out copies need no tracking."""


class Codec(Generic[T]):
    """Encodes values of one model to JSON text and decodes them back."""

    def __init__(self, model: type[T] | Any | None, *, read_back: bool = True) -> None:
        """``read_back=False`` leaves out the read-back check: only the benchmark's baseline."""
        self.model = model
        self._plain = model is None
        self._adapter: TypeAdapter[Any] = TypeAdapter(JsonValue if model is None else model)
        self.name = "JSON" if model is None else getattr(model, "__name__", repr(model))
        # The adapter's own serializer and validator, called without TypeAdapter's wrappers,
        # which cost about as much as the work itself on a small job.
        serializer, validator = self._adapter.serializer, self._adapter.validator
        self._to_json: Any = (serializer.to_json if isinstance(serializer, SchemaSerializer)
                              else self._adapter.dump_json)
        self._to_python: Any = (serializer.to_python if isinstance(serializer, SchemaSerializer)
                                else self._adapter.dump_python)
        self._validate_json: Any = (validator.validate_json
                                    if isinstance(validator, SchemaValidator)
                                    else self._adapter.validate_json)
        shape = None if model is None else flat_shape(self._adapter.core_schema)
        self._shape = shape
        self._floats = None if shape is None else (shape.is_dict, shape.floats)
        self.round_trip_check = SKIPPED if model is None or (shape and shape.exact) else FULL
        """How `encode` proves a document reads back equal: ``"skipped"`` when the schema
        guarantees it (plain JSON values; flat unconstrained models of their own class with
        every field set), else ``"full"`` (decode and compare, see `jobstore.readback`)."""
        self._read_back = read_back

    def encode(self, value: Any) -> str:
        """The value's JSON document, or `EncodeError` if it has none that reads back equal."""
        try:
            if self._plain:
                self._adapter.validate_python(value, strict=True)
            data: bytes = self._to_json(value, warnings="error")
            # JSON has no NaN or infinity: pydantic writes them as null, which would read back
            # as None (or not at all, into a float field), so they are refused here. The
            # usual null is a field set to None: a second dump without those (far cheaper than
            # walking the value) clears most documents before the walk.
            if b"null" in data and (
                _non_finite_field(value, *self._floats) if self._floats is not None else (
                    self._plain
                    or b"null" in self._to_json(value, warnings="none", exclude_none=True)
                ) and _has_non_finite(
                    value if self._plain else self._adapter.dump_python(value, warnings="none")
                )
            ):
                raise ValueError("NaN and infinity have no JSON form")
            if self._read_back and (self.round_trip_check == FULL or (
                    self._shape is not None and not complete(self._shape, value))):
                reason = read_back_error(value, data, self._validate_json, self._to_python)
                if reason is not None:
                    raise ValueError(reason)
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
            value: T = self._validate_json(payload)
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
    # NUL is valid in JSON (escaped in the payload) but PostgreSQL cannot store it in a column.
    return str(status).replace("\x00", "")[:STATUS_MAX]


def parse_document(payload: str | bytes | None) -> Any:
    """A payload as plain JSON data, for comparisons that name fields."""
    if payload is None:
        return None
    return json.loads(payload)


def read_document(key: str, payload: str | bytes | None) -> Any:
    """A row's payload as plain JSON data, for the admin commands, which read rows jobstore
    may not have written; `DecodeError` naming the key when it is not JSON or is nested deeper
    than a value can be (a foreign or damaged row).

    Parsed as `decode` parses, by pydantic's parser, which stops at a depth of 200 where
    Python's `json` would recurse until RecursionError: a row the admin commands read is one
    a store can read.
    """
    if payload is None:
        return None
    try:
        return from_json(payload)
    except ValueError as exc:
        raise DecodeError(key, _first_line(exc)) from exc


def _non_finite_field(value: Any, is_dict: bool, names: tuple[str, ...]) -> bool:
    for name in names:
        item = value.get(name) if is_dict else getattr(value, name, None)
        if isinstance(item, float) and not math.isfinite(item):
            return True
    return False


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
