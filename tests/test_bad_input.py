"""Bad input (issue item 11): refused up front, with the error a careful user expects, and
nothing half-written.

Each check reads the database directly, with its own engine, so "nothing was written" means
no row and no history event, not only an unchanged dict.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, func, inspect, select, update

from jobstore import DecodeError, EncodeError, JobStore, JobStoreError, Stage
from jobstore.db.schema import build_schema


@dataclasses.dataclass
class Job:
    status: str
    progress: float = 0.0


class Unencodable:
    """An object pydantic has no JSON form for."""


@pytest.fixture
def raw(db_url: str) -> Iterator[Engine]:
    """An engine of the test's own, to look at the tables behind the store's back."""
    engine = create_engine(db_url)
    yield engine
    engine.dispose()


def _rows(raw: Engine, table: str) -> dict[str, str]:
    """Every row's payload by key, read directly."""
    jobs = build_schema(table).jobs
    if not inspect(raw).has_table(table):
        return {}
    with raw.connect() as conn:
        return {row[0]: row[1] for row in conn.execute(select(jobs.c.key, jobs.c.payload))}


def _events(raw: Engine, table: str) -> int:
    events = build_schema(table).events
    if not inspect(raw).has_table(events.name):
        return 0
    with raw.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(events)).scalar_one())


UNENCODABLE = {
    "object": Unencodable(),
    "nested-object": {"status": "queued", "handle": Unencodable()},
    "datetime-in-plain-json": {"at": datetime(2024, 1, 1, tzinfo=timezone.utc)},
    "set": {"s": {1, 2}},
    "nan": {"progress": float("nan")},
    "lone-surrogate": {"text": "\ud800"},
    "int-dict-key": {1: "one"},
}


@pytest.mark.parametrize("stage", list(Stage))
def test_an_unencodable_value_raises_encode_error_before_anything_is_written(
    make_store: Callable[..., JobStore[Any]], raw: Engine, table_name: str, stage: Stage
) -> None:
    """Setting, updating with or defaulting to a value that has no JSON form raises
    EncodeError (a TypeError too), and neither the dict nor the database changes."""
    store = make_store(stage=stage)
    store["keep"] = {"status": "queued"}
    store.sync()
    rows_before, events_before = _rows(raw, table_name), _events(raw, table_name)
    for name, value in UNENCODABLE.items():
        with pytest.raises(EncodeError) as raised:
            store["keep"] = value
        assert isinstance(raised.value, TypeError)
        with pytest.raises(EncodeError):
            store[name] = value
        with pytest.raises(EncodeError):
            store.update({"fine": {"status": "ok"}, name: value})
        with pytest.raises(EncodeError):
            store.update([("fine", {"status": "ok"})], **{"bad": value})
        with pytest.raises(EncodeError):
            store.setdefault(name, value)
    store.sync()
    assert store == {"keep": {"status": "queued"}}
    assert _rows(raw, table_name) == rows_before
    assert _events(raw, table_name) == events_before
    assert store.queued_writes == 0


@pytest.mark.parametrize("stage", [Stage.DUAL_WRITE, Stage.DB_ONLY])
def test_a_value_that_does_not_fit_the_model_raises_encode_error(
    make_store: Callable[..., JobStore[Any]], raw: Engine, table_name: str, stage: Stage
) -> None:
    """With a model, a value of another type, or a model value holding NaN (which JSON would
    turn into null, undecodable as a float), raises EncodeError and writes nothing."""
    store = make_store(stage=stage, model=Job)
    store["ok"] = Job("queued", 0.5)
    for value in ({"status": "queued"}, "queued", Job("queued", float("nan")),
                  Job("queued", float("-inf"))):
        with pytest.raises(EncodeError):
            store["bad"] = value
    assert "bad" not in store
    assert set(_rows(raw, table_name)) == {"ok"}


