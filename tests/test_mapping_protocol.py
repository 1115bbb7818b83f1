"""CPython's own mapping tests (``test.mapping_tests``) run against `JobStore`, in every stage.

``BasicTestMappingProtocol``, ``TestMappingProtocol`` and ``TestHashMappingProtocol`` run as
CPython wrote them, on SQLite in each of the five stages and on PostgreSQL in ``db_only``.
Values are JSON-stable (a list where CPython uses a tuple: JSON has no tuple). A store has one
key type, so each test gets the one it uses: ``int`` for the tests that store ``{1: 2}``, else
``str``. `SKIPPED` lists every test method that cannot apply to a database-backed store, with
why; each runs as a skip carrying that reason, and the behaviour it can check is checked in
``tests/test_key_types.py`` instead.
"""

from __future__ import annotations

import shutil
import tempfile
import unittest
import uuid
from typing import Any

import pytest
import test.mapping_tests as cpython  # type: ignore[import-not-found,unused-ignore]

from conftest import SERVER_URLS, drop_table, unreachable_reason
from jobstore import JobStore, Stage

INT_KEYED = {"test_values", "test_items", "test_clear", "test_mutatingiteration"}
"""Tests whose own data has int keys (``{1: 2}``); the rest use str keys."""

SKIPPED = {
    "test_constructor": "JobStore(x=1, y=2) cannot build a store from items: its arguments are "
                        "its database, table and stage (the rest of the test, two empty "
                        "stores compare equal, runs in BasicTestMappingProtocol)",
    "test_fromkeys": "fromkeys() would need a database and a table to build a new store from "
                     "keys alone; JobStore has no fromkeys",
    "test_copy": "copy() is a plain dict snapshot (DESIGN section 2), not a second store on "
                 "the same table, so isinstance(d.copy(), JobStore) is False by design; "
                 "the equalities are in test_key_types.py",
    "test_update": "TestMappingProtocol.test_update mixes int keys ({1: 100}) and str keys "
                   "(x=100) in one method, and a store has one key type; each half is in "
                   "BasicTestMappingProtocol.test_update (str) and test_key_types.py (int)",
    "test_repr": "repr(store) names the table, URL and stage instead of scanning every job "
                 "into a dict repr; a store holding itself (d[1] = d) is not JSON",
    "test_repr_deep": "stores a store as a value, which is not JSON-encodable",
    "test_eq": "uses keys of an arbitrary class (BadCmp); a store's keys are str, int or "
               "UUID, which always compare (the equality half runs in test_read)",
}
"""Test methods that cannot apply to a database-backed store, with why."""
HASH_SKIPPED = {
    "test_getitem": "uses keys of arbitrary classes (BadEq, BadHash); a store's keys are str, "
                    "int or UUID (TestMappingProtocol.test_getitem runs on its own)",
    "test_pop": "uses a key of an arbitrary class (BadHash); TestMappingProtocol.test_pop runs",
    "test_setdefault": "uses a key of an arbitrary class (BadHash); "
                       "TestMappingProtocol.test_setdefault runs",
}
"""Further skips in TestHashMappingProtocol: its additions are about arbitrary hashable keys."""
DB_SKIPPED = {
    "test_popitem": "pops 2 x 4,095 jobs one at a time over sizes up to 2,048, and each "
                    "popitem lists the keys (a scan runs forwards only): about 80 s a stage on "
                    "SQLite. It runs as written in memory; test_popitem_is_lifo_in_every_stage "
                    "below is the same loop with sizes up to 64 in every stage",
}
"""Skipped where the database is written, for time alone."""


class StoreUnderTest:
    """What every generated case shares: a fresh store on its own table per mapping asked for."""

    stage: Stage
    url: str | None = None
    _testMethodName: str

    def _key_type(self) -> type[Any]:
        return int if self._testMethodName in INT_KEYED else str

    def _reference(self) -> dict[Any, Any]:
        if self._key_type() is int:
            return {1: "2", 2: "value1", 3: [1, 2, 3]}
        return {"1": "2", "key1": "value1", "key2": [1, 2, 3]}

    def _empty_mapping(self) -> JobStore[Any, Any]:
        case: Any = self
        if not hasattr(self, "_stores"):
            self._stores: list[tuple[JobStore[Any, Any], str]] = []
            self._dir = tempfile.mkdtemp(prefix="jobstore-mapping-")
            case.addCleanup(self._close_stores)
        url = self.url or f"sqlite:///{self._dir}/jobs.db"
        table = f"m_{uuid.uuid4().hex[:12]}"
        store: JobStore[Any, Any] = JobStore(url, table=table, stage=self.stage,
                                             key_type=self._key_type(), sync_interval=60)
        self._stores.append((store, table))
        return store

    def _close_stores(self) -> None:
        for store, table in self._stores:
            store.close()
            if self.url is not None:
                drop_table(self.url, table)
        shutil.rmtree(self._dir, ignore_errors=True)


def _skip(reason: str) -> Any:
    def skipped(self: unittest.TestCase) -> None:
        self.skipTest(reason)
    return skipped


def _cases(backend: str, url: str | None, stages: list[Stage]) -> dict[str, type]:
    made: dict[str, type] = {}
    for base, skips in ((cpython.BasicTestMappingProtocol, {}),
                        (cpython.TestMappingProtocol, SKIPPED),
                        (cpython.TestHashMappingProtocol, {**SKIPPED, **HASH_SKIPPED})):
        for stage in stages:
            name = f"Test{base.__name__.removeprefix('Test')}_{backend}_{stage.value}"
            body: dict[str, Any] = {"stage": stage, "url": url, "type2test": JobStore,
                                    "__module__": __name__}
            every = {**skips, **(DB_SKIPPED if stage.rules.writes_db else {})}
            body.update({method: _skip(reason) for method, reason in every.items()
                         if hasattr(base, method)})
            made[name] = type(name, (StoreUnderTest, base), body)
    return made


globals().update(_cases("sqlite", None, list(Stage)))

_PG_URL = SERVER_URLS["postgresql"]
_pg_cases = _cases("postgresql", _PG_URL, [Stage.DB_ONLY])
for _case in _pg_cases.values():
    _case.setUpClass = classmethod(  # type: ignore[attr-defined]
        lambda cls: (reason := unreachable_reason("postgresql")) is None
        or pytest.skip(f"server not reachable: {reason}"))
globals().update(_pg_cases)


@pytest.mark.parametrize("stage", list(Stage))
def test_popitem_is_lifo_in_every_stage(tmp_path: Any, stage: Stage) -> None:
    """CPython's TestMappingProtocol.test_popitem loop, sizes 1 to 64: popitem gives each job
    back once, the last in iteration order first, and a store built the same way pops in the
    same order; then the store is empty and popitem raises KeyError."""
    url = f"sqlite:///{tmp_path}/jobs.db"
    for log2size in range(7):
        size = 2 ** log2size
        with JobStore(url, table=f"a{size}", stage=stage) as a, \
                JobStore(url, table=f"b{size}", stage=stage) as b:
            for i in range(size):
                a[repr(i)] = i
                b[repr(i)] = i
            for _ in range(size):
                last = list(a)[-1]
                ka, va = a.popitem()
                assert ka == last
                assert va == int(ka)
                assert b.popitem() == (ka, va)
            assert not a
            assert not b
            with pytest.raises(KeyError):
                a.popitem()
