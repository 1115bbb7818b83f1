"""Stores keyed by ``int`` and `uuid.UUID`, and the dict methods ``copy``, ``|``, ``|=``,
``popitem`` and ``reversed``, on every backend and in every stage that writes the database."""

from __future__ import annotations

import dataclasses
import inspect
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.engine import Engine

from _workers import run_worker
from jobstore import JobStore, Stage
from jobstore.db.jobs import JobRows
from jobstore.db.schema import build_schema
from jobstore.shim.keyed_rows import TEXT_ONLY, KeyedRows
from jobstore.snapshot import read_dump
from workers.models import PresentationJob, sample_job

DB_STAGES = [s for s in Stage if s.rules.writes_db]
KEYS: dict[str, tuple[type[Any], list[Any]]] = {
    "int": (int, [7, 1, 10**30, -3, 0]),
    "uuid": (uuid.UUID, [uuid.UUID(int=n * 7919 + 1) for n in range(5)]),
}
WRONG: dict[str, list[Any]] = {
    "int": ["7", 7.5, None, b"7", uuid.UUID(int=7)],
    "uuid": [str(uuid.UUID(int=1)), uuid.UUID(int=1).int, None, uuid.UUID(int=1).bytes],
}


@pytest.fixture
def raw(db_url: str) -> Any:
    engine = create_engine(db_url)
    yield engine
    engine.dispose()


def _rows(raw: Engine, table: str) -> dict[str, str]:
    jobs = build_schema(table).jobs
    with raw.connect() as conn:
        return {row[0]: row[1] for row in conn.execute(select(jobs.c.key, jobs.c.payload))}


@pytest.mark.parametrize("kind", list(KEYS))
@pytest.mark.parametrize("stage", DB_STAGES)
def test_keys_of_the_store_type_round_trip_through_the_database(
    make_store: Callable[..., JobStore[Any, Any]], raw: Engine, table_name: str, db_url: str,
    stage: Stage, kind: str,
) -> None:
    """Written by one store, the jobs come back with keys of the key type from another store
    and from another process; the rows hold canonical text; a key of another type reads as
    absent and writing one is a TypeError that writes nothing."""
    key_type, keys = KEYS[kind]
    store = make_store(stage=stage, key_type=key_type)
    for n, key in enumerate(keys):
        store[key] = {"n": n}
    for wrong in WRONG[kind]:
        with pytest.raises(TypeError):
            store[wrong] = {"n": -1}
        assert store.get(wrong) is None
        assert wrong not in store
        with pytest.raises(KeyError):
            store[wrong]
        assert store.pop(wrong, "d") == "d"
    with pytest.raises(TypeError):
        store.update({keys[0]: {}, "x": {}})
    store.sync()
    assert _rows(raw, table_name) == {str(key): json.dumps({"n": n}, separators=(",", ":"))
                                      for n, key in enumerate(keys)}

    other = make_store(stage=stage, key_type=key_type)
    assert sorted(other) == sorted(keys)
    assert all(type(key) is key_type for key in other)
    assert {key: other[key] for key in keys} == {key: {"n": n} for n, key in enumerate(keys)}

    out = json.loads(run_worker("read_keyed", db_url, table_name, stage.value, kind))
    assert sorted(item[1] for item in out["items"]) == sorted(str(k) for k in keys)
    assert {item[0] for item in out["items"]} == {key_type.__name__}
    assert {item[1]: item[2] for item in out["items"]} == {
        str(key): {"n": n} for n, key in enumerate(keys)}
    assert out["get_wrong"] is None
    assert out["in_wrong"] is False
    assert out["index_wrong"] == "KeyError"


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("stage", list(Stage))
def test_bool_is_not_an_int_key(make_store: Callable[..., JobStore[Any, Any]],
                                stage: Stage) -> None:
    """Writing True to an int store is a TypeError; reading True finds job 1, as a dict's
    lookup does (True == 1, with one hash)."""
    store = make_store(stage=stage, key_type=int)
    with pytest.raises(TypeError, match="bool"):
        store[True] = {"n": 1}
    assert len(store) == 0
    store[1] = {"n": 1}
    assert store[True] == {"n": 1}
    assert True in store
    assert list(store) == [1]
    assert type(next(iter(store))) is int


