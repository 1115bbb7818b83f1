"""Whether a move to ``memory`` hides jobs, judged by what is true now rather than by the path:
the jobs in the table that no live instance holds, in its dict or as a queued write.

``memory`` is the one stage that does not read the database, so there a job that only the
database has is gone from the service's view. One step from ``dual_write`` after ``db_only``
emptied the dicts hides as much as a jump from ``db_only``; a move from ``db_primary`` whose
dicts hold every job hides nothing. So every move into ``memory`` asks the live instances
which keys they hold (`jobstore.held_keys`: they answer from memory, reading no job) and
compares them with the keys of the table. An instance that does not answer in time counts as
holding nothing, so silence can only make the answer more cautious.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from ..held_keys import HeldKeys
from ..logs import ADMIN, emit
from ..stages import Stage
from ..timefmt import utcnow
from .instances import POLL_S, InstanceInfo, instances
from .target import Target, actor

EXAMPLES = 5
"""Hidden keys a refusal names; it counts them all."""


@dataclass(frozen=True)
class HiddenJobs:
    """The jobs a move to ``memory`` would hide now, and whom that was learnt from."""

    jobs_in_db: int
    hidden: int
    """Jobs in the table that no answering instance holds."""
    examples: tuple[str, ...]
    """The first few of them, in insertion order."""
    answered: int
    """Live instances that said which keys they hold."""
    unknown: tuple[InstanceInfo, ...] = ()
    """Instances live when asked that did not say in time (hung, gone since, or a release
    that does not know the question): counted as holding nothing."""

    def refusal(self, current: Stage, timeout: float) -> str:
        named = ", ".join(repr(k) for k in self.examples)
        more = f" and {self.hidden - len(self.examples)} more" if self.hidden > len(
            self.examples) else ""
        holders = ("no live instance holds them in its dict" if self.answered or self.unknown
                   else "no instance is live, so no dict holds them")
        unknown = ""
        if self.unknown:
            unknown = (f"; {len(self.unknown)} instance(s) live when asked did not say which "
                       f"jobs they hold within {timeout:g} s (hung, gone, or an older "
                       "release) and count as holding none: "
                       + ", ".join(i.name for i in self.unknown))
        return (f"moving from {current} to memory would hide {self.hidden} of the "
                f"{self.jobs_in_db} job(s) in the database ({named}{more}): {holders}, and "
                f"memory does not read the database{unknown}; keep a stage that reads it "
                "(dual_write or shadow) until the dicts hold every job, or pass --force to "
                "move anyway")


def hidden_by_memory(target: Target, *, timeout: float) -> HiddenJobs:
    """What a move to ``memory`` would hide now: the live instances are asked which keys they
    hold (waiting up to ``timeout`` seconds for their answers; not asked at all when it is 0)
    and the table's keys are compared with all of theirs."""
    if target.rows.count() == 0:
        return HiddenJobs(0, 0, (), 0)
    held, answered, unknown = _ask_held_keys(target, timeout)
    jobs, hidden = 0, 0
    examples: list[str] = []
    for key, _payload, _version in target.rows.scan(with_payload=False):
        jobs += 1
        if key not in held:
            hidden += 1
            if len(examples) < EXAMPLES:
                examples.append(key)
    return HiddenJobs(jobs, hidden, tuple(examples), answered, unknown)


def _ask_held_keys(target: Target, timeout: float
                   ) -> tuple[set[str], int, tuple[InstanceInfo, ...]]:
    """The keys the answering instances hold, how many answered, and the instances live when
    asked that did not; one that stops beating is waited for no longer."""
    requested_at = utcnow()
    expected = {i.instance_id: i for i in instances(target)
                if i.live and i.started_at <= requested_at}
    if not expected or timeout <= 0:
        return set(), 0, tuple(expected.values())
    started = time.monotonic()
    request_id = target.control.request_held_keys(actor())
    answers: dict[str, HeldKeys | None] = {}
    try:
        while True:
            answers = {k: HeldKeys.from_json(text) for k, text in
                       target.control.reports(request_id, held_keys=True).items()}
            live = {i.instance_id for i in instances(target) if i.live}
            waiting = [k for k in expected if k not in answers and k in live]
            elapsed = time.monotonic() - started
            if not waiting or elapsed >= timeout:
                break
            time.sleep(min(POLL_S, max(timeout - elapsed, 0.0)))
    finally:
        target.control.forget_request(request_id)
    held: set[str] = set()
    for answer in answers.values():
        if answer is not None:
            held |= answer.keys
    unknown = tuple(i for k, i in expected.items() if answers.get(k) is None)
    return held, sum(1 for a in answers.values() if a is not None), unknown


def log_forced(target: Target, previous: str | None, found: HiddenJobs) -> None:
    """The record a forced move into ``memory`` leaves when it hides jobs."""
    emit(ADMIN, logging.WARNING, "admin.memory_forced",
         "table %(table)r at %(url)s: stage %(previous)s -> memory forced while %(hidden)d "
         "of the %(jobs_in_db)d job(s) in the database are held by no live dict: the "
         "service does not see them until a stage that reads the database returns",
         table=target.table, url=target.url, previous=previous, hidden=found.hidden,
         jobs_in_db=found.jobs_in_db)
