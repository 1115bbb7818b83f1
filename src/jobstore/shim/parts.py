"""`Parts`: everything one store is made of, shared by its policies, its loop and its audit.

The `JobStore` facade owns one `Parts`; the stage follower swaps ``rules`` and ``policy`` when
the fleet's stage changes. Writes take ``lock``, so the dict and the database see them in one
order; reads the dict can answer take no lock.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ..codec import Codec
from ..db.control import ControlPlane
from ..db.jobs import JobRows
from ..exceptions import JobStoreError
from ..logs import PerKeyLimit
from ..stages import Authority, Stage, StageRules
from .health import Health
from .keytypes import KEY_TYPES, KeyType
from .process import Identity
from .retry import RetryQueue
from .tier import DictTier

if TYPE_CHECKING:
    from .loop import BackgroundLoop
    from .policy import Policy

V = TypeVar("V")


class Parts(Generic[V]):
    def __init__(self, *, table: str, url: str, codec: Codec[V], rows: JobRows,
                 control: ControlPlane, tier: DictTier[V], queue: RetryQueue,
                 sync_interval: float, shadow_rate: float, pinned: Stage | None,
                 policies: dict[Authority, type[Policy[Any]]],
                 keys: KeyType[Any] = KEY_TYPES[str]) -> None:
        self.table = table
        self.url = url
        self.codec = codec
        self.rows = rows
        self.keys = keys
        self.control = control
        self.tier = tier
        self.queue = queue
        self.health = Health()
        self.mismatch_log = PerKeyLimit()
        self.identity = Identity()
        self.lock = threading.RLock()
        self.round_lock = threading.Lock()
        """Held by a sync round (the loop's, ``sync()``'s, ``close()``'s) from start to end:
        ``sync()`` returns after a round the loop had begun, not in the middle of it."""
        self.sync_interval = sync_interval
        self.shadow_rate = shadow_rate
        self.pinned = pinned
        self.closed = False
        self.loop_started = False
        self.loop: BackgroundLoop | None = None
        self.schema_ready = False
        self.policies: dict[Authority, Policy[V]] = {a: p(self) for a, p in policies.items()}
        self.stage = Stage.MEMORY
        self.rules: StageRules = self.stage.rules
        self.policy: Policy[V] = self.policies[self.rules.authority]

    @property
    def instance_id(self) -> str:
        return self.identity.instance_id

    def set_stage(self, stage: Stage) -> None:
        """Run ``stage`` from now on: its rules, and the policy of its authority."""
        self.stage = stage
        self.rules = stage.rules
        self.policy = self.policies[self.rules.authority]
        self.tier.writes_db = self.rules.writes_db

    def encode(self, key: Any, value: V) -> str:
        """``value``'s JSON for a write of ``key``: `EncodeError` when it has none that reads
        back equal, `ValueTooLargeError` when it is more than the database takes in one write.
        Checked in every stage, ``memory`` too, so a value the database cannot hold fails in
        the first stage rather than at the switch to ``dual_write``."""
        payload = self.codec.encode(value)
        self.rows.limit.check(key, payload)
        return payload

    def check_open(self) -> None:
        if self.closed:
            raise JobStoreError("this JobStore is closed")

    def start(self, *, delay: bool = False) -> None:
        """Start the background loop (at open, and in a forked child); ``delay``: its first
        round one interval from now."""
        if not self.loop_started and self.loop is not None:
            self.loop_started = True
            self.loop.ensure_started(delay=delay)

    def ready(self) -> None:
        """What every call but the hottest reads does first: refuse if closed, make sure the
        loop runs."""
        if self.closed or not self.loop_started:
            self.check_open()
            self.start()

    def after_fork_in_child(self) -> None:
        self.lock = threading.RLock()
        self.round_lock = threading.Lock()
        self.tier.tracker.after_fork()
        self.queue.after_fork()
        self.mismatch_log = PerKeyLimit()
        self.identity = Identity()
        self.loop_started = False
        if self.loop is not None:
            self.loop.reset_after_fork()