@pytest.mark.parametrize("backend", ["sqlite"])
def test_an_unknown_key_type_is_refused_before_the_database_is_touched(
    db_url: str, table_name: str, tmp_path: Path,
) -> None:
    with pytest.raises(ValueError, match="key_type must be one of"):
        JobStore(db_url, table=table_name, key_type=bytes)
    assert not (tmp_path / "jobs.db").exists()


@pytest.mark.parametrize("kind", list(KEYS))
@pytest.mark.parametrize("stage", DB_STAGES)
def test_the_readme_service_runs_unchanged_keyed_by_int_and_uuid(
    db_url: str, table_name: str, stage: Stage, kind: str,
) -> None:
    """README "Before and after": the service's own code (assign, get, in, scan values, change
    a job in place without assigning back) is unchanged; only the JobStore line names the key
    type. A restarted service finds every job, with its in-place change and its key type."""
    key_type, keys = KEYS[kind]

    class ProfessionalPresentationService:
        def __init__(self) -> None:
            self.jobs: JobStore[Any, PresentationJob] = JobStore(
                db_url, table=table_name, model=PresentationJob, stage=stage,
                key_type=key_type)

        def create(self, job_id: Any) -> None:
            self.jobs[job_id] = sample_job(str(job_id), len(str(job_id)))

        def status(self, job_id: Any) -> str | None:
            job = self.jobs.get(job_id)
            return None if job is None else job.status

        def render_all(self) -> None:
            for job in self.jobs.values():
                if job.status == "queued":
                    job.status = "completed"  # the legacy habit: no assignment back
                    job.video_url = f"/download/{job.job_id}.mp4"

    service = ProfessionalPresentationService()
    for key in keys:
        service.create(key)
    assert all(key in service.jobs for key in keys)
    assert service.status(str(keys[0])) is None  # a 404, not a 500
    service.render_all()
    service.jobs.close()

    restarted = ProfessionalPresentationService()
    try:
        assert sorted(restarted.jobs) == sorted(keys)
        assert all(type(key) is key_type for key in restarted.jobs)
        for key in keys:
            assert restarted.status(key) == "completed"
            assert restarted.jobs[key].video_url == f"/download/{key}.mp4"
    finally:
        restarted.jobs.close()


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("stage", list(Stage))
def test_copy_or_and_ior_are_a_dicts(make_store: Callable[..., JobStore[Any, Any]],
                                     stage: Stage) -> None:
    """``copy()`` is a plain dict of what iteration gives; ``store | other`` a new plain dict,
    the store unchanged; ``other | store`` too; ``store |= other`` updates the store and is it."""
    store = make_store(stage=stage, key_type=int)
    store.update({1: {"n": 1}, 2: {"n": 2}})
    snapshot = store.copy()
    assert type(snapshot) is dict
    assert snapshot == {1: {"n": 1}, 2: {"n": 2}}
    assert list(snapshot) == list(store)
    snapshot[3] = {"n": 3}
    assert 3 not in store

    merged = store | {2: {"n": 20}, 3: {"n": 3}}
    assert type(merged) is dict
    assert merged == {1: {"n": 1}, 2: {"n": 20}, 3: {"n": 3}}
    assert dict(store) == {1: {"n": 1}, 2: {"n": 2}}
    assert ({2: {"n": 0}, 9: {"n": 9}} | store) == {2: {"n": 2}, 9: {"n": 9}, 1: {"n": 1}}
    with pytest.raises(TypeError):
        store | [(4, {})]  # type: ignore[operator]

    same = store
    same |= {3: {"n": 3}}
    assert same is store
    assert dict(store) == {1: {"n": 1}, 2: {"n": 2}, 3: {"n": 3}}
    with pytest.raises(TypeError):
        store |= {"4": {}}
    assert 4 not in store


