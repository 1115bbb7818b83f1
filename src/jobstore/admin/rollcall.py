"""The roll call of a gated command (`verify`, `cutover`, the waits of `stage` and
`rollback`): the instances live when it began, less those the operator names to skip.

Only those are waited for, so a rerun after a crash does not expect an instance that was not
live at its start; a skipped one is named in the result and in the ``admin.skipped`` record.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from ..exceptions import JobStoreError
from ..logs import ADMIN, emit
from ..timefmt import utcnow
from .instances import InstanceInfo, instances
from .target import Target


@dataclass(frozen=True)
class RollCall:
    expected: dict[str, InstanceInfo]
    """Live at the start and not skipped, by instance id."""
    skipped: tuple[InstanceInfo, ...]
    taken_at: datetime
    unmatched: tuple[str, ...] = ()
    """Names given to skip that match no listed instance (gone and pruned already, or a
    typo: either way nothing of that name is waited for)."""


def roll_call(target: Target, skip: Sequence[str] = (), *, command: str,
              started_before: datetime | None = None) -> RollCall:
    """Who the command waits for: every live instance (with ``started_before``, only those
    started by then: a store opened later does not answer an older request), less ``skip``.

    Each of ``skip`` is an instance id or a prefix of exactly one; one that matches several
    is a `JobStoreError` (which was meant cannot be told), one that matches none is noted in
    ``unmatched``: a name that is not listed is not waited for anyway, and a typo leaves the
    instance meant in the roll call, where a silent one still stops the command.
    """
    now = utcnow()
    found = instances(target, now)
    skipped, unmatched = resolve(found, skip)
    skipped_ids = {i.instance_id for i in skipped}
    expected = {i.instance_id: i for i in found
                if i.live and i.instance_id not in skipped_ids
                and (started_before is None or i.started_at <= started_before)}
    for instance in skipped:
        emit(ADMIN, logging.WARNING, "admin.skipped",
             "table %(table)r: %(command)s skips instance %(skipped)s (%(who)s, %(standing)s) "
             "as the operator asked: it is not waited for", table=target.table,
             command=command, skipped=instance.instance_id, who=instance.name,
             standing=instance.standing.value)
    return RollCall(expected, skipped, now, unmatched)


def resolve(found: Iterable[InstanceInfo], skip: Sequence[str]
            ) -> tuple[tuple[InstanceInfo, ...], tuple[str, ...]]:
    """The instances ``skip`` names, each by its id or a unique prefix of it; the names that
    match none."""
    listed = list(found)
    chosen: dict[str, InstanceInfo] = {}
    unmatched: list[str] = []
    for name in skip:
        matches = [i for i in listed if i.instance_id == name] or [
            i for i in listed if i.instance_id.startswith(name)]
        if not matches:
            unmatched.append(name)
            continue
        if len(matches) > 1:
            raise JobStoreError(f"--skip {name}: {len(matches)} instances match ("
                                f"{', '.join(i.instance_id for i in matches[:5])}); give "
                                "more of the id")
        chosen[matches[0].instance_id] = matches[0]
    return tuple(chosen.values()), tuple(unmatched)
