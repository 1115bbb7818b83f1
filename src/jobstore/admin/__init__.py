"""The operator's commands as functions: each takes a URL (or an Engine; None means
``$JOBSTORE_URL``, else ``sqlite:///jobstore.db``) and a ``table`` (None: ``$JOBSTORE_TABLE``,
else ``jobs``), talks to the database through `jobstore.db`, never through a `JobStore`, and
returns a frozen result with ``to_dict()`` (JSON data) and ``exit_code`` (an `ExitCode`, the
CLI's).

Errors: `StoreUnavailableError` when the database cannot be reached, `JobStoreError` for a
missing database or table or an unreadable file, `StageError` for a stage name or move that
makes no sense. A refusal (drift, a move to memory, db_only without cutover) is a result with
exit code 1 (``DRIFT`` or ``REFUSED``), not an exception. No message carries a password.

>>> from jobstore import admin
>>> result = admin.init("sqlite://")
>>> result.stage
'dual_write'
"""

from .data import ExportResult, ImportResult, InitResult, export, import_, init
from .ddl import DdlResult, ddl
from .exits import ExitCode
from .inspect import (
    HistoryEntry,
    HistoryResult,
    LsResult,
    ShowResult,
    StatusResult,
    history,
    ls,
    show,
    status,
)
from .instances import InstanceInfo
from .migrate import (
    CutoverOutcome,
    CutoverResult,
    StageChange,
    cutover,
    rollback,
    set_stage,
)
from .stage_barrier import BarrierProgress, BarrierResult
from .verify import InstanceDrift, VerifyProgress, VerifyResult, verify, verify_snapshot

__all__ = [
    "BarrierProgress",
    "BarrierResult",
    "CutoverOutcome",
    "CutoverResult",
    "DdlResult",
    "ExitCode",
    "ExportResult",
    "HistoryEntry",
    "HistoryResult",
    "ImportResult",
    "InitResult",
    "InstanceDrift",
    "InstanceInfo",
    "LsResult",
    "ShowResult",
    "StageChange",
    "StatusResult",
    "VerifyProgress",
    "VerifyResult",
    "cutover",
    "ddl",
    "export",
    "history",
    "import_",
    "init",
    "ls",
    "rollback",
    "set_stage",
    "show",
    "status",
    "verify",
    "verify_snapshot",
]
