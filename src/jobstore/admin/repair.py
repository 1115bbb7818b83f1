"""`init` on a control row that holds no valid stage: which stage it writes there, and why.

The running stores kept the stage they ran when the row went bad, and their heartbeats say
which: when every live instance that follows the row runs one stage, that is what the row held,
and `init` puts it back. Otherwise it writes the stage asked for (``init --stage``), or
``dual_write``, which reads the database and so hides no job. ``init --stage memory`` is
refused while it would hide jobs (`jobstore.admin.rollback_guard`), as `set_stage` refuses it
without ``force``.
"""

from __future__ import annotations

from ..db.control import InvalidStageRow
from ..exceptions import StageError
from ..stages import Stage
from .instances import instances
from .rollback_guard import hidden_by_memory
from .target import Target, actor

DEFAULT_REPAIR = Stage.DUAL_WRITE
ASK_TIMEOUT_S = 10.0
"""How long ``init --stage memory`` waits for the live instances to say which jobs they hold."""
_NAMES = frozenset(s.value for s in Stage)


def repair_stage(target: Target, asked: Stage | None,
                 invalid: InvalidStageRow) -> tuple[Stage, str]:
    """Write a valid stage over an invalid control row; the stage and a sentence on why."""
    running = {i.stage for i in instances(target) if i.live and not i.pinned}
    fleet = [Stage(s) for s in running if s in _NAMES]
    if asked is not None:
        if not asked.rules.writes_db:
            hidden = hidden_by_memory(target, timeout=ASK_TIMEOUT_S)
            if hidden.hidden:
                raise StageError(
                    f"init --stage {asked.value} would hide {hidden.hidden} of the "
                    f"{hidden.jobs_in_db} job(s) in the database, which no live dict holds: "
                    "repair to a stage that reads the database, or run `jobstore stage "
                    f"{asked.value} --force` to do it anyway")
        stage, why = asked, "as asked"
    elif len(fleet) == 1 and len(running) == 1:
        stage = fleet[0]
        why = "the stage the live instances run"
    else:
        stage = DEFAULT_REPAIR
        why = ("the live instances run different stages" if running
               else "no live instance says which stage it ran") + "; dual_write hides no job"
    target.control.set_stage(stage, actor(),
                             f"jobstore init: repaired an invalid control row ({invalid.value})")
    return stage, f"the control row held {invalid.value!r}; set to {stage.value} ({why})"
