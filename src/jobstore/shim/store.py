"""`JobStore`: the drop-in replacement for ``self.jobs = {}``.

It is a ``MutableMapping`` whose behaviour in each stage comes from `jobstore.stages.STAGE_RULES`.
Writes are serialised within a process by one lock, so the dict and the database always see them
in the same order; reads that the dict can answer take no lock and no round trip.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import math
import os
import random
import socket
import threading
import time
import uuid
import weakref
from collections import OrderedDict
from collections.abc import ItemsView, Iterator, Mapping, MutableMapping, ValuesView
from typing import Any, Generic, TypeVar, cast, overload

from sqlalchemy import Engine
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from ..codec import IMMUTABLE_TYPES, Codec, parse_document, status_of
from ..db.control import ControlPlane, Heartbeat, StageState
from ..db.engine import create_store_engine, prepare_engine, resolve_url, safe_url
from ..db.jobs import JobEvent, JobRows, JobWrite, StoredRow, utcnow
from ..db.schema import DEFAULT_TABLE, KEY_MAX, build_schema
from ..exceptions import DecodeError, EncodeError, JobStoreError, StoreUnavailableError
from ..stages import Stage, StageRules
from ..verify import Drift, DriftKind, VerifyReport, diff_documents
from .entries import NEVER, Entry
from .loop import BackgroundLoop
from .retry import QueuedWrite, RetryQueue
from .tracking import Tracker

V = TypeVar("V")
_MISSING: Any = object()
_monotonic = time.monotonic
_VERIFY_BATCH = 500
_DRAIN_BATCH = 200
DEFAULT_SHADOW_SAMPLE = 0.1


class JobStore(MutableMapping[str, V], Generic[V]):
    """A dict of jobs that is also, depending on its stage, a database table.

    >>> jobs = JobStore("sqlite://", stage="dual_write")
    >>> jobs["abc123"] = {"status": "queued"}
    >>> jobs["abc123"]["status"]
    'queued'
    >>> jobs.close()
    """

    _loop_started: bool

    def __init__(
        self,
        url: str | URL | Engine | None = None,
        *,
        table: str | None = None,
        model: type[V] | Any | None = None,
        legacy: MutableMapping[str, V] | None = None,
        stage: Stage | str = Stage.DUAL_WRITE,
        sync_interval: float = 1.0,
        max_memory_items: int | None = None,
        shadow_sample_rate: float | None = None,
    ) -> None:
        if sync_interval <= 0:
            raise ValueError("sync_interval must be positive")
        if max_memory_items is not None and max_memory_items < 1:
            raise ValueError("max_memory_items must be at least 1, or None for no bound")
        seed = Stage.parse(stage)
        pinned_name = os.environ.get("JOBSTORE_STAGE")
        self._pinned = Stage.parse(pinned_name) if pinned_name else None
        self.sync_interval = float(sync_interval)
        self.max_memory_items = max_memory_items
        self._shadow_rate = _shadow_rate(shadow_sample_rate)

        # The arguments are checked before the database is touched (or a SQLite file made).
        self.table = table or os.environ.get("JOBSTORE_TABLE") or DEFAULT_TABLE
        self._schema = build_schema(self.table)
        self._codec: Codec[V] = Codec(model)
        target = resolve_url(url)
        self.url = safe_url(target)
        if isinstance(target, Engine):
            self._engine: Engine = target.execution_options(isolation_level="AUTOCOMMIT")
            prepare_engine(target)
            self._owns_engine = False
        else:
            self._engine = create_store_engine(target)
            self._owns_engine = True
        self._rows = JobRows(self._engine, self._schema, keep_connection=True)
        self._control = ControlPlane(self._engine, self._schema)

        self._memory: MutableMapping[str, V] = legacy if legacy is not None else {}
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._tracker = Tracker()
        self._queue = RetryQueue()
        self._lock = threading.RLock()
        self._closed = False
        self._db_failing = False
        self._db_down_until = 0.0
        self.write_errors = 0
        self.shadow_mismatches = 0
        self.shadow_checks = 0
        self._unencodable: set[str] = set()
        self._deleted_in_memory: set[str] = set()
        self._cleared_in_memory = False
        self.last_error: str | None = None
        self._new_identity()

        self._stage = self._pinned or seed
        self._schema_ready = False
        self._last_request = 0
        self._poll_tickets = itertools.count(1)
        self._poll_applied = 0
        state: StageState | None = None
        try:
            self._prepare_database(seed)
            state = self._control.read_stage()
        except DBAPIError as exc:
            if self._pinned is not Stage.MEMORY:
                self._dispose()
                raise StoreUnavailableError(
                    f"cannot reach the database at {self.url}: {_reason(exc)}"
                ) from exc
            self._note_error(exc)
        self._set_stage(self._pinned or (state.stage if state else seed))
        self._adopt_legacy_entries()
        self._loop = BackgroundLoop(self, JobStore._sync_round, self.sync_interval)
        _open_stores[id(self)] = self

    def _prepare_database(self, seed: Stage) -> None:
        """Create what is missing and note the verify requests made before this store began.

        A process pinned to ``memory`` starts without its database and does this later."""
        self._control.ensure(seed)
        self._last_request = self._control.latest_request()
        self._schema_ready = True

    # the stage -----------------------------------------------------------------------------

    @property
    def stage(self) -> Stage:
        """The stage this process runs now."""
        return self._stage

    @property
    def pinned(self) -> Stage | None:
        """The stage forced by ``$JOBSTORE_STAGE``, if any."""
        return self._pinned

    @property
    def instance_id(self) -> str:
        return self._instance_id

    def _set_stage(self, stage: Stage) -> None:
        rules = stage.rules
        self._stage = stage
        self._rules: StageRules = rules
        self._dict_first = rules.keeps_memory and not rules.db_authoritative
        self._shadow = rules.shadow_compares

    def _apply_stage(self, new: Stage) -> None:
        """Follow the control row to ``new``, carrying what the dict holds across.

        Leaving ``memory`` takes the dict's jobs into the database first, also when the new
        stage keeps no dict (``memory`` straight to ``db_only``), so none is dropped. Changes
        made in place before the change are written by the rules of the stage they were made
        in (else a move to ``memory`` would leave them out of both the database and the dict).
        """
        with self._lock:
            old = self._rules
            rules = new.rules
            if old.writes_db:
                self._write_back()
            if not old.writes_db and rules.writes_db:
                self._set_stage(new)
                self._adopt_legacy_entries()
            if old.keeps_memory and not rules.keeps_memory:
                self._write_back()
                self._drain_queue()
                self._memory.clear()
                self._entries.clear()
            self._set_stage(new)

    def _adopt_legacy_entries(self) -> None:
        """Queue for the database every dict entry it does not hold as it is now (a legacy
        dict's contents, what was written in ``memory``, or a job changed in place there), and
        track every dict value: code that took it from the dict goes on changing it in place
        (a render loop started in ``memory``)."""
        writes_db = self._rules.writes_db
        if writes_db:
            self._replay_memory_deletions()
        for key in list(self._memory):
            _check_key(key)
            entry = self._entries.get(key)
            if not writes_db:
                if entry is None:
                    self._entries[key] = Entry(None, None, NEVER, pending=False)
                continue
            value = self._memory[key]
            try:
                payload = self._codec.encode(value)
            except EncodeError:
                self._unencodable.add(key)
                if entry is None:
                    self._entries[key] = Entry(None, None, NEVER, pending=True)
                continue
            if entry is not None and entry.version is not None and entry.payload == payload:
                self._hold(key, value, payload, entry.version)
                continue
            version = entry.version if entry is not None else None
            self._entries[key] = Entry(payload, version, NEVER, pending=True)
            self._hold(key, value, payload, None)
            self._queue.put(key, QueuedWrite(payload, status_of(value), attempts=0))

    def _replay_memory_deletions(self) -> None:
        """Queue the deletions made in ``memory`` for the database, so a job deleted there
        does not come back from the database once the dict stops being the only copy."""
        if self._cleared_in_memory:
            self._queue.put_clear()
        for key in sorted(self._deleted_in_memory):
            self._queue.put(key, QueuedWrite(None, None, attempts=0))
        self._cleared_in_memory = False
        self._deleted_in_memory.clear()

    # reads -----------------------------------------------------------------------------------

    def __getitem__(self, key: str) -> V:
        if self._dict_first:
            entry = self._entries.get(key)
            if entry is not None and entry.fresh_until >= _monotonic():
                value = self._memory[key]
                held = self._tracker._held.get(key)
                if (held is not None and held.obj is value and held.baseline is entry.payload
                        and held.version == entry.version and not self._shadow
                        and self.max_memory_items is None and self._loop_started):
                    return value  # the hot path: tracked as it is, nothing else to do
                if self.max_memory_items is not None:
                    self._entries.move_to_end(key)
                if self._shadow and random.random() < self._shadow_rate:
                    self._shadow_compare(key, entry)
                if type(value) not in IMMUTABLE_TYPES and self._rules.writes_db:
                    self._tracker.hold(key, value, entry.payload, entry.version)
                if not self._loop_started:
                    self._start()
                return value
        return self._load(key)

    def _load(self, key: str) -> V:
        """A read the dict cannot answer alone, by the stage's rules."""
        _check_key(key)
        self._check_open()
        self._start()
        rules = self._rules
        if not rules.reads_db:
            return self._memory[key]
        if self._dict_first:
            return self._load_dict_first(key)
        return self._load_from_db(key)

    def _load_dict_first(self, key: str) -> V:
        entry = self._entries.get(key)
        if entry is not None and (entry.pending or entry.version is None):
            return self._memory[key]
        if entry is None and self._queue.deletes(key):
            raise KeyError(key)  # deleted here; the database has not taken the deletion yet
        if entry is not None and self._db_down_until > time.monotonic():
            return self._memory[key]  # the database just failed: don't make every read wait
        try:
            row = self._rows.get(key)
        except DBAPIError as exc:
            self._note_error(exc)
            if entry is not None:
                self._db_down_until = time.monotonic() + self.sync_interval
                return self._memory[key]
            raise StoreUnavailableError(
                f"{key!r} is not in memory and the database is unreachable: {_reason(exc)}"
            ) from exc
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and (entry.pending or entry.version is None):
                return self._memory[key]
            if row is None:
                if entry is not None:
                    self._forget(key)
                raise KeyError(key)
            if entry is not None and entry.version is not None and entry.version >= row.version:
                entry.fresh_until = time.monotonic() + self.sync_interval
                value = self._memory[key]
            else:
                value = self._adopt_row(key, row)
                self._memory[key] = value
                self._remember(key, value, row.payload, row.version, pending=False)
            self._hold(key, value, row.payload, row.version)
            self._evict()
            return value

    def _load_from_db(self, key: str) -> V:
        try:
            row = self._rows.get(key)
        except DBAPIError as exc:
            self._note_error(exc)
            raise StoreUnavailableError(f"cannot read {key!r}: {_reason(exc)}") from exc
        with self._lock:
            if row is None:
                self._forget(key)
                raise KeyError(key)
            value = self._adopt_row(key, row)
            if self._rules.keeps_memory:
                self._memory[key] = value
                self._remember(key, value, row.payload, row.version, pending=False)
                self._evict()
            self._hold(key, value, row.payload, row.version)
            return value

    def _adopt_row(self, key: str, row: StoredRow) -> V:
        """The object for a row read from the database: the one already handed out or held
        when it is of the same version, else a new one decoded from the row."""
        held = self._tracker.get(key)
        if held is not None and held.version is not None and held.version >= row.version:
            # The same version, or a row read just before this process wrote a newer one (a
            # write-back raced the read): the object handed out stays the one tracked.
            return cast(V, held.obj)
        entry = self._entries.get(key)
        if entry is not None and entry.version == row.version and key in self._memory:
            if self._rules.compares_on_read and entry.payload != row.payload:
                self._count_mismatch(key)
                return self._codec.decode(key, row.payload)
            return self._memory[key]
        return self._codec.decode(key, row.payload)

    def __contains__(self, key: object) -> bool:
        if self._dict_first:
            entry = self._entries.get(key)  # type: ignore[call-overload]
            if entry is not None and entry.fresh_until >= time.monotonic():
                return True
        if not isinstance(key, str):
            return False
        try:
            self._load(key)
        except KeyError:
            return False
        return True

    @overload
    def get(self, key: str, /) -> V | None: ...
    @overload
    def get(self, key: str, /, default: V | Any) -> V | Any: ...
    def get(self, key: str, /, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __iter__(self) -> Iterator[str]:
        self._check_open()
        self._start()
        if not self._rules.lists_db:
            yield from list(self._memory)
            return
        if not self._dict_first:
            try:
                for key, _payload, _version in self._rows.scan(with_payload=False):
                    yield key
            except DBAPIError as exc:
                raise StoreUnavailableError(f"cannot list jobs: {_reason(exc)}") from exc
            return
        yield from self._union_keys()

    def _union_keys(self) -> Iterator[str]:
        """The dict's keys and the database's, each once, for the dict-first stages."""
        deleted = self._queue.deleted_keys()
        only_here = {k for k, e in list(self._entries.items()) if e.pending or e.version is None}
        yielded = 0
        try:
            if not self._queue.clear_pending:
                for key, _payload, _version in self._rows.scan(with_payload=False):
                    if key in deleted:
                        continue
                    only_here.discard(key)
                    yielded += 1
                    yield key
        except DBAPIError as exc:
            self._note_error(exc)
            if yielded:
                raise StoreUnavailableError(f"cannot list jobs: {_reason(exc)}") from exc
            yield from list(self._memory)
            return
        yield from sorted(only_here)

    def __len__(self) -> int:
        self._check_open()
        if not self._rules.lists_db:
            return len(self._memory)
        if self._dict_first and (len(self._queue) or self._has_unpersisted()):
            return sum(1 for _ in self._union_keys())
        try:
            return self._rows.count()
        except DBAPIError as exc:
            self._note_error(exc)
            if self._dict_first:
                return len(self._memory)
            raise StoreUnavailableError(f"cannot count jobs: {_reason(exc)}") from exc

    def _has_unpersisted(self) -> bool:
        return any(e.pending or e.version is None for e in list(self._entries.values()))

    def items(self) -> _ItemsView[V]:
        return _ItemsView(self)

    def values(self) -> _ValuesView[V]:
        return _ValuesView(self)

    def _iter_items(self) -> Iterator[tuple[str, V]]:
        """Every job with its value in one streamed scan, not one query per key."""
        self._check_open()
        self._start()
        if not self._rules.lists_db:
            yield from list(self._memory.items())
            return
        if self._dict_first and (self._queue.clear_pending or self._db_failing):
            yield from list(self._memory.items())
            return
        deleted = self._queue.deleted_keys() if self._dict_first else set()
        only_here = ({k for k, e in list(self._entries.items()) if e.pending or e.version is None}
                     if self._dict_first else set())
        try:
            for key, payload, version in self._rows.scan():
                if key in deleted:
                    continue
                only_here.discard(key)
                yield key, self._value_for_scan(key, StoredRow(payload, version))
        except DBAPIError as exc:
            raise StoreUnavailableError(f"cannot list jobs: {_reason(exc)}") from exc
        for key in sorted(only_here):
            if key in self._memory:
                yield key, self._memory[key]

    def _value_for_scan(self, key: str, row: StoredRow) -> V:
        with self._lock:
            if self._dict_first:
                entry = self._entries.get(key)
                if entry is not None and (entry.pending or entry.version is None
                                          or (entry.version or 0) >= row.version):
                    return self._memory[key]
            value = self._adopt_row(key, row)
            self._hold(key, value, row.payload, row.version)
            return value

    # writes ----------------------------------------------------------------------------------

    def __setitem__(self, key: str, value: V) -> None:
        _check_key(key)
        payload = self._codec.encode(value)
        if self._closed or not self._loop_started:
            self._check_open()
            self._start()
        with self._lock:
            self._write(key, value, payload, status_of(value))

    def _write(self, key: str, value: V, payload: str, status: str | None) -> None:
        """Write one encoded value by the stage's rules; the caller holds the lock."""
        rules = self._rules
        if not rules.writes_db:
            self._memory[key] = value
            self._deleted_in_memory.discard(key)
            self._remember(key, value, None, None, pending=False)
            self._evict()
            return
        if not rules.db_authoritative:
            previous = self._entries.get(key)
            self._memory[key] = value
            self._remember(key, value, payload, previous.version if previous else None,
                           pending=True)
            self._hold(key, value, payload, None)
            self._write_through(key, value, payload, status)
            self._evict()
            return
        try:
            version = self._rows.upsert(key, payload, status, self._instance_id)
        except DBAPIError as exc:
            self._note_error(exc)
            raise StoreUnavailableError(f"cannot write {key!r}: {_reason(exc)}") from exc
        self._queue.discard(key)
        if rules.keeps_memory:
            self._memory[key] = value
            self._remember(key, value, payload, version, pending=False)
            self._evict()
        self._hold(key, value, payload, version)

    def _write_through(self, key: str, value: V, payload: str, status: str | None) -> None:
        """The database half of a dict-first write: done now, or queued if the DB fails."""
        if self._db_failing and len(self._queue):
            self._queue.put(key, QueuedWrite(payload, status, attempts=0))
            return
        try:
            version = self._rows.upsert(key, payload, status, self._instance_id)
        except DBAPIError as exc:
            self._note_error(exc)
            self._db_failing = True
            self._queue.put(key, QueuedWrite(payload, status, last_error=_reason(exc)))
            return
        if key in self._queue:  # every change of the queue is made under the store's lock
            self._queue.discard(key)
        self._persisted(key, value, payload, version)

    def _persisted(self, key: str, value: Any, payload: str, version: int) -> None:
        entry = self._entries.get(key)
        if entry is not None and self._memory.get(key) is value:
            entry.payload = payload
            entry.version = version
            entry.pending = False
            entry.fresh_until = time.monotonic() + self.sync_interval
        held = self._tracker.get(key)
        if held is not None and held.obj is value:
            held.version = version

    def __delitem__(self, key: str) -> None:
        if self.pop(key, _MISSING) is _MISSING:
            raise KeyError(key)

    @overload
    def pop(self, key: str, /) -> V: ...
    @overload
    def pop(self, key: str, /, default: V | Any) -> V | Any: ...
    def pop(self, key: str, /, default: Any = _MISSING) -> Any:
        """Remove the job and return its value, in one statement."""
        _check_key(key)
        self._check_open()
        self._start()
        with self._lock:
            rules = self._rules
            held_here = key in self._memory
            value: Any = self._memory.get(key, _MISSING) if rules.keeps_memory else _MISSING
            if not rules.writes_db:
                if held_here:
                    self._forget(key)
                    self._deleted_in_memory.add(key)
                return _or_missing(value, default, key)
            if not rules.db_authoritative:
                self._forget(key)
                try:
                    row = self._rows.delete(key, self._instance_id)
                except DBAPIError as exc:
                    self._note_error(exc)
                    self._db_failing = True
                    self._queue.put(key, QueuedWrite(None, None, last_error=_reason(exc)))
                    return _or_missing(value, default, key)
                self._queue.discard(key)
                if value is _MISSING and row is not None:
                    value = self._codec.decode(key, row.payload)
                return _or_missing(value, default, key)
            try:
                row = self._rows.delete(key, self._instance_id)
            except DBAPIError as exc:
                self._note_error(exc)
                raise StoreUnavailableError(f"cannot delete {key!r}: {_reason(exc)}") from exc
            held = self._tracker.get(key)
            self._forget(key)
            if row is None:
                return _or_missing(_MISSING, default, key)
            if held is not None and held.version == row.version:
                return held.obj
            if value is not _MISSING and self._entries.get(key) is None:
                return value
            return self._codec.decode(key, row.payload)

    def update(self, other: Any = (), /, **kwargs: V) -> None:
        """Write many jobs in one transaction; every value is encoded before anything is."""
        pairs: list[tuple[str, V]]
        if isinstance(other, Mapping):
            pairs = list(other.items())
        elif hasattr(other, "keys"):
            pairs = [(k, other[k]) for k in other.keys()]  # noqa: SIM118 - only keys() is promised
        else:
            pairs = list(other)
        pairs.extend(kwargs.items())
        writes: list[tuple[str, V, JobWrite]] = []
        for key, value in pairs:
            _check_key(key)
            writes.append((key, value, JobWrite(key, self._codec.encode(value), status_of(value))))
        if not writes:
            return
        self._check_open()
        self._start()
        with self._lock:
            rules = self._rules
            if not rules.writes_db:
                for key, value, _w in writes:
                    self._write(key, value, "", None)
                return
            latest = {w.key: (value, w) for _k, value, w in writes}
            if not rules.db_authoritative:
                for key, (value, w) in latest.items():
                    previous = self._entries.get(key)
                    self._memory[key] = value
                    self._remember(key, value, w.payload,
                                   previous.version if previous else None, pending=True)
                    self._hold(key, value, w.payload, None)
                try:
                    if self._db_failing and len(self._queue):
                        raise _QueueInstead
                    versions = self._rows.upsert_many([w for _v, w in latest.values()],
                                                      self._instance_id)
                except (DBAPIError, _QueueInstead) as exc:
                    if isinstance(exc, DBAPIError):
                        self._note_error(exc)
                        self._db_failing = True
                    for key, (_value, w) in latest.items():
                        self._queue.put(key, QueuedWrite(w.payload, w.status, attempts=0))
                else:
                    for key, (value, w) in latest.items():
                        self._queue.discard(key)
                        self._persisted(key, value, w.payload, versions[key])
                self._evict()
                return
            try:
                versions = self._rows.upsert_many([w for _v, w in latest.values()],
                                                  self._instance_id)
            except DBAPIError as exc:
                self._note_error(exc)
                raise StoreUnavailableError(f"cannot write {len(latest)} jobs: "
                                            f"{_reason(exc)}") from exc
            for key, (value, w) in latest.items():
                self._queue.discard(key)
                if rules.keeps_memory:
                    self._memory[key] = value
                    self._remember(key, value, w.payload, versions[key], pending=False)
                self._hold(key, value, w.payload, versions[key])
            self._evict()

    def setdefault(self, key: str, default: V = None) -> V:  # type: ignore[assignment]
        """The job under ``key``, storing ``default`` first if there is none: one statement."""
        try:
            return self[key]
        except KeyError:
            pass
        payload = self._codec.encode(default)
        with self._lock:
            rules = self._rules
            if not rules.writes_db or (self._dict_first and self._db_failing):
                if key in self._memory:
                    return self._memory[key]
                self._write(key, default, payload, status_of(default))
                return default
            try:
                row = self._rows.insert_if_absent(JobWrite(key, payload, status_of(default)),
                                                  self._instance_id)
            except DBAPIError as exc:
                self._note_error(exc)
                if rules.db_authoritative:
                    raise StoreUnavailableError(f"cannot write {key!r}: {_reason(exc)}") from exc
                self._write(key, default, payload, status_of(default))
                return default
            value = default if row.payload == payload else self._codec.decode(key, row.payload)
            if rules.keeps_memory:
                self._memory[key] = value
                self._remember(key, value, row.payload, row.version, pending=False)
                self._evict()
            self._hold(key, value, row.payload, row.version)
            return value

    def clear(self) -> None:
        """Delete every job, in one statement."""
        self._check_open()
        self._start()
        with self._lock:
            rules = self._rules
            self._memory.clear()
            self._entries.clear()
            self._tracker.clear()
            if not rules.writes_db:
                self._cleared_in_memory = True
                self._deleted_in_memory.clear()
                return
            try:
                self._rows.clear(self._instance_id)
            except DBAPIError as exc:
                self._note_error(exc)
                if rules.db_authoritative:
                    raise StoreUnavailableError(f"cannot clear: {_reason(exc)}") from exc
                self._db_failing = True
                self._queue.put_clear()
                return
            self._queue.put_clear()
            self._queue.clear_pending = False

    # the dict tier ---------------------------------------------------------------------------

    def _remember(self, key: str, value: Any, payload: str | None, version: int | None,
                  pending: bool) -> None:
        fresh = NEVER if (pending or not self._rules.reads_db) else (
            time.monotonic() + self.sync_interval)
        entry = self._entries.get(key)
        if entry is None:
            self._entries[key] = Entry(payload, version, fresh, pending)
        else:
            entry.payload, entry.version, entry.fresh_until, entry.pending = (
                payload, version, fresh, pending)
            if self.max_memory_items is not None:
                self._entries.move_to_end(key)

    def _forget(self, key: str) -> None:
        self._memory.pop(key, None)
        self._entries.pop(key, None)
        self._tracker.drop(key)
        self._unencodable.discard(key)

    def _hold(self, key: str, value: Any, payload: str | None, version: int | None) -> None:
        if self._rules.writes_db and type(value) not in IMMUTABLE_TYPES:
            self._tracker.hold(key, value, payload, version)

    def _evict(self) -> None:
        """Drop least recently used entries beyond the bound, only those safe in the DB."""
        bound = self.max_memory_items
        if bound is None or len(self._entries) <= bound or not self._rules.writes_db:
            return
        for key in list(self._entries):
            if len(self._entries) <= bound:
                return
            entry = self._entries[key]
            if entry.pending or entry.version is None or key in self._queue:
                continue
            del self._entries[key]
            self._memory.pop(key, None)

    # in-place changes, retries, the control row --------------------------------------------

    def sync(self) -> None:
        """Now: write back in-place changes, retry queued writes, follow the control row.

        Raises `StoreUnavailableError` when a change could not be written where the database
        is the authority; in the dict-first stages failed writes stay queued instead.
        """
        self._check_open()
        self._start()
        self._poll_control()
        failures = self._write_back()
        self._drain_queue()
        if failures and self._rules.db_authoritative:
            raise StoreUnavailableError(
                f"{failures} in-place change(s) could not be written: {self.last_error}")

    def _sync_round(self) -> None:
        """One round of the background loop; it never raises."""
        if self._closed:
            return
        try:
            if not self._schema_ready:
                self._prepare_database(self._stage)
            self._poll_control()
            self._write_back()
            self._drain_queue()
            self._heartbeat()
            self._answer_verify_requests()
        except Exception as exc:  # the loop must outlive any one failure
            self._note_error(exc)

    def _poll_control(self) -> None:
        if self._pinned is not None:
            return
        # The loop and sync() may poll at once; a read that began before the newest applied
        # one may hold an older stage, and applying it would undo a stage change just made.
        ticket = next(self._poll_tickets)
        try:
            state = self._control.read_stage()
        except DBAPIError as exc:
            self._note_error(exc)
            return
        with self._lock:
            if ticket < self._poll_applied:
                return
            self._poll_applied = ticket
            if state is not None and state.stage is not self._stage:
                self._apply_stage(state.stage)

    def _write_back(self) -> int:
        """Write every handed-out object whose JSON changed; how many could not be written."""
        if not self._rules.writes_db:
            return 0
        failures = 0
        for key, held in self._tracker.snapshot():
            with self._lock:
                if self._tracker.get(key) is not held:
                    continue
                # Asked before the encoding: once nothing outside the store refers to the
                # object nothing can change it, so what is encoded next is its last state.
                unreferenced = self._tracker.unreferenced(key, held, self._memory)
                try:
                    payload = self._codec.encode(held.obj)
                except EncodeError as exc:
                    self._unencodable.add(key)
                    self.last_error = str(exc)
                    failures += 1
                    continue
                self._unencodable.discard(key)
                if payload != held.baseline:
                    try:
                        self._write(key, held.obj, payload, status_of(held.obj))
                    except StoreUnavailableError:
                        failures += 1
                        continue
                    held.baseline = payload
                if unreferenced:
                    self._tracker.release(key, held)
        return failures

    def _drain_queue(self) -> None:
        if not len(self._queue):
            self._db_failing = False
            return
        with self._lock:
            if self._queue.clear_pending:
                try:
                    self._rows.clear(self._instance_id)
                except DBAPIError as exc:
                    self._note_error(exc)
                    return
                self._queue.clear_pending = False
        # One transaction per batch, and the lock released between batches: after an outage
        # the backlog lands in a few commits, and callers' writes are not held behind all of it.
        queued = self._queue.snapshot()
        for start in range(0, len(queued), _DRAIN_BATCH):
            with self._lock:
                if not self._drain_batch(queued[start:start + _DRAIN_BATCH]):
                    return
        self._db_failing = False
        with self._lock:
            self._evict()  # entries the dict kept only until the database took them may leave

    def _drain_batch(self, batch: list[tuple[str, QueuedWrite]]) -> bool:
        """Replay queued writes; False when the database failed (they stay queued)."""
        stores = [(key, write) for key, write in batch if not write.is_delete]
        try:
            for key, write in batch:
                if write.is_delete:
                    self._rows.delete(key, self._instance_id)
                    self._queue.discard_if_same(key, write)
            versions = self._rows.upsert_many(
                [JobWrite(key, cast(str, w.payload), w.status) for key, w in stores],
                self._instance_id) if stores else {}
        except DBAPIError as exc:
            self._note_error(exc)
            for key, write in batch:
                if self._queue.get(key) is write:
                    write.attempts += 1
                    write.last_error = _reason(exc)
            return False
        for key, write in stores:
            self._queue.discard_if_same(key, write)
            entry = self._entries.get(key)
            if key in self._memory and entry is not None and entry.payload == write.payload:
                self._persisted(key, self._memory[key], cast(str, write.payload), versions[key])
        return True

    def _heartbeat(self) -> None:
        self._control.beat(Heartbeat(
            instance_id=self._instance_id, host=self._host, pid=self._pid,
            stage=self._stage.value, pinned=self._pinned.value if self._pinned else None,
            started_at=self._started_at, heartbeat_at=utcnow(),
            sync_interval=self.sync_interval, memory_items=len(self._entries),
            tracked_items=len(self._tracker), queued_writes=len(self._queue),
            failed_writes=self.failed_writes, shadow_mismatches=self.shadow_mismatches,
            last_error=self.last_error,
        ))

    def _answer_verify_requests(self) -> None:
        for request_id in self._control.requests_after(self._last_request):
            report = self.verify()
            self._control.submit_report(request_id, self._instance_id, report.to_dict())
            self._last_request = request_id

    @property
    def queued_writes(self) -> int:
        """Writes the database has not taken yet, waiting in the retry queue."""
        return len(self._queue)

    @property
    def failed_writes(self) -> int:
        """Changes that cannot be written as they are (values that no longer encode)."""
        return len(self._unencodable)

    # shadow reads ----------------------------------------------------------------------------

    def _shadow_compare(self, key: str, entry: Entry) -> None:
        """Read the database too and count a mismatch; never raise to the caller."""
        if entry.pending or entry.version is None:
            return
        self.shadow_checks += 1
        try:
            row = self._rows.get(key)
        except DBAPIError as exc:
            self._note_error(exc)
            return
        if row is None or (row.version == entry.version and row.payload != entry.payload):
            self._count_mismatch(key)
        elif row.version > (entry.version or 0):
            entry.fresh_until = 0.0

    def _count_mismatch(self, key: str) -> None:
        self.shadow_mismatches += 1
        self.last_error = f"mismatch between the dict and the database for {key!r}"

    # verify, history, dump -------------------------------------------------------------------

    def verify(self) -> VerifyReport:
        """This process's dict compared with the database, key by key.

        A key that differs is read again before it is called drift, so a write that was in
        flight during the first read is not reported.
        """
        self._check_open()
        keys = list(self._memory)
        suspects: list[str] = []
        drifts: list[Drift] = []
        for start in range(0, len(keys), _VERIFY_BATCH):
            batch = keys[start:start + _VERIFY_BATCH]
            rows = self._read_rows_for_verify(batch)
            if rows is None:
                drifts.extend(Drift(k, DriftKind.WRITE_PENDING, detail="database unreachable")
                              for k in batch)
                continue
            for key in batch:
                if self._judge(key, rows.get(key)) is not None:
                    suspects.append(key)
        if suspects:
            # Read again under the write lock: no write of this process is in flight then, so
            # a write-back that had not committed at the first read is not called drift.
            with self._lock:
                rows = self._read_rows_for_verify(suspects) or {}
                for key in suspects:
                    drift = self._judge(key, rows.get(key))
                    if drift is not None:
                        drifts.append(drift)
        return VerifyReport(
            instance_id=self._instance_id, stage=self._stage.value, checked=len(keys),
            drifts=tuple(drifts), queued_writes=len(self._queue),
            failed_writes=self.failed_writes,
            extra={"host": self._host, "pid": self._pid},
        )

    def _read_rows_for_verify(self, keys: list[str]) -> dict[str, StoredRow] | None:
        try:
            return self._rows.get_many(keys)
        except DBAPIError as exc:
            self._note_error(exc)
            return None

    def _judge(self, key: str, row: StoredRow | None) -> Drift | None:
        value = self._memory.get(key, _MISSING)
        if value is _MISSING:
            return None
        queued = self._queue.get(key)
        if queued is not None or self._queue.clear_pending:
            kind = DriftKind.WRITE_FAILED if queued and queued.attempts else DriftKind.WRITE_PENDING
            return Drift(key, kind, detail=queued.last_error if queued else "clear pending")
        try:
            payload = self._codec.encode(value)
        except EncodeError as exc:
            return Drift(key, DriftKind.UNENCODABLE, detail=str(exc))
        if row is None:
            return Drift(key, DriftKind.MISSING_IN_DB)
        if row.payload == payload:
            return None
        entry = self._entries.get(key)
        if (entry is not None and not entry.pending and entry.version is not None
                and row.version > entry.version):
            # An older copy of a job another process has rewritten since (this one read it
            # earlier): the next read revalidates it, so it is a stale cache, not drift.
            return None
        held = self._tracker.get(key)
        if held is not None and held.obj is value and held.baseline == row.payload:
            # The database holds what this process last wrote; the object has changed in place
            # since, and the next write-back round (or a stage change, or close) persists it.
            return None
        try:
            self._codec.decode(key, row.payload)
        except DecodeError as exc:
            return Drift(key, DriftKind.UNDECODABLE, detail=exc.reason)
        memory_doc, db_doc = json.loads(payload), parse_document(row.payload)
        if memory_doc == db_doc:
            return None
        return Drift(key, DriftKind.CHANGED, tuple(diff_documents(memory_doc, db_doc)))

    def history(self, key: str) -> list[JobVersion[V]]:
        """Every version the job has had, oldest first; deletions have no value."""
        _check_key(key)
        self._check_open()
        try:
            events = self._rows.history(key)
        except DBAPIError as exc:
            raise StoreUnavailableError(f"cannot read history: {_reason(exc)}") from exc
        return [JobVersion.from_event(key, e, self._codec) for e in events]

    def dump_memory(self, path: str | os.PathLike[str]) -> int:
        """Write the dict as JSON for ``jobstore verify --snapshot``; how many jobs it holds."""
        jobs: dict[str, Any] = {}
        unencodable: list[str] = []
        for key in list(self._memory):
            value = self._memory.get(key, _MISSING)
            if value is _MISSING:
                continue
            try:
                jobs[key] = json.loads(self._codec.encode(value))
            except EncodeError:
                unencodable.append(key)
        document = {
            "format": "jobstore-memory/1", "table": self.table, "instance_id": self._instance_id,
            "stage": self._stage.value, "dumped_at": utcnow().isoformat(),
            "jobs": jobs, "unencodable": unencodable,
        }
        temporary = f"{os.fspath(path)}.tmp{os.getpid()}"
        fd = os.open(temporary, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(document, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
        return len(jobs)

    # life cycle ------------------------------------------------------------------------------

    def _start(self) -> None:
        if not self._loop_started:
            self._loop_started = True
            self._loop.ensure_started()

    def _check_open(self) -> None:
        if self._closed:
            raise JobStoreError("this JobStore is closed")

    def close(self) -> None:
        """Write back in-place changes, retry queued writes, stop the loop, release the DB."""
        if self._closed:
            return
        self._loop.stop()
        try:
            self._write_back()
            self._drain_queue()
        finally:
            self._closed = True
            _open_stores.pop(id(self), None)
            with contextlib.suppress(DBAPIError):
                self._control.forget_instance(self._instance_id)
            self._dispose()

    def _dispose(self) -> None:
        self._rows.release()
        if self._owns_engine:
            self._engine.dispose()

    def __enter__(self) -> JobStore[V]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<JobStore {self.table} at {self.url} stage={self._stage}>"

    def _new_identity(self) -> None:
        self._host = socket.gethostname()
        self._pid = os.getpid()
        self._instance_id = f"{self._host}:{self._pid}:{uuid.uuid4().hex[:8]}"
        self._started_at = utcnow()
        self._loop_started = False

    def _after_fork_in_child(self) -> None:
        """A forked child gets its own connections, lock, identity and loop."""
        self._lock = threading.RLock()
        self._tracker.after_fork()
        self._queue.after_fork()
        self._engine.dispose(close=False)
        self._new_identity()
        self._loop.reset_after_fork()

    def _note_error(self, exc: BaseException) -> None:
        self.write_errors += 1
        self.last_error = _reason(exc)


class JobVersion(Generic[V]):
    """One version of a job from its history."""

    __slots__ = ("at", "key", "op", "payload", "status", "value", "version", "written_by")

    def __init__(self, key: str, version: int, op: str, value: V | None, payload: str | None,
                 status: str | None, at: Any, written_by: str) -> None:
        self.key, self.version, self.op, self.value = key, version, op, value
        self.payload, self.status, self.at, self.written_by = payload, status, at, written_by

    @classmethod
    def from_event(cls, key: str, event: JobEvent, codec: Codec[V]) -> JobVersion[V]:
        value = None if event.payload is None else codec.decode(key, event.payload)
        return cls(key, event.version, event.op, value, event.payload, event.status, event.at,
                   event.written_by)

    def __repr__(self) -> str:
        return f"JobVersion({self.key!r}, version={self.version}, op={self.op!r})"


class _ItemsView(ItemsView[str, V]):
    """``items()``: a set-like view, as a dict's is, iterated in one streamed scan."""

    def __init__(self, store: JobStore[V]) -> None:
        super().__init__(store)
        self._store = store

    def __iter__(self) -> Iterator[tuple[str, V]]:
        return self._store._iter_items()

    def __len__(self) -> int:
        return len(self._store)

    def __contains__(self, item: object) -> bool:
        if not isinstance(item, tuple) or len(item) != 2 or not isinstance(item[0], str):
            return False
        key, value = item
        found = self._store.get(key, _MISSING)
        return found is not _MISSING and (found is value or bool(found == value))


class _ValuesView(ValuesView[V]):
    """``values()``, iterated in one streamed scan."""

    def __init__(self, store: JobStore[V]) -> None:
        super().__init__(store)
        self._store = store

    def __iter__(self) -> Iterator[V]:
        return (value for _key, value in self._store._iter_items())

    def __len__(self) -> int:
        return len(self._store)

    def __contains__(self, item: object) -> bool:
        return any(value is item or value == item for value in self)


class _QueueInstead(Exception):
    """The database is known to be failing: queue the write without trying it."""


def _check_key(key: object) -> None:
    if not isinstance(key, str):
        raise TypeError(f"job keys are str, not {type(key).__name__}")
    if len(key) > KEY_MAX:
        raise ValueError(f"job keys are at most {KEY_MAX} characters; this one has {len(key)}")
    # What every backend can store, checked before the dict changes: PostgreSQL refuses NUL,
    # and no driver can send a lone surrogate.
    if "\x00" in key:
        raise ValueError(f"job keys cannot contain NUL characters: {key!r}")
    if not key.isascii():
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"job keys must be valid Unicode text: {key!r}") from None


def _or_missing(value: Any, default: Any, key: str) -> Any:
    if value is not _MISSING:
        return value
    if default is _MISSING:
        raise KeyError(key)
    return default


def _reason(exc: BaseException) -> str:
    """One line about a database error, without its SQL or parameters."""
    original = getattr(exc, "orig", None)
    text = str(original if original is not None else exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def _shadow_rate(value: float | None) -> float:
    if value is None:
        value = float(os.environ.get("JOBSTORE_SHADOW_SAMPLE", DEFAULT_SHADOW_SAMPLE))
    if not 0.0 <= value <= 1.0 or math.isnan(value):
        raise ValueError("shadow_sample_rate must be between 0 and 1")
    return value


_open_stores: weakref.WeakValueDictionary[int, JobStore[Any]] = weakref.WeakValueDictionary()


def _after_fork_in_child() -> None:
    for store in list(_open_stores.values()):
        store._after_fork_in_child()


def _close_open_stores() -> None:
    """At interpreter exit, write back what open stores still hold."""
    for store in list(_open_stores.values()):
        with contextlib.suppress(Exception):
            store.close()


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_close_open_stores)

__all__ = ["JobStore", "JobVersion"]
