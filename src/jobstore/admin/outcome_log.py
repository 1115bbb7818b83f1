"""The record an admin move leaves in the ``jobstore.admin`` log: what `set_stage`,
`rollback` or `cutover` did, at INFO, or at WARNING when it was refused or some live instance
did not follow in time. The URL in it is the result's, whose password is hidden."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, ParamSpec, Protocol, TypeVar

from ..logs import ADMIN, emit
from .exits import ExitCode


class Outcome(Protocol):
    @property
    def exit_code(self) -> ExitCode: ...

    def to_dict(self) -> dict[str, Any]: ...


P = ParamSpec("P")
R = TypeVar("R", bound=Outcome)
CALM = {ExitCode.OK}
"""Exit codes of an outcome logged at INFO; any other is a WARNING."""


def _logs(describe: Callable[[int, dict[str, Any]], None],
          ) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """A decorator: once the admin move returns, ``describe`` logs its result."""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            result = fn(*args, **kwargs)
            describe(logging.INFO if result.exit_code in CALM else logging.WARNING,
                     result.to_dict())
            return result

        return run

    return decorate


def _stage_change(level: int, done: dict[str, Any]) -> None:
    barrier = done["barrier"] or {}
    if done["refused"]:
        outcome = f"refused: {done['refused']}"
    elif not done["changed"]:
        outcome = "unchanged"
    elif barrier.get("missing") or barrier.get("silent"):
        outcome = (f"set, but {len(barrier['missing'])} live instance(s) did not run it "
                   f"in time and {len(barrier['silent'])} fell silent (hung or killed)")
    else:
        outcome = "set"
    emit(ADMIN, level, "admin.stage",
         "table %(table)r at %(url)s: stage %(previous)s -> %(stage)s: %(outcome)s",
         table=done["table"], url=done["url"], previous=done["previous"], stage=done["stage"],
         outcome=outcome)


def _cutover(level: int, done: dict[str, Any]) -> None:
    reasons = "; ".join(done["reasons"])
    emit(ADMIN, level, "admin.cutover",
         "table %(table)r at %(url)s: cutover from %(previous)s: %(outcome)s%(reasons)s",
         table=done["table"], url=done["url"], previous=done["previous"],
         outcome=done["outcome"], forced=done["forced"],
         reasons=f" ({'forced past: ' if done['forced'] else ''}{reasons})" if reasons else "")


logs_stage_change = _logs(_stage_change)
"""For `set_stage` and `rollback`."""
logs_cutover = _logs(_cutover)
"""For `cutover`."""
