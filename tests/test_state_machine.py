"""A Hypothesis state machine drives a JobStore and a model of it side by side.

The model is what a careful user expects from DESIGN §1: the jobs the database holds (``db``)
and the jobs this process's dict holds (``mem``). Which of them the store must show depends on
the stage: ``mem`` in ``memory``, ``db`` in every stage that writes the database (there the
dict only ever mirrors it). Writes, deletions, reads, in-place changes to objects handed out,
``sync``, closing and reopening the store, and stage changes through the control row are the
rules; after every step the store and the model must list the same jobs with the same values.

Stage changes follow DESIGN §1: moving to ``memory`` shows only what the dict holds (jobs that
exist only in the database drop out of sight, which is why the CLI refuses it from the
DB-authoritative stages without ``--force``); ``memory`` leaves the database alone, and moving
from it to a stage that writes the database replays there what ``memory`` did (a clear, the
deletions, then the dict's jobs), unless the process restarted in between; ``db_only`` keeps no
dict, so a stage after it starts from an empty one.
"""

from __future__ import annotations

import copy
import os
import threading
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from conftest import backend_url, drop_table
from jobstore import JobStore, Stage, admin

KEYS = st.sampled_from(["a", "b", "c", "d", "x'; DROP TABLE t; --", "ünï ✓", ""])
JOBS = st.fixed_dictionaries(
    {"status": st.sampled_from(["queued", "running", "completed"]), "n": st.integers(-3, 3)},
    optional={"tags": st.lists(st.sampled_from(["x", "y"]), max_size=2),
              "meta": st.dictionaries(st.sampled_from(["p", "q"]), st.none() | st.booleans(),
                                      max_size=2)},
)
VALUES = JOBS | st.sampled_from(["plain text", 7, None, True, 2.5])
STAGES = st.sampled_from(list(Stage))


class Held:
    """An object the test took from the store and keeps, as a render loop keeps its job.

    ``live`` is whether it is still the mapping's value for ``key``, as it would be in a dict:
    setting, deleting or clearing the key, or reopening the store, cuts it loose.
    """

    def __init__(self, key: str, obj: Any) -> None:
        self.key = key
        self.obj = obj
        self.live = True
        self.stranded = False
        """The stage changed to ``memory`` and the dict there does not hold ``key``: the object
        belongs to no mapping any more, and what becomes of a change to it is left open."""