NOT_STR = [1, 1.5, b"bytes", None, ("a",), Stage.DB_ONLY.value.encode()]


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("stage", list(Stage))
def test_a_key_that_is_not_str_is_refused_on_write_and_absent_on_read(
    make_store: Callable[..., JobStore[Any]], raw: Engine, table_name: str, stage: Stage
) -> None:
    """Every write with a non-str key raises TypeError and writes nothing; every read answers
    as a dict does for a key that is not there (DESIGN section 2: ``get`` gives the default,
    ``in`` is False, ``[]`` and ``del`` raise KeyError, ``pop(k, d)`` gives ``d``)."""
    store = make_store(stage=stage)
    store["1"] = {"status": "queued"}
    for key in NOT_STR:
        with pytest.raises(TypeError):
            store[key] = {"status": "queued"}
        with pytest.raises(TypeError):
            store.setdefault(key, {"status": "queued"})
        with pytest.raises(TypeError):
            store.update({"fine": {}, key: {"status": "queued"}})
        with pytest.raises(KeyError):
            store[key]
        assert store.get(key) is None
        assert store.get(key, "absent") == "absent"
        with pytest.raises(KeyError):
            del store[key]
        assert store.pop(key, None) is None
        assert key not in store
    assert list(store) == ["1"]
    assert set(_rows(raw, table_name)) == ({"1"} if stage.rules.writes_db else set())


@pytest.mark.parametrize("stage", [Stage.MEMORY, Stage.DUAL_WRITE, Stage.DB_ONLY])
def test_a_key_over_255_characters_raises_value_error(
    make_store: Callable[..., JobStore[Any]], raw: Engine, table_name: str, stage: Stage
) -> None:
    """A 256-character key raises ValueError on every path, and nothing is written."""
    store = make_store(stage=stage)
    key = "k" * 256
    with pytest.raises(ValueError, match="255"):
        store[key] = {"status": "queued"}
    with pytest.raises(ValueError, match="255"):
        store.update({"fine": {}, key: {}})
    with pytest.raises(ValueError, match="255"):
        store.setdefault(key, {})
    with pytest.raises(ValueError, match="255"):
        store[key]
    with pytest.raises(ValueError, match="255"):
        store.pop(key, None)
    assert _rows(raw, table_name) == {}
    assert len(store) == 0


@pytest.mark.parametrize("stage", [Stage.DUAL_WRITE, Stage.DB_ONLY])
def test_a_key_of_255_characters_of_any_width_is_stored(
    make_store: Callable[..., JobStore[Any]], stage: Stage
) -> None:
    """Keys of exactly 255 characters, one, two, three or four UTF-8 bytes each, round-trip
    through the database on every backend."""
    store = make_store(stage=stage)
    keys = [char * 255 for char in ("k", "ж", "✓", "🙂")]
    for n, key in enumerate(keys):
        store[key] = {"n": n}
    store.close()
    again = make_store(stage=stage)
    assert sorted(again) == sorted(keys)
    for n, key in enumerate(keys):
        assert again[key] == {"n": n}


@pytest.mark.parametrize("stage", [Stage.MEMORY, Stage.DUAL_WRITE, Stage.DB_ONLY])
@pytest.mark.parametrize("key", ["nul\x00inside", "lone \ud800 surrogate"],
                         ids=["nul", "surrogate"])
def test_a_key_no_database_can_store_raises_value_error(
    make_store: Callable[..., JobStore[Any]], raw: Engine, table_name: str, stage: Stage,
    key: str,
) -> None:
    """A key with NUL (PostgreSQL cannot store it) or a lone surrogate (not UTF-8) raises
    ValueError on every backend and in every stage, before the dict changes, rather than
    failing in the database afterwards (queued forever, or StoreUnavailableError)."""
    store = make_store(stage=stage)
    with pytest.raises(ValueError, match="key"):
        store[key] = {"status": "queued"}
    with pytest.raises(ValueError, match="key"):
        store.update({key: {}})
    assert len(store) == 0
    assert store.queued_writes == 0
    assert _rows(raw, table_name) == {}


@pytest.mark.parametrize("stage", [Stage.DUAL_WRITE, Stage.DB_ONLY])
def test_a_status_with_nul_is_stored(
    make_store: Callable[..., JobStore[Any]], raw: Engine, table_name: str, stage: Stage
) -> None:
    """A NUL inside a value's status (fine in JSON) is stored on every backend, the value
    whole in the payload, the status column without the NUL."""
    store = make_store(stage=stage)
    store["k"] = {"status": "odd\x00status"}
    store.sync()
    assert store.queued_writes == 0
    store.close()
    assert make_store(stage=stage)["k"] == {"status": "odd\x00status"}
    jobs = build_schema(table_name).jobs
    with raw.connect() as conn:
        assert conn.execute(select(jobs.c.status)).scalar_one() == "oddstatus"


def _corrupt(raw: Engine, table: str, key: str, payload: str) -> None:
    jobs = build_schema(table).jobs
    with raw.begin() as conn:
        conn.execute(update(jobs).where(jobs.c.key == key).values(payload=payload))


