"""Whether a value's JSON reads back equal to it: which check a schema needs, and the check.

A document that does not decode, or decodes to something else, would be written and then fail
(or differ) in every process that reads it, so `Codec.encode` refuses it before anything is
written. The full check decodes the document, then compares in two steps:

1. the decoded value with the given one, field by field (a model's ``__dict__``, so its
   private attributes are left out; ``==`` for anything else): equal fields read back equal,
   and this answers almost every value at the cost of the decode (measured: about 5 µs
   on the 15-field job, ``bench/readback.py``);
2. only when those differ, ``dump_python`` (mode ``"python"``) of both, which forgives what
   is not serialized by design: a private attribute of a nested model, a field left out of
   ``__eq__``, an ``__eq__`` that is not about fields.

Why not one of the others: ``decoded == value`` alone is wrong once a pydantic ``PrivateAttr``
is set (``==`` compares private attributes, which are never serialized); comparing the
re-encoded JSON, or ``dump_python(mode="json")``, gives false alarms on ``set`` fields, whose
elements can come out in another order once rebuilt (a set with removals, tested); Python
mode compares sets as sets and keeps a tuple apart from a list, so a tuple in an ``Any``
field, which reads back as a list, is refused: it does not read back equal. What step 2
cannot see: a dataclass or model held in an ``Any`` field dumps as the dict it reads back as.

Values that provably round-trip skip the decode: JSON values (``model=None``), whose strict
validation already admits only str-keyed dicts, lists and scalars, and flat dataclasses and
models whose fields are unconstrained scalars without validators, aliases or custom
serializers (pydantic's serializer, with warnings as errors, already refuses a field holding
the wrong type). Which path a codec takes is decided once, from the core schema.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

SKIPPED, FULL = "skipped", "full"

_SCALARS = frozenset({"str", "int", "bool", "none", "datetime", "date", "time", "timedelta",
                      "uuid", "literal", "enum", "bytes", "decimal", "url", "float"})
"""Field types whose values serialize as they are (the NaN check needs no more)."""

_EXACT_SCALARS = _SCALARS - {"literal", "url"}
"""Scalars whose serializer refuses a value of the wrong type (a literal writes any value)."""

_ANY = None
_EXACT_KEYS: dict[str, dict[str, Any]] = {
    # schema type -> the keys an exactly round-tripping schema may have: None for any value,
    # else the one value allowed. Anything else (a constraint, an alias, a validator, a post-init
    # hook, a config that transforms strings) sends the codec down the full check.
    "model": {"type": _ANY, "cls": _ANY, "schema": _ANY, "config": _ANY, "ref": _ANY,
              "metadata": _ANY, "custom_init": False, "root_model": False},
    "dataclass": {"type": _ANY, "cls": _ANY, "schema": _ANY, "config": _ANY, "ref": _ANY,
                  "metadata": _ANY, "fields": _ANY, "frozen": _ANY, "slots": _ANY,
                  "post_init": False},
    "model-fields": {"type": _ANY, "fields": _ANY, "model_name": _ANY, "computed_fields": (),
                     "ref": _ANY, "metadata": _ANY},
    "dataclass-args": {"type": _ANY, "fields": _ANY, "dataclass_name": _ANY,
                       "computed_fields": (), "collect_init_only": False, "ref": _ANY,
                       "metadata": _ANY},
    "model-field": {"type": _ANY, "schema": _ANY, "metadata": _ANY, "frozen": _ANY},
    "dataclass-field": {"type": _ANY, "name": _ANY, "schema": _ANY, "metadata": _ANY,
                        "frozen": _ANY, "kw_only": _ANY, "init": True},
    "default": {"type": _ANY, "schema": _ANY, "default": _ANY, "default_factory": _ANY,
                "default_factory_takes_data": _ANY},
    "nullable": {"type": _ANY, "schema": _ANY, "ref": _ANY, "metadata": _ANY},
    "enum": {"type": _ANY, "cls": _ANY, "members": _ANY, "sub_type": _ANY, "ref": _ANY,
             "metadata": _ANY},
    "config": {"title": _ANY, "extra_fields_behavior": _ANY, "from_attributes": _ANY,
               "revalidate_instances": _ANY, "validate_default": _ANY, "loc_by_alias": _ANY,
               "hide_input_in_errors": _ANY, "validation_error_cause": _ANY,
               "cache_strings": _ANY, "validate_by_alias": _ANY, "validate_by_name": _ANY},
}
_SCALAR_KEYS = {"type": _ANY, "ref": _ANY, "metadata": _ANY}
# A document holds at most six digits of a second, which either precision setting reads back.
_EXACT_KEYS["datetime"] = _EXACT_KEYS["time"] = {**_SCALAR_KEYS, "microseconds_precision": _ANY}


@dataclasses.dataclass(frozen=True)
class Flat:
    """A dataclass, model or TypedDict whose fields are all plain scalars."""

    is_dict: bool
    floats: tuple[str, ...]
    """The float fields: the only places a NaN can hide."""
    exact: bool
    """Whether a complete value of exactly this class provably reads back equal."""
    cls: type | None
    names: frozenset[str]


def flat_shape(schema: Any) -> Flat | None:
    """The schema's `Flat` shape, or None for anything else (which gets the general checks)."""
    kind = schema.get("type")
    if kind not in ("dataclass", "model", "typed-dict") or "serialization" in schema:
        return None
    if kind == "model" and (schema.get("root_model")
                            or schema.get("config", {}).get("extra_fields_behavior") == "allow"):
        return None
    inner = schema if kind == "typed-dict" else schema.get("schema", {})
    if inner.get("computed_fields") or inner.get("extras_schema"):
        return None
    fields = inner.get("fields")
    items = ([(f["name"], f) for f in fields] if isinstance(fields, list)
             else list(fields.items()) if isinstance(fields, dict) else None)
    if items is None:
        return None
    floats = []
    exact = kind != "typed-dict" and _exact(schema) and _exact(inner) and _exact(
        schema.get("config", {}), "config")
    for name, field in items:
        exact = exact and _exact(field)
        field_schema = field.get("schema", {})
        while field_schema.get("type") in ("default", "nullable"):
            exact = exact and _exact(field_schema)
            field_schema = field_schema.get("schema", {})
        if "serialization" in field_schema or field_schema.get("type") not in _SCALARS:
            return None
        exact = exact and field_schema["type"] in _EXACT_SCALARS and _exact(field_schema)
        if field_schema["type"] == "float":
            floats.append(name)
    return Flat(kind == "typed-dict", tuple(floats), exact, schema.get("cls"),
                frozenset(name for name, _ in items))