class JobStoreMachine(RuleBasedStateMachine):
    url: str
    backend: str
    tables: list[str]

    def __init__(self) -> None:
        super().__init__()
        self.table = f"t_{uuid.uuid4().hex[:12]}"
        self.tables.append(self.table)
        self.stage = Stage.DUAL_WRITE
        self.store: JobStore[Any] | None = None
        self.db: dict[str, Any] = {}
        self.mem: dict[str, Any] = {}
        self.held: list[Held] = []
        # What ``memory`` did that the database has not seen: replayed on leaving it.
        self.deleted_in_memory: set[str] = set()
        self.cleared_in_memory = False

    held_objects = Bundle("held_objects")

    # the model -----------------------------------------------------------------------------

    @property
    def rules_(self) -> Any:
        return self.stage.rules

    def visible(self) -> dict[str, Any]:
        """What the store must show now."""
        return self.db if self.rules_.writes_db else self.mem

    def _model_set(self, key: str, value: Any) -> None:
        self._cut_loose(key)
        if self.rules_.keeps_memory:
            self.mem[key] = copy.deepcopy(value)
        if self.rules_.writes_db:
            self.db[key] = copy.deepcopy(value)
        else:
            self.deleted_in_memory.discard(key)

    def _model_delete(self, key: str) -> None:
        self._cut_loose(key)
        self.mem.pop(key, None)
        if self.rules_.writes_db:
            self.db.pop(key, None)
        else:
            self.deleted_in_memory.add(key)

    def _model_read(self, key: str) -> None:
        """A read that found ``key``: the stages that keep a dict put the value into it."""
        if self.rules_.keeps_memory and self.rules_.writes_db:
            self.mem[key] = copy.deepcopy(self.db[key])

    def _cut_loose(self, key: str | None = None) -> None:
        for held in self.held:
            if key is None or held.key == key:
                held.live = False

    def _open(self) -> JobStore[Any]:
        store: JobStore[Any] = JobStore(self.url, table=self.table, stage=self.stage,
                                        sync_interval=3600, shadow_sample_rate=1.0)
        return store

    def _entering_memory(self) -> None:
        """The dict becomes what the store shows; unbounded, it holds all of ``mem``."""

    @property
    def jobs(self) -> JobStore[Any]:
        assert self.store is not None
        return self.store

    # rules ---------------------------------------------------------------------------------

    @initialize(stage=STAGES, items=st.dictionaries(KEYS, JOBS, max_size=3))
    def open_store(self, stage: Stage, items: dict[str, Any]) -> None:
        self.stage = stage
        self.store = self._open()
        self.update(list(items.items()), as_kwargs=False)

    @rule(key=KEYS, value=VALUES, how=st.sampled_from(["setitem", "setdefault"]))
    def write(self, key: str, value: Any, how: str) -> None:
        """``jobs[key] = value``, or ``jobs.setdefault(key, value)``."""
        expected = self.visible()
        if how == "setitem":
            self.jobs[key] = value
            self._model_set(key, value)
        elif key in expected:
            assert self.jobs.setdefault(key, value) == expected[key]
            self._model_read(key)
        else:
            assert self.jobs.setdefault(key, value) == value
            self._model_set(key, value)

    @rule(key=KEYS, how=st.sampled_from(["del", "pop", "pop-default"]))
    def remove(self, key: str, how: str) -> None:
        """``del jobs[key]``, ``jobs.pop(key)`` or ``jobs.pop(key, default)``."""
        expected = self.visible()
        if key not in expected:
            with pytest.raises(KeyError):
                self.jobs.pop(key) if how == "pop" else self.jobs.__delitem__(key)
            assert self.jobs.pop(key, "default") == "default"
            return
        if how == "del":
            del self.jobs[key]
        else:
            popped = self.jobs.pop(key) if how == "pop" else self.jobs.pop(key, "default")
            assert popped == expected[key]
        self._model_delete(key)

    @rule(key=KEYS, how=st.sampled_from(["getitem", "get", "in"]))
    def read(self, key: str, how: str) -> None:
        """``jobs[key]``, ``jobs.get(key)`` or ``key in jobs``."""
        expected = self.visible()
        found = key in expected
        if how == "in":
            assert (key in self.jobs) is found
        elif how == "get":
            assert self.jobs.get(key, "default") == expected.get(key, "default")
        elif found:
            assert self.jobs[key] == expected[key]
        else:
            with pytest.raises(KeyError):
                self.jobs[key]
        if found:
            self._model_read(key)

    @rule(items=st.lists(st.tuples(KEYS, VALUES), max_size=4), as_kwargs=st.booleans())
    def update(self, items: list[tuple[str, Any]], as_kwargs: bool) -> None:
        if as_kwargs and all(key.isidentifier() for key, _ in items):
            self.jobs.update(**dict(items))
        else:
            self.jobs.update(items)
        for key, value in items:
            self._model_set(key, value)

    @rule()
    def clear(self) -> None:
        self.jobs.clear()
        self._cut_loose()
        self.mem.clear()
        if self.rules_.writes_db:
            self.db.clear()
        else:
            self.cleared_in_memory = True
            self.deleted_in_memory.clear()

    @rule(target=held_objects, key=KEYS)
    def take(self, key: str) -> Any:
        """Take a job object and keep it, as the service's render loop does."""
        value = self.visible().get(key)
        if not isinstance(value, dict):
            return None
        obj = self.jobs[key]
        self._model_read(key)
        held = Held(key, obj)
        self.held.append(held)
        return held

    @rule(held=consumes(held_objects), n=st.integers(10, 99), sync=st.booleans())
    def change_in_place(self, held: Held | None, n: int, sync: bool) -> None:
        """``job.n = ...`` on a kept object, with no assignment back; then maybe ``sync()``."""
        if held is None or held.stranded:
            return
        held.obj["n"] = n
        held.obj.setdefault("tags", []).append("changed")
        if held.live:
            # Written back like an assignment: into the dict too where the stage keeps one
            # (at the latest when the stage changes, by the rules of the stage it was made in).
            if self.rules_.keeps_memory:
                self.mem[held.key] = copy.deepcopy(held.obj)
            if self.rules_.writes_db:
                self.db[held.key] = copy.deepcopy(held.obj)
        if sync:
            self.jobs.sync()

    @rule(key=KEYS, n=st.integers(100, 199))
    def change_in_place_at_once(self, key: str, n: int) -> None:
        """``jobs[key]["n"] = ...`` on an object not kept afterwards, then ``sync()``."""
        if not isinstance(self.visible().get(key), dict):
            return
        self.jobs[key]["n"] = n
        self._model_read(key)
        if self.rules_.keeps_memory and key in self.mem:
            self.mem[key]["n"] = n
        if self.rules_.writes_db:
            self.db[key]["n"] = n
        self.jobs.sync()

    @rule()
    def sync(self) -> None:
        self.jobs.sync()

    @rule()
    def close_and_reopen(self) -> None:
        """A restart: the dict is gone; only the database remains."""
        self.jobs.close()
        self._cut_loose()
        self.mem.clear()
        self.deleted_in_memory, self.cleared_in_memory = set(), False
        self.store = self._open()

    @rule(forward=st.booleans())
    def step_stage(self, forward: bool) -> None:
        """One stage forward (``cutover`` walks them) or back (``rollback``)."""
        order = list(Stage)
        index = order.index(self.stage) + (1 if forward else -1)
        if 0 <= index < len(order):
            self.change_stage(order[index])

    @rule(target_stage=STAGES)
    def change_stage(self, target_stage: Stage) -> None:
        """The control row moves (``jobstore stage``); the process follows at ``sync()``."""
        old, new = self.stage.rules, target_stage.rules
        # force: the machine also makes the moves an operator is asked to confirm
        admin.set_stage(target_stage, self.url, table=self.table, force=True, wait=False)
        self.jobs.sync()
        if not old.writes_db and new.writes_db:
            # What memory did reaches the database: its clear, its deletions, its jobs.
            if self.cleared_in_memory:
                self.db.clear()
            for key in self.deleted_in_memory:
                self.db.pop(key, None)
            self.db.update(copy.deepcopy(self.mem))
            self.deleted_in_memory, self.cleared_in_memory = set(), False
        if not new.keeps_memory:
            self.mem.clear()
        if old.writes_db and not new.writes_db:
            self._entering_memory()
        if not new.writes_db:
            for held in self.held:
                if held.live and held.key not in self.mem:
                    held.live, held.stranded = False, True
        self.stage = target_stage
        assert self.jobs.stage is target_stage

    @precondition(lambda self: self.stage.rules.writes_db)
    @rule()
    def verify(self) -> None:
        """After a sync, the dict and the database agree: no drift."""
        self.jobs.sync()
        report = self.jobs.verify()
        assert report.drifts == (), report.drifts

    # invariants ----------------------------------------------------------------------------

    @invariant()
    def lists_the_same_jobs(self) -> None:
        if self.store is None:
            return
        expected = self.visible()
        assert len(self.jobs) == len(expected)
        assert sorted(self.jobs) == sorted(expected)
        assert dict(self.jobs.items()) == expected

    @invariant()
    def no_shadow_mismatch(self) -> None:
        if self.store is not None:
            assert self.jobs.shadow_mismatches == 0, self.jobs.last_error
            assert self.jobs.queued_writes == 0

    def teardown(self) -> None:
        if self.store is not None:
            self.store.close()


