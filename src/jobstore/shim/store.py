"""`JobStore`: the drop-in replacement for ``self.jobs = {}``.

A ``MutableMapping`` facade: each method checks its arguments, takes the lock where it writes,
and hands the work to the policy of the stage's authority (`jobstore.shim.policy`). The sync
round, stage following, audit and dict tier live in modules of their own beside this one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any, Generic, overload

from sqlalchemy import Engine
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError
from typing_extensions import TypeVar

from .. import config
from ..codec import Codec, status_of
from ..db.control import ControlPlane, StageState
from ..db.engine import create_store_engine, prepare_engine
from ..db.jobs import JobWrite
from ..db.redact import reason, safe_url
from ..db.schema import build_schema
from ..exceptions import StoreUnavailableError
from ..stages import Authority, Stage
from ..verify import VerifyReport
from . import audit, process, store_log
from .db_first import DatabaseFirst
from .dict_first import DictFirst
from .dict_methods import DictMethods
from .facts import StoreFacts
from .follow import StageFollower, adopt_dict_entries
from .history import JobVersion
from .journal import journal_for
from .key_text import text_dump, text_report
from .keyed_rows import rows_for
from .keys import MISSING, or_missing
from .keytypes import key_type as key_type_of
from .loop import BackgroundLoop
from .modify import modify as atomic_modify
from .parts import Parts
from .policy import MemoryOnly, Policy, Writes
from .retry import RetryQueue
from .sync import Sync
from .tier import DictTier
from .views import JobItemsView, JobValuesView

K = TypeVar("K", default=str)
V = TypeVar("V", default=Any)

POLICIES: dict[Authority, type[Policy[Any]]] = {
    Authority.MEMORY: MemoryOnly,
    Authority.DICT: DictFirst,
    Authority.DATABASE: DatabaseFirst,
}
"""The policy each authority runs: the one place a stage's reads and writes are chosen."""