def _exact(schema: Mapping[str, Any], kind: str | None = None) -> bool:
    allowed = _EXACT_KEYS.get(kind or schema.get("type", ""), _SCALAR_KEYS)
    for key, value in schema.items():
        if key not in allowed:
            return False
        wanted = allowed[key]
        if wanted is not _ANY and value != wanted and not (wanted == () and not value):
            return False
    return kind != "config" or schema.get("extra_fields_behavior") != "allow"


def complete(shape: Flat, value: Any) -> bool:
    """Whether the value is of the shape's own class with every field set, so that the
    serializer's type checks are all the proof it needs."""
    if type(value) is not shape.cls:
        return False
    fields = getattr(value, "__dict__", None) if isinstance(value, BaseModel) else None
    # A model built with model_construct may lack a field: the serializer leaves it out.
    return fields is None or len(fields) == len(shape.names)


def read_back_error(value: Any, data: bytes, validate_json: Callable[[bytes], Any],
                    dump: Callable[..., Any]) -> str | None:
    """Why ``data``, the value's JSON, does not read back equal to ``value``; None if it does."""
    try:
        decoded = validate_json(data)
    except ValidationError as exc:
        return f"it does not decode: {_first_error(exc)}"
    if (type(decoded) is not type(value)
            and (isinstance(decoded, BaseModel) or dataclasses.is_dataclass(decoded))):
        return f"it reads back as {type(decoded).__name__}"
    if _equal(decoded, value):
        return None
    try:
        before, after = dump(value, warnings="none"), dump(decoded, warnings="none")
    except TypeError:
        # Python mode cannot always build the dump (a set of models: dicts are unhashable).
        before = dump(value, warnings="none", mode="json")
        after = dump(decoded, warnings="none", mode="json")
    if before == after:
        return None
    return f"it reads back different{_which(before, after)}"


def _equal(decoded: Any, value: Any) -> bool:
    """The quick answer: equal fields (a model's private attributes left out) read back equal.
    Unequal goes on to the dumps, which a nested private attribute, a field left out of
    ``__eq__`` or a custom ``__eq__`` can make unequal while the fields are not."""
    if isinstance(value, BaseModel):
        return type(decoded) is type(value) and decoded.__dict__ == value.__dict__
    try:
        return bool(decoded == value)
    except Exception:
        return False


def _which(before: Any, after: Any) -> str:
    if isinstance(before, dict) and isinstance(after, dict):
        names = [_name(k) for k in before if k not in after or before[k] != after[k]]
        names += [_name(k) for k in after if k not in before]
        if names:
            return f" in {', '.join(names[:5])}"
    return f": {before!r:.80} became {after!r:.80}"


def _name(key: Any) -> str:
    return key if isinstance(key, str) and key.isidentifier() else repr(key)


def _first_error(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False)
    if not errors:
        return str(exc)
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ())) or "value"
    return f"{where}: {first.get('msg', '')}"
