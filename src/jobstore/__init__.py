"""jobstore: move a service's ``self.jobs = {}`` into a database in stages you can roll back.

>>> from jobstore import JobStore, Stage
>>> jobs = JobStore("sqlite://", stage=Stage.DUAL_WRITE)
>>> jobs["abc123"] = {"status": "queued"}
>>> jobs.close()
"""

from .exceptions import (
    DecodeError,
    EncodeError,
    JobStoreError,
    StageError,
    StoreUnavailableError,
    ValueTooLargeError,
    WriteRefusedError,
)
from .shim.store import JobStore
from .stages import Stage
from .verify import VerifyReport

__version__ = "0.1.0"

__all__ = [
    "DecodeError",
    "EncodeError",
    "JobStore",
    "JobStoreError",
    "Stage",
    "StageError",
    "StoreUnavailableError",
    "ValueTooLargeError",
    "VerifyReport",
    "WriteRefusedError",
]
