"""Merging one server's change of a job into the row as another server left it.

A change is the difference between the JSON this process last saw of a job and the JSON it
writes now. A *field* is a member of a JSON object, merged recursively through nested objects;
lists and scalars are atomic; a member removed is a deletion; a value that is not an object is
replaced whole. Applied to the row as it is now, the change keeps every other server's fields,
and members this process's model does not know (a newer release wrote them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DELETED: Any = object()
"""A member the change removes."""


@dataclass(frozen=True)
class Whole:
    """A value replaced whole: a scalar, a list, or an object that was not one before."""

    value: Any


Patch = dict[str, Any] | Whole
Path = tuple[str, ...]
"""A field: the member names from the top of the document down; () is the whole value."""
"""A change: members changed (each a value, `DELETED`, or a nested `Patch`) or a `Whole`."""


def diff(base: Any, new: Any) -> Patch | None:
    """The change from ``base`` to ``new``; None when they are equal."""
    if base == new:
        return None
    if not (isinstance(base, dict) and isinstance(new, dict)):
        return Whole(new)
    changes: dict[str, Any] = {}
    for name, value in new.items():
        if name not in base:
            changes[name] = Whole(value)
            continue
        inner = diff(base[name], value)
        if inner is not None:
            changes[name] = inner
    for name in base:
        if name not in new:
            changes[name] = DELETED
    return changes


def apply(patch: Patch | None, current: Any) -> Any:
    """``current`` with the change made to it (a new document; ``current`` is not changed)."""
    if patch is None:
        return current
    if isinstance(patch, Whole):
        return patch.value
    if not isinstance(current, dict):
        current = {}
    merged = dict(current)
    for name, change in patch.items():
        if change is DELETED:
            merged.pop(name, None)
        else:
            merged[name] = apply(change, merged.get(name))
    return merged


@dataclass
class Merge:
    """A change applied to a row another server changed since: the result, and the fields both
    changed (the later commit, this one, wins them; the earlier value stays in the history)."""

    document: Any
    conflicts: list[Path] = field(default_factory=list)


def merge(base: Any, mine: Any, theirs: Any) -> Merge:
    """Apply the change ``base`` → ``mine`` to ``theirs``, noting fields both changed."""
    patch = diff(base, mine)
    conflicts: list[Path] = []
    _conflicts(patch, base, theirs, (), conflicts)
    return Merge(apply(patch, theirs), conflicts)


def value_at(document: Any, path: Path) -> Any:
    """The value of the field at ``path``, or `DELETED` where there is none."""
    for name in path:
        if not isinstance(document, dict) or name not in document:
            return DELETED
        document = document[name]
    return document


def dotted(path: Path) -> str:
    return ".".join(path) or "(the whole value)"


def _conflicts(patch: Patch | None, base: Any, theirs: Any, path: Path, out: list[Path]) -> None:
    if patch is None or base == theirs:
        return
    if isinstance(patch, Whole) or not (isinstance(base, dict) and isinstance(theirs, dict)):
        out.append(path)
        return
    for name, change in patch.items():
        inner = (*path, name)
        if change is DELETED:
            if base.get(name, DELETED) != theirs.get(name, DELETED):
                out.append(inner)
        else:
            _conflicts(change, base.get(name, DELETED), theirs.get(name, DELETED), inner, out)