DB_READING = [s for s in Stage if s.rules.writes_db]


@pytest.mark.parametrize("stage", DB_READING)
@pytest.mark.parametrize(("model", "payload"), [
    (None, "{not json"),
    (None, ""),
    (Job, '{"unexpected": 1}'),
    (Job, '{"status": "ok", "progress": "fast"}'),
    (Job, "[1, 2]"),
], ids=["broken-json", "empty", "missing-field", "wrong-type", "wrong-shape"])
def test_a_corrupt_row_raises_decode_error_naming_the_key(
    make_store: Callable[..., JobStore[Any]], raw: Engine, table_name: str, stage: Stage,
    model: Any, payload: str,
) -> None:
    """A row whose payload was damaged behind the store's back raises DecodeError (a
    ValueError too) that names the key, on reading it and on listing values; the other rows
    still read."""
    good = Job("ok") if model else {"status": "ok"}
    with make_store(stage=stage, model=model) as store:
        store["bad key"] = good
        store["good"] = good
    _corrupt(raw, table_name, "bad key", payload)
    store = make_store(stage=stage, model=model)
    with pytest.raises(DecodeError) as raised:
        store["bad key"]
    assert isinstance(raised.value, ValueError)
    assert raised.value.key == "bad key"
    assert "'bad key'" in str(raised.value)
    with pytest.raises(DecodeError, match="'bad key'"):
        list(store.values())
    assert store["good"] == good
    assert "bad key" in set(store)


SQL_LOOKING_KEYS = [
    "x'; DROP TABLE t; --", "'; DELETE FROM jobstore_control; --", "\"; DROP TABLE jobs; --",
    "`", "%s", "%(key)s", ":key", "?", "$1", "\\", "\\'", "' OR '1'='1", "a\nb", "",
    " ", "ünï ✓", "🙂",
]


@pytest.mark.parametrize("stage", [Stage.DUAL_WRITE, Stage.DB_PRIMARY, Stage.DB_ONLY])
def test_keys_that_look_like_sql_are_plain_keys(
    make_store: Callable[..., JobStore[Any]], raw: Engine, table_name: str, stage: Stage
) -> None:
    """Keys made of quotes, comments, placeholders and SQL are stored, listed, read back
    after a restart and deleted like any other key, and every table is still there."""
    store = make_store(stage=stage)
    for n, key in enumerate(SQL_LOOKING_KEYS):
        store[key] = {"n": n, "key": key}
    store.update({f"{key}-2": {"n": -1} for key in SQL_LOOKING_KEYS[:3]})
    store.close()
    assert set(_rows(raw, table_name)) == (
        set(SQL_LOOKING_KEYS) | {f"{key}-2" for key in SQL_LOOKING_KEYS[:3]})
    store = make_store(stage=stage)
    for n, key in enumerate(SQL_LOOKING_KEYS):
        assert store[key] == {"n": n, "key": key}
        assert key in store
        assert [v.version for v in store.history(key)] == [1]
    for key in SQL_LOOKING_KEYS:
        del store[key]
    assert sorted(store) == sorted(f"{key}-2" for key in SQL_LOOKING_KEYS[:3])
    names = set(inspect(raw).get_table_names())
    assert {table_name, f"{table_name}_events", "jobstore_control"} <= names


INVALID_TABLES = ["bad-name", "1abc", "a b", "t; DROP TABLE x", "t'--", "jobstore_control",
                  "JobStore_mine", "x" * 49, "tëst", 'a"b', "a.b", "jobs\n", "jobs\n\n"]


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("name", INVALID_TABLES)
def test_an_invalid_table_name_is_rejected_before_the_database_is_touched(
    tmp_path: Any, name: str, backend: str
) -> None:
    """A table name that is not a plain identifier (it cannot be a bound parameter), or that
    takes the reserved jobstore_ prefix, raises JobStoreError; no SQLite file is made."""
    path = tmp_path / "untouched.db"
    with pytest.raises(JobStoreError, match="table name"):
        JobStore(f"sqlite:///{path}", table=name)
    assert not path.exists()


def test_an_invalid_table_name_from_the_environment_is_rejected(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``$JOBSTORE_TABLE`` is checked like the argument it stands in for."""
    monkeypatch.setenv("JOBSTORE_TABLE", "jobs; DROP TABLE jobs")
    path = tmp_path / "untouched.db"
    with pytest.raises(JobStoreError, match="table name"):
        JobStore(f"sqlite:///{path}")
    assert not path.exists()
