"""The five stages and, in one table, what each of them writes, reads, trusts and compares.

Every behaviour that differs between stages is looked up here; the store never asks
``if stage == ...``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._compat import StrEnum
from .exceptions import StageError


class Stage(StrEnum):
    """A migration stage, in the order a migration walks them."""

    MEMORY = "memory"
    DUAL_WRITE = "dual_write"
    SHADOW = "shadow"
    DB_PRIMARY = "db_primary"
    DB_ONLY = "db_only"

    @classmethod
    def parse(cls, value: str | Stage) -> Stage:
        """The stage named ``value``, or `StageError` listing the valid names."""
        try:
            return cls(value)
        except ValueError:
            names = ", ".join(s.value for s in cls)
            raise StageError(f"unknown stage {value!r}; expected one of: {names}") from None

    @property
    def rules(self) -> StageRules:
        return STAGE_RULES[self]

    def previous(self) -> Stage | None:
        """The stage one step back, or None from ``memory``."""
        order = list(Stage)
        index = order.index(self)
        return order[index - 1] if index else None


@dataclass(frozen=True)
class StageRules:
    """What a stage does, as data."""

    keeps_memory: bool
    """The dict tier holds values."""
    writes_db: bool
    """Writes go to the database."""
    db_authoritative: bool
    """The database is the source of truth: it is written first, read first, and its failure is
    the caller's failure. Otherwise the dict is, and a failed database write is queued."""
    reads_db: bool
    """The database may be read (on a dict miss, or always when it is authoritative)."""
    lists_db: bool
    """Iteration and ``len`` cover the database's keys."""
    shadow_compares: bool
    """A sampled share of dict reads also reads the database and compares."""
    compares_on_read: bool
    """Every database read is compared with the dict."""


STAGE_RULES: dict[Stage, StageRules] = {
    Stage.MEMORY: StageRules(
        keeps_memory=True, writes_db=False, db_authoritative=False, reads_db=False,
        lists_db=False, shadow_compares=False, compares_on_read=False,
    ),
    Stage.DUAL_WRITE: StageRules(
        keeps_memory=True, writes_db=True, db_authoritative=False, reads_db=True,
        lists_db=True, shadow_compares=False, compares_on_read=False,
    ),
    Stage.SHADOW: StageRules(
        keeps_memory=True, writes_db=True, db_authoritative=False, reads_db=True,
        lists_db=True, shadow_compares=True, compares_on_read=False,
    ),
    Stage.DB_PRIMARY: StageRules(
        keeps_memory=True, writes_db=True, db_authoritative=True, reads_db=True,
        lists_db=True, shadow_compares=False, compares_on_read=True,
    ),
    Stage.DB_ONLY: StageRules(
        keeps_memory=False, writes_db=True, db_authoritative=True, reads_db=True,
        lists_db=True, shadow_compares=False, compares_on_read=False,
    ),
}


def check_transition(current: Stage, target: Stage, *, force: bool) -> None:
    """Refuse a move to ``memory`` from a stage where the database is the authority.

    Such a move would leave writes that exist only in the database invisible; ``force``
    accepts that loss knowingly.
    """
    if target is Stage.MEMORY and current.rules.db_authoritative and not force:
        raise StageError(
            f"moving from {current} to memory would hide every job that exists only in the "
            "database; pass force to do it anyway"
        )
