"""The five stages, in migration order, and in one table the three facts that set them apart.

Every behaviour that differs between stages is looked up here (the store picks its read and
write policy by a stage's `Authority`); nothing else asks ``if stage == ...``.
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

    @property
    def step(self) -> int:
        """The stage's place in the migration: 0 for ``memory`` up to 4 for ``db_only``."""
        return _ORDER.index(self)

    def previous(self) -> Stage | None:
        """The stage one step back, or None from ``memory``."""
        return _ORDER[self.step - 1] if self.step else None

    def next(self) -> Stage | None:
        """The stage one step forward, or None from ``db_only``."""
        return _ORDER[self.step + 1] if self.step + 1 < len(_ORDER) else None


class Authority(StrEnum):
    """Which copy a stage trusts, and so which read and write policy the store runs."""

    MEMORY = "memory"
    """Only the dict: the database is not written (the legacy behaviour)."""
    DICT = "dict"
    """The dict first, the database behind it: a failed database write is queued."""
    DATABASE = "database"
    """The database first: its failure is the caller's failure."""


@dataclass(frozen=True)
class StageRules:
    """What a stage does, as data."""

    authority: Authority
    """Which copy is the source of truth (see `Authority`)."""
    keeps_memory: bool
    """The dict tier holds values."""
    shadow_compares: bool
    """A sampled share of dict reads also reads the database and compares."""

    @property
    def writes_db(self) -> bool:
        """Writes go to the database, which is also read and listed."""
        return self.authority is not Authority.MEMORY

    @property
    def db_authoritative(self) -> bool:
        return self.authority is Authority.DATABASE

    @property
    def compares_on_read(self) -> bool:
        """Every database read is compared with the dict kept beside it."""
        return self.keeps_memory and self.db_authoritative


STAGE_RULES: dict[Stage, StageRules] = {
    Stage.MEMORY: StageRules(Authority.MEMORY, keeps_memory=True, shadow_compares=False),
    Stage.DUAL_WRITE: StageRules(Authority.DICT, keeps_memory=True, shadow_compares=False),
    Stage.SHADOW: StageRules(Authority.DICT, keeps_memory=True, shadow_compares=True),
    Stage.DB_PRIMARY: StageRules(Authority.DATABASE, keeps_memory=True, shadow_compares=False),
    Stage.DB_ONLY: StageRules(Authority.DATABASE, keeps_memory=False, shadow_compares=False),
}

_ORDER: tuple[Stage, ...] = tuple(Stage)


def may_hide_jobs(current: Stage, target: Stage) -> bool:
    """Whether a move can hide jobs: into a stage that does not read the database (``memory``)
    from one that does. It hides the jobs that no live dict holds; whether there are any is a
    fact about the running processes, not about the path that led here, so the move is
    checked against them (`jobstore.admin.rollback_guard`), whatever the current stage."""
    return current.rules.writes_db and not target.rules.writes_db