class JobStore(DictMethods[K, V], StoreFacts[K, V], Generic[K, V]):
    """A dict of jobs that is also, depending on its stage, a database table.

    Keys are of one type per store (``key_type``: `str`, `int` or `uuid.UUID`). The policies
    are annotated with `str` keys and carry the store's key type as they are; the rows convert
    it at the database (`jobstore.shim.keyed_rows`), hence the ``arg-type`` ignores below.

    >>> jobs = JobStore("sqlite://", stage="dual_write")
    >>> jobs["abc123"] = {"status": "queued"}
    >>> jobs["abc123"]["status"]
    'queued'
    >>> jobs.close()
    """

    def __init__(
        self,
        url: str | URL | Engine | None = None,
        *,
        table: str | None = None,
        model: type[V] | Any | None = None,
        legacy: MutableMapping[K, V] | None = None,
        stage: Stage | str = Stage.DUAL_WRITE,
        sync_interval: float = 1.0,
        max_memory_items: int | None = None,
        key_type: type[K] = str,  # type: ignore[assignment]
        shadow_sample_rate: float | None = None,
    ) -> None:
        if sync_interval <= 0:
            raise ValueError("sync_interval must be positive")
        if max_memory_items is not None and max_memory_items < 1:
            raise ValueError("max_memory_items must be at least 1, or None for no bound")
        keys = key_type_of(key_type)
        seed = Stage.parse(stage)
        pinned = config.pinned_stage()
        # The arguments are checked before the database is touched (or a SQLite file made).
        self.table = config.table(table)
        schema = build_schema(self.table)
        codec: Codec[V] = Codec(model)
        shadow_rate = config.shadow_sample_rate(shadow_sample_rate)
        target = config.url(url)
        self.url = safe_url(target)
        if isinstance(target, Engine):
            self._engine: Engine = target.execution_options(isolation_level="AUTOCOMMIT")
            prepare_engine(target)
            self._owns_engine = False
        else:
            self._engine = create_store_engine(target)
            self._owns_engine = True
        queue = RetryQueue(journal_for(self._engine.url, self.table, keys))
        self._parts = parts = Parts(
            table=self.table, url=self.url, codec=codec,
            rows=rows_for(self._engine, schema, keys), keys=keys,
            control=ControlPlane(self._engine, schema),
            tier=DictTier(legacy if legacy is not None else {},  # type: ignore[arg-type]
                          max_memory_items, float(sync_interval), queue),
            queue=queue, sync_interval=float(sync_interval), shadow_rate=shadow_rate,
            pinned=pinned, policies=POLICIES,
        )
        self._follower = StageFollower(parts)
        self._sync = Sync(parts, self._follower)
        parts.set_stage(pinned or seed)
        state: StageState | None = None
        try:
            state = self._sync.prepare_database(seed)
        except DBAPIError as exc:
            if pinned is not Stage.MEMORY:
                self._dispose()
                raise StoreUnavailableError(
                    f"cannot reach the database at {self.url}: {reason(exc)}") from exc
            parts.health.note_error(exc)
        parts.set_stage(pinned or (state.stage if state else seed))
        adopt_dict_entries(parts)
        self._sync.begin(BackgroundLoop(self, JobStore._sync_round, parts.sync_interval))
        process.register(self)
        store_log.opened(parts, state)

    # reads -----------------------------------------------------------------------------------

    def __getitem__(self, key: K) -> V:
        return self._parts.policy.get(key)  # type: ignore[arg-type]

    def __contains__(self, key: object) -> bool:
        return self._parts.policy.contains(key)

    @overload
    def get(self, key: K, /) -> V | None: ...
    @overload
    def get(self, key: K, /, default: V | Any) -> V | Any: ...
    def get(self, key: K, /, default: Any = None) -> Any:
        try:
            return self._parts.policy.get(key)  # type: ignore[arg-type]
        except KeyError:
            return default

    def __iter__(self) -> Iterator[K]:
        return self._parts.policy.keys()  # type: ignore[return-value]

    def __len__(self) -> int:
        return self._parts.policy.count()

    def items(self) -> JobItemsView[K, V]:
        return JobItemsView(self)

    def values(self) -> JobValuesView[V]:
        return JobValuesView(self)

    # writes ----------------------------------------------------------------------------------

    def __setitem__(self, key: K, value: V) -> None:
        parts = self._parts
        key = parts.keys.check_write(key)
        if parts.closed or not parts.loop_started:
            parts.ready()
        with parts.lock:
            # Encoded under the lock: a write-back may bring this very object up to date in
            # place, and an encoding taken before that would write its older fields back.
            payload = parts.encode(key, value)
            parts.policy.write(key, value, payload, status_of(value))  # type: ignore[arg-type]

    def __delitem__(self, key: K) -> None:
        if self.pop(key, MISSING) is MISSING:
            raise KeyError(key)

    @overload
    def pop(self, key: K, /) -> V: ...
    @overload
    def pop(self, key: K, /, default: V | Any) -> V | Any: ...
    def pop(self, key: K, /, default: Any = MISSING) -> Any:
        """Remove the job and return its value, in one statement."""
        parts = self._parts
        try:
            key = parts.keys.for_read(key)
        except KeyError:
            return or_missing(MISSING, default, key)  # a key of another type: not there
        parts.ready()
        with parts.lock:
            return parts.policy.pop(key, default)  # type: ignore[arg-type]

    def update(self, other: Any = (), /, **kwargs: V) -> None:
        """Write many jobs in one transaction; every value is encoded before anything is."""
        pairs: list[tuple[K, V]]
        if isinstance(other, Mapping):
            pairs = list(other.items())
        elif hasattr(other, "keys"):
            pairs = [(k, other[k]) for k in other.keys()]  # noqa: SIM118 - only keys() is promised
        else:
            pairs = list(other)
        pairs.extend(kwargs.items())  # type: ignore[arg-type]  # str keys: refused unless K is str
        parts = self._parts
        checked = [(parts.keys.check_write(key), value) for key, value in pairs]
        if not checked:
            return
        parts.ready()
        with parts.lock:
            writes: Writes[V] = {
                key: (value, JobWrite(key, parts.encode(key, value), status_of(value)))
                for key, value in checked}
            parts.policy.write_many(writes)

    def setdefault(self, key: K, default: V = None) -> V:  # type: ignore[assignment]
        """The job under ``key``, storing ``default`` first if there is none: one statement."""
        parts = self._parts
        key = parts.keys.check_write(key)
        try:
            return self[key]
        except KeyError:
            pass
        payload = parts.encode(key, default)
        with parts.lock:
            return parts.policy.setdefault(key, default, payload,  # type: ignore[arg-type]
                                           status_of(default))

    def clear(self) -> None:
        """Delete every job, in one statement."""
        parts = self._parts
        parts.ready()
        with parts.lock:
            parts.tier.clear()
            parts.policy.clear()

    def modify(self, key: str, fn: Callable[[V], V], default: V | Any = MISSING) -> V:
        """Store ``fn(copy of the job)`` atomically across processes; the stored value.

        Runs against the database's row under its lock where the stage writes the database
        (`StoreUnavailableError` if it is unreachable; nothing is queued), under the store's
        lock in ``memory``. ``fn`` may run more than once; keep it short and pure.
        """
        return atomic_modify(self._parts, key, fn, default)

    # sync, audit, history --------------------------------------------------------------------

    def sync(self) -> None:
        """Now: write back in-place changes, retry queued writes, follow the control row.

        Raises `StoreUnavailableError` when a change could not be written where the database
        is the authority; in the dict-first stages failed writes stay queued instead.
        """
        self._parts.ready()
        self._sync.now()

    def _sync_round(self) -> None:
        self._sync.round()

    def verify(self) -> VerifyReport:
        """This process's dict compared with the database, key by key.

        A key that differs is read again before it is called drift, so a write that was in
        flight during the first read is not reported.
        """
        return text_report(audit.verify(self._parts))

    def history(self, key: K) -> list[JobVersion[V]]:
        """Every version the job has had, oldest first; deletions have no value."""
        parts = self._parts
        key = parts.keys.check_write(key)
        parts.check_open()
        try:
            events = parts.rows.history(key)  # type: ignore[arg-type]
        except DBAPIError as exc:
            raise StoreUnavailableError(f"cannot read history: {reason(exc)}") from exc
        return [JobVersion.from_event(key, e, parts.codec) for e in events]  # type: ignore[arg-type]

    def dump_memory(self, path: str | os.PathLike[str]) -> int:
        """Write the dict as JSON for ``jobstore verify --snapshot``; how many jobs it holds."""
        dump = text_dump(audit.memory_dump(self._parts))
        dump.write(path)
        return len(dump.jobs)

    # life cycle ------------------------------------------------------------------------------

    def close(self) -> None:
        """Write back in-place changes, retry queued writes, stop the loop, release the DB."""
        parts = self._parts
        if parts.closed:
            return
        if parts.loop is not None:
            parts.loop.stop()
        try:
            self._sync.flush()
        finally:
            parts.closed = True
            process.unregister(self)
            self._sync.leave()
            self._dispose()

    def _dispose(self) -> None:
        self._parts.queue.close()
        self._parts.rows.release()
        if self._owns_engine:
            self._engine.dispose()

    def __enter__(self) -> JobStore[K, V]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<JobStore {self.table} at {self.url} stage={self._parts.stage}>"

    def _after_fork_in_child(self) -> None:
        """A forked child gets its own connections, lock, identity and loop, started now."""
        self._parts.after_fork_in_child()
        self._engine.dispose(close=False)
        self._parts.start()


__all__ = ["JobStore", "JobVersion"]