class BoundedDictMachine(JobStoreMachine):
    """The same rules with ``max_memory_items=2``: the dict forgets jobs safe in the
    database, least recently used first, so which ones it still holds when a rollback to
    ``memory`` shows only the dict is the store's choice; the model takes that choice, after
    checking it only holds jobs the unbounded dict would, with their values."""

    BOUND = 2

    def _open(self) -> JobStore[Any]:
        """The dict tier is handed in, as a service hands in its legacy dict, so it can be read."""
        self.tier: dict[str, Any] = {}
        store: JobStore[Any] = JobStore(self.url, table=self.table, stage=self.stage,
                                        sync_interval=3600, shadow_sample_rate=1.0,
                                        max_memory_items=self.BOUND, legacy=self.tier)
        return store

    def _entering_memory(self) -> None:
        kept = dict(self.tier)
        assert kept.keys() <= self.mem.keys()
        assert kept == {key: self.mem[key] for key in kept}
        self.mem = copy.deepcopy(kept)

    @invariant()
    def the_dict_stays_within_its_bound(self) -> None:
        if self.store is not None and self.rules_.writes_db:
            assert len(self.tier) <= self.BOUND


EXAMPLES = {"sqlite": 150, "postgresql": 8, "mysql": 8}
STEPS = {"sqlite": 40, "postgresql": 25, "mysql": 25}


def test_jobstore_and_its_model_never_disagree(backend: str, tmp_path: Any) -> None:
    """Driven by any sequence of the rules, the store shows exactly what the model says."""
    _run_machine(backend, tmp_path, bounded=False)


def test_a_bounded_jobstore_and_its_model_never_disagree(tmp_path: Any) -> None:
    """With ``max_memory_items`` too (eviction is the same code on every backend: SQLite)."""
    _run_machine("sqlite", tmp_path, bounded=True)


def _run_machine(backend: str, tmp_path: Any, *, bounded: bool) -> None:
    if os.environ.get("JOBSTORE_STAGE"):
        pytest.skip("a pinned stage would ignore the control row")
    url = backend_url(backend, tmp_path)
    tables: list[str] = []
    base = BoundedDictMachine if bounded else JobStoreMachine
    machine = type("Machine", (base,), {"url": url, "backend": backend, "tables": tables})
    examples = EXAMPLES[backend] // 2 if bounded else EXAMPLES[backend]
    try:
        run_state_machine_as_test(machine, settings=settings(
            max_examples=examples, stateful_step_count=STEPS[backend], deadline=None,
            suppress_health_check=[HealthCheck.too_slow], database=None,
            # No explain phase: its line tracer makes a failing run too slow to report.
            phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
        ))
    finally:
        if backend != "sqlite":
            for table in tables:
                drop_table(url, table)


