"""The errors jobstore raises.

The tree, with the builtin each one also is where the meaning matches::

    JobStoreError
    ├── EncodeError (TypeError)          a value cannot be turned into JSON; nothing was written
    │   └── ValueTooLargeError           its JSON is larger than the database takes in one write
    ├── DecodeError (ValueError)         a stored row cannot be read back; names the key
    ├── StoreUnavailableError            the database failed where the database is the authority
    ├── WriteRefusedError (ValueError)   the database refused the write for its data
    └── StageError (ValueError)          an unknown stage, or a transition that is refused

A missing key stays a plain ``KeyError``, as with a dict.
"""

from __future__ import annotations


class JobStoreError(Exception):
    """Base class of every error jobstore raises on purpose."""


class EncodeError(JobStoreError, TypeError):
    """A value cannot be encoded as JSON; it was raised before anything was written."""


class DecodeError(JobStoreError, ValueError):
    """A stored payload cannot be decoded into the model."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"cannot decode the row for key {key!r}: {reason}")
        self.key = key
        self.reason = reason


class ValueTooLargeError(EncodeError):
    """A value's JSON is larger than the database takes in one write; nothing was written.

    An `EncodeError`: the value cannot be stored as it is, and saying so before the write
    keeps a database from answering with a dropped connection (MariaDB does when a statement
    is over ``max_allowed_packet``)."""

    def __init__(self, key: object, size: int, limit: int, backend: str, setting: str) -> None:
        super().__init__(
            f"the value for {key!r} takes {size:,} bytes in a write; {backend} takes at most "
            f"{limit:,} ({setting})")
        self.key = key
        self.size = size
        self.limit = limit


class StoreUnavailableError(JobStoreError):
    """The database failed while it is the authority, so the operation did not happen."""


class WriteRefusedError(JobStoreError, ValueError):
    """The database refused this write for its data (a constraint, a trigger, a size limit).

    Nothing was written, and the same write will be refused again: unlike
    `StoreUnavailableError`, waiting for the database does not help."""


class StageError(JobStoreError, ValueError):
    """An unknown stage name, or a stage change that is refused without ``force``."""
