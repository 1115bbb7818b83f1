"""Bringing an object the app holds up to date in place, so it stays the live object.

When another server changed a job, the object this process handed out is given the new state
rather than replaced: the render loop that holds it goes on changing the job the store tracks.
Dicts, lists, dataclasses and pydantic models are refreshed member by member (nested ones in
place too, where both sides are of one kind); anything else cannot be, and is replaced.
"""

from __future__ import annotations

import dataclasses
from typing import Any


def refresh_in_place(obj: Any, fresh: Any) -> bool:
    """Give ``obj`` the state of ``fresh`` (same type); whether it could be done."""
    if obj is fresh:
        return True
    if type(obj) is not type(fresh):
        return False
    if isinstance(obj, dict):
        for name in [name for name in obj if name not in fresh]:
            del obj[name]
        for name, value in fresh.items():
            if name not in obj or not refresh_in_place(obj[name], value):
                obj[name] = value
        return True
    if isinstance(obj, list):
        obj[:] = fresh
        return True
    names = _field_names(obj)
    if names is None:
        return False
    for name in names:
        value = getattr(fresh, name)
        current = getattr(obj, name, None)
        if current is value or refresh_in_place(current, value):
            continue
        object.__setattr__(obj, name, value)
    return True


def _field_names(obj: Any) -> list[str] | None:
    fields = getattr(type(obj), "model_fields", None)  # pydantic v2 models
    if isinstance(fields, dict):
        return list(fields)
    if dataclasses.is_dataclass(obj):
        return [f.name for f in dataclasses.fields(obj)]
    return None