def _machine(url: str, backend: str, tables: list[str]) -> type[JobStoreMachine]:
    return type("Machine", (JobStoreMachine,), {"url": url, "backend": backend, "tables": tables})


def _check(state: JobStoreMachine) -> None:
    state.lists_the_same_jobs()
    state.no_shadow_mismatch()


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize(("old", "new"), [(a, b) for a in Stage for b in Stage if a is not b])
def test_a_stage_change_shows_what_the_model_says(
    db_url: str, backend: str, old: Stage, new: Stage
) -> None:
    """Every stage change, with jobs only in the database, jobs in the dict and a job kept
    and changed in place across it, leaves the store as DESIGN §1 says, before and after a
    restart."""
    state = _machine(db_url, backend, [])()
    try:
        state.open_store(stage=old, items={"a": {"status": "queued", "n": 1},
                                           "b": {"status": "queued", "n": 2}})
        state.close_and_reopen()
        state.write(key="c", value={"status": "queued", "n": 3}, how="setitem")
        state.read(key="a", how="getitem")
        kept = state.take(key="c")
        state.change_in_place(held=kept, n=11, sync=True)
        _check(state)
        state.change_stage(target_stage=new)
        _check(state)
        state.change_in_place(held=state.take(key="c"), n=12, sync=False)
        state.change_in_place(held=state.take(key="a"), n=13, sync=False)
        state.sync()
        _check(state)
        if new.rules.writes_db:
            state.verify()
        state.close_and_reopen()
        _check(state)
    finally:
        state.teardown()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_job_changed_in_place_during_a_rollback_to_memory_reaches_the_database_after(
    db_url: str, backend: str
) -> None:
    """A job written in dual_write, changed in place while rolled back to memory, is written
    to the database when dual_write returns, so a restart does not bring back the old one."""
    state = _machine(db_url, backend, [])()
    try:
        state.open_store(stage=Stage.DUAL_WRITE, items={"a": {"status": "queued", "n": 1}})
        state.sync()
        state.change_stage(target_stage=Stage.MEMORY)
        state.change_in_place(held=state.take(key="a"), n=50, sync=False)
        state.change_stage(target_stage=Stage.DUAL_WRITE)
        state.verify()
        state.close_and_reopen()
        _check(state)
        assert state.jobs["a"]["n"] == 50
    finally:
        state.teardown()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_change_in_place_not_yet_written_back_survives_a_rollback_to_memory(
    db_url: str, backend: str
) -> None:
    """A job kept from db_only and changed in place in db_primary, with the stage moving to
    memory before the next write-back, is written back as db_primary writes (database and
    dict) instead of being left out of both."""
    state = _machine(db_url, backend, [])()
    try:
        state.open_store(stage=Stage.DB_ONLY, items={"a": {"status": "queued", "n": 1}})
        kept = state.take(key="a")
        state.change_stage(target_stage=Stage.DB_PRIMARY)
        state.change_in_place(held=kept, n=77, sync=False)
        state.change_stage(target_stage=Stage.MEMORY)
        _check(state)
        assert state.jobs["a"]["n"] == 77
        state.change_stage(target_stage=Stage.DUAL_WRITE)
        state.close_and_reopen()
        _check(state)
        assert state.jobs["a"]["n"] == 77
    finally:
        state.teardown()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_stale_read_of_the_control_row_does_not_undo_a_newer_stage(
    make_store: Any, backend: str, db_url: str, table_name: str
) -> None:
    """The loop read the control row just before the stage changed, and applies what it read
    only after ``sync()`` applied the new stage: the older read is dropped, not applied."""
    store = make_store(stage=Stage.MEMORY, sync_interval=3600)
    store["job"] = {"status": "queued"}
    # internal: the loop's poll of the control row, stalled between its read and its apply
    real_read = store._parts.control.read_stage
    main = threading.current_thread()
    read_done, release = threading.Event(), threading.Event()

    def read_then_stall() -> Any:
        state = real_read()
        if threading.current_thread() is not main:
            read_done.set()
            release.wait(10)
        return state

    store._parts.control.read_stage = read_then_stall
    stale_poll = threading.Thread(target=store._follower.poll)
    stale_poll.start()
    assert read_done.wait(10)
    admin.set_stage(Stage.DUAL_WRITE, db_url, table=table_name, wait=False)
    store.sync()
    assert store.stage is Stage.DUAL_WRITE
    release.set()
    stale_poll.join(10)
    assert store.stage is Stage.DUAL_WRITE
    assert dict(store.items()) == {"job": {"status": "queued"}}