@pytest.mark.parametrize("stage", DB_STAGES)
def test_popitem_and_reversed_follow_iteration_order(
    make_store: Callable[..., JobStore[Any, Any]], stage: Stage,
) -> None:
    """``reversed(store)`` is iteration order backwards; ``popitem()`` removes the last job
    (from the database too: another store no longer has it), and KeyError when empty."""
    store = make_store(stage=stage, key_type=int)
    for key in (5, 3, 8):
        store[key] = {"k": key}
    order = list(store)
    assert list(reversed(store)) == order[::-1]
    assert store.popitem() == (order[-1], {"k": order[-1]})
    other = make_store(stage=stage, key_type=int)
    assert sorted(other) == sorted(order[:-1])
    store.popitem()
    store.popitem()
    with pytest.raises(KeyError):
        store.popitem()
    assert len(other) == 0


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("stage", [Stage.DUAL_WRITE, Stage.DB_PRIMARY])
def test_verify_and_the_memory_dump_name_keys_as_text(
    make_store: Callable[..., JobStore[Any, Any]], raw: Engine, table_name: str,
    tmp_path: Path, stage: Stage,
) -> None:
    """A drifted UUID-keyed job is reported under the text of its row, and the dump (read by
    ``jobstore verify --snapshot``) is JSON keyed by that text."""
    key = uuid.UUID(int=42)
    store = make_store(stage=stage, key_type=uuid.UUID)
    store[key] = {"status": "queued"}
    jobs = build_schema(table_name).jobs
    with raw.begin() as conn:
        conn.execute(jobs.update().values(payload='{"status":"lost"}'))
    report = store.verify()
    assert [d.key for d in report.drifts] == [str(key)]
    json.dumps(report.to_dict())
    assert store.dump_memory(tmp_path / "mem.json") == 1
    dump = read_dump(tmp_path / "mem.json")
    assert dump.jobs == {str(key): {"status": "queued"}}


def test_keyed_rows_converts_every_jobrows_method_that_names_a_key() -> None:
    """A method added to JobRows that takes or gives a key must be converted in KeyedRows
    (or be listed as text-only), else an int or UUID store would send it untranslated."""
    public = {name for name, member in inspect.getmembers(JobRows, inspect.isfunction)
              if not name.startswith("_")}
    overridden = {name for name in vars(KeyedRows) if not name.startswith("_")}
    assert public - TEXT_ONLY - overridden == set()
    assert public >= TEXT_ONLY


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_legacy_dict_keyed_by_int_is_adopted(
    make_store: Callable[..., JobStore[Any, Any]], raw: Engine, table_name: str,
) -> None:
    """The app's own dict, keyed by its own int keys, becomes the dict tier and reaches the
    database under the keys' text."""
    legacy: dict[int, Any] = {1: {"n": 1}, 2: {"n": 2}}
    store = make_store(stage=Stage.DUAL_WRITE, key_type=int, legacy=legacy)
    store.sync()
    assert set(_rows(raw, table_name)) == {"1", "2"}
    assert store[1] is legacy[1]
    with pytest.raises(TypeError):
        make_store(stage=Stage.DUAL_WRITE, key_type=int, legacy={"1": {}})


def test_drift_keys_stay_text_for_str_stores() -> None:
    """The str default passes a report through untouched (no copy on the default path)."""
    from jobstore.shim.key_text import text_report
    from jobstore.verify import Drift, DriftKind, VerifyReport

    report = VerifyReport("i", "dual_write", 1, (Drift("a", DriftKind.CHANGED),))
    assert text_report(report) is report
    converted = text_report(dataclasses.replace(
        report, drifts=(Drift(7, DriftKind.CHANGED),)))  # type: ignore[arg-type]
    assert converted.drifts[0].key == "7"
