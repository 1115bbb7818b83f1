"""One contract: the same assertions hold for a plain ``dict`` and for `JobStore` in every stage.

Each test in `TestMutableMapping` and `TestValues` runs once against a ``dict`` and once per
stage on every backend. A `Subject` hands out the mapping under test and, for the stages that
write the database, reopens it as a fresh store on the same table, so a value read back has
really made the trip through the database. Last, `TestStatements` pins STYLE practice 6: the
mapping methods a naive ``MutableMapping`` would run as one query per key cost a bounded number
of statements, however many jobs the table holds.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import threading
import uuid
from collections.abc import Callable, Iterator, MutableMapping
from datetime import datetime, timedelta, timezone
from typing import Any

import pydantic
import pytest
from sqlalchemy import Engine, event
from typing_extensions import TypedDict

from conftest import BACKENDS, drop_table
from jobstore import EncodeError, JobStore, Stage
from jobstore.db.engine import create_store_engine

# -- the subjects ---------------------------------------------------------------------------

SUBJECTS = [pytest.param("dict", "sqlite", id="dict")] + [
    pytest.param(stage.value, backend, id=f"{stage.value}-{backend}")
    for backend in BACKENDS
    for stage in Stage
    # In memory the database only holds the control row: the servers add nothing there.
    if backend == "sqlite" or stage is not Stage.MEMORY
]
# Parametrizing ``backend`` directly overrides the conftest fixture of that name, so the dict
# runs once rather than once per backend (it never opens the database it is given).
contract = pytest.mark.parametrize(("kind", "backend"), SUBJECTS)


class Subject:
    """The mapping under test: a dict, or a JobStore in one stage on one backend."""

    def __init__(self, kind: str, open_store: Callable[..., JobStore[Any]]) -> None:
        self.kind = kind
        self._open_store = open_store
        self._model: Any = None
        self._current: MutableMapping[str, Any] | None = None
        self.opened: list[JobStore[Any]] = []

    @property
    def writes_db(self) -> bool:
        return self.kind != "dict" and Stage(self.kind).rules.writes_db

    def open(self, model: Any = None) -> MutableMapping[str, Any]:
        """A new, empty mapping for values of ``model`` (None: plain JSON)."""
        self._model = model
        self._current = {} if self.kind == "dict" else self._store()
        return self._current

    def reopen(self) -> MutableMapping[str, Any]:
        """The same jobs as a fresh process sees them.

        A dict, and a store in ``memory``, only live in this process, so they are handed back
        as they are; in the other stages the store is closed and a new one opened on its table.
        """
        assert self._current is not None, "open() first"
        if self.writes_db:
            assert isinstance(self._current, JobStore)
            self._current.close()
            self._current = self._store()
        return self._current

    def _store(self) -> JobStore[Any]:
        store = self._open_store(stage=self.kind, model=self._model, shadow_sample_rate=1.0)
        self.opened.append(store)
        return store


@pytest.fixture(scope="module")
def server_engines() -> Iterator[dict[str, Engine]]:
    """One engine per server for the whole module, handed to every store as its Engine (a
    documented way to open a JobStore), so the tests do not pay a server handshake per store."""
    engines: dict[str, Engine] = {}
    yield engines
    for engine in engines.values():
        engine.dispose()


@pytest.fixture
def store_target(backend: str, db_url: str, server_engines: dict[str, Engine]) -> str | Engine:
    """What stores open: the test's own SQLite file, or the module's engine for a server."""
    if backend == "sqlite":
        return db_url
    if backend not in server_engines:
        server_engines[backend] = create_store_engine(db_url)
    return server_engines[backend]


@pytest.fixture
def subject(
    kind: str, make_store: Callable[..., JobStore[Any]], store_target: str | Engine
) -> Iterator[Subject]:
    """The mapping under test; its stores are all closed before ``make_store`` checks the
    shared pool for connections left checked out."""
    made = Subject(kind, functools.partial(make_store, url=store_target))
    yield made
    for store in made.opened:
        store.close()


@pytest.fixture
def mapping(subject: Subject) -> MutableMapping[str, Any]:
    """An empty mapping of plain JSON values."""
    return subject.open()


def job(n: int, status: str = "queued") -> dict[str, Any]:
    return {"id": n, "status": status, "tags": ["a", "b"], "meta": {"pages": n * 2}}


# -- the MutableMapping protocol ------------------------------------------------------------


@contract
class TestMutableMapping:
    def test_an_item_set_is_got_back_equal(self, mapping: MutableMapping[str, Any]) -> None:
        mapping["a"] = job(1)
        assert mapping["a"] == job(1)

    def test_a_missing_key_raises_a_plain_key_error_naming_it(
        self, mapping: MutableMapping[str, Any]
    ) -> None:
        with pytest.raises(KeyError) as raised:
            mapping["missing"]
        assert type(raised.value) is KeyError
        assert raised.value.args == ("missing",)

    def test_get_returns_the_value_or_the_default(self, mapping: MutableMapping[str, Any]) -> None:
        mapping["a"] = job(1)
        assert mapping.get("a") == job(1)
        assert mapping.get("a", "fallback") == job(1)
        assert mapping.get("missing") is None
        assert mapping.get("missing", "fallback") == "fallback"

    def test_in_is_true_only_for_stored_keys(self, mapping: MutableMapping[str, Any]) -> None:
        mapping["a"] = job(1)
        assert "a" in mapping
        assert "b" not in mapping
        del mapping["a"]
        assert "a" not in mapping

    def test_del_removes_the_key_and_a_missing_one_raises_key_error(
        self, mapping: MutableMapping[str, Any]
    ) -> None:
        mapping["a"] = job(1)
        mapping["b"] = job(2)
        del mapping["a"]
        with pytest.raises(KeyError):
            mapping["a"]
        with pytest.raises(KeyError):
            del mapping["a"]
        assert mapping["b"] == job(2)

    def test_len_counts_the_keys(self, mapping: MutableMapping[str, Any]) -> None:
        assert len(mapping) == 0
        mapping["a"] = job(1)
        mapping["b"] = job(2)
        mapping["a"] = job(3)
        assert len(mapping) == 2
        del mapping["b"]
        assert len(mapping) == 1

    def test_iteration_yields_every_key_once(self, mapping: MutableMapping[str, Any]) -> None:
        for n in range(5):
            mapping[f"k{n}"] = job(n)
        keys = list(mapping)
        assert sorted(keys) == [f"k{n}" for n in range(5)]
        assert len(keys) == len(set(keys))

    def test_keys_items_and_values_views_agree_with_a_dict(
        self, mapping: MutableMapping[str, Any]
    ) -> None:
        expected = {"a": 1, "b": "two", "c": 3.5}
        for key, value in expected.items():
            mapping[key] = value
        assert mapping.keys() == expected.keys()
        assert mapping.items() == expected.items()
        assert sorted(mapping.items()) == sorted(expected.items())
        assert sorted(mapping.values(), key=str) == sorted(expected.values(), key=str)
        assert len(mapping.keys()) == len(mapping.items()) == len(mapping.values()) == 3
        assert "a" in mapping.keys()  # noqa: SIM118 - the view's own __contains__ is tested
        assert ("b", "two") in mapping.items()
        assert ("b", "three") not in mapping.items()
        assert 3.5 in mapping.values()
        assert "nope" not in mapping.values()

    def test_pop_returns_the_value_and_removes_it(
        self, mapping: MutableMapping[str, Any]
    ) -> None:
        mapping["a"] = job(1)
        assert mapping.pop("a") == job(1)
        assert "a" not in mapping
        assert len(mapping) == 0

    def test_pop_of_a_missing_key_returns_the_default_or_raises_key_error(
        self, mapping: MutableMapping[str, Any]
    ) -> None:
        assert mapping.pop("missing", "fallback") == "fallback"
        assert mapping.pop("missing", None) is None
        with pytest.raises(KeyError):
            mapping.pop("missing")

    def test_popitem_removes_items_until_empty_then_raises_key_error(
        self, mapping: MutableMapping[str, Any]
    ) -> None:
        mapping["a"] = job(1)
        mapping["b"] = job(2)
        popped = dict([mapping.popitem(), mapping.popitem()])
        assert popped == {"a": job(1), "b": job(2)}
        assert len(mapping) == 0
        with pytest.raises(KeyError):
            mapping.popitem()

    def test_update_takes_a_mapping_pairs_and_keywords(
        self, mapping: MutableMapping[str, Any]
    ) -> None:
        mapping["a"] = job(0)
        mapping.update({"a": job(1), "b": job(2)})
        mapping.update([("c", job(3)), ("d", job(4)), ("c", job(33))])
        mapping.update(e=job(5), b=job(22))
        mapping.update({"f": job(6)}, g=job(7))
        mapping.update()
        assert dict(mapping.items()) == {
            "a": job(1), "b": job(22), "c": job(33), "d": job(4), "e": job(5), "f": job(6),
            "g": job(7),
        }

    def test_setdefault_keeps_an_existing_value_and_stores_a_missing_one(
        self, mapping: MutableMapping[str, Any]
    ) -> None:
        mapping["a"] = job(1)
        assert mapping.setdefault("a", job(99)) == job(1)
        assert mapping["a"] == job(1)
        assert mapping.setdefault("b", job(2)) == job(2)
        assert mapping["b"] == job(2)
        assert mapping.setdefault("c") is None
        assert "c" in mapping
        assert mapping["c"] is None

    def test_clear_removes_everything(self, mapping: MutableMapping[str, Any]) -> None:
        for n in range(5):
            mapping[f"k{n}"] = job(n)
        mapping.clear()
        assert len(mapping) == 0
        assert list(mapping) == []
        assert "k0" not in mapping
        mapping["new"] = job(9)
        assert list(mapping.items()) == [("new", job(9))]

    def test_the_mapping_equals_a_dict_with_the_same_items(
        self, mapping: MutableMapping[str, Any]
    ) -> None:
        mapping.update({"a": job(1), "b": job(2)})
        assert mapping == {"a": job(1), "b": job(2)}
        assert {"a": job(1), "b": job(2)} == mapping
        assert mapping != {"a": job(1)}
        assert mapping != {"a": job(1), "b": job(3)}

    def test_overwriting_keeps_only_the_last_value(
        self, mapping: MutableMapping[str, Any]
    ) -> None:
        for n in range(4):
            mapping["a"] = job(n, status=f"s{n}")
        assert mapping["a"] == job(3, status="s3")
        assert len(mapping) == 1

    def test_many_keys_are_all_stored_and_listed(
        self, mapping: MutableMapping[str, Any]
    ) -> None:
        expected = {f"job-{n:04d}": job(n) for n in range(300)}
        mapping.update(expected)
        for n in range(0, 300, 7):
            mapping[f"job-{n:04d}"] = job(n, "running")
            expected[f"job-{n:04d}"] = job(n, "running")
        for n in range(0, 300, 11):
            del mapping[f"job-{n:04d}"]
            del expected[f"job-{n:04d}"]
        assert len(mapping) == len(expected)
        assert sorted(mapping) == sorted(expected)
        assert dict(mapping.items()) == expected
        assert mapping["job-0007"] == job(7, "running")

    def test_every_item_survives_a_reopen(self, subject: Subject) -> None:
        mapping = subject.open()
        mapping.update({"a": job(1), "b": job(2)})
        mapping["c"] = job(3)
        del mapping["b"]
        again = subject.reopen()
        assert sorted(again) == ["a", "c"]
        assert again["a"] == job(1)
        assert again == {"a": job(1), "c": job(3)}


# -- values of every kind -------------------------------------------------------------------


class Status(enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"


@dataclasses.dataclass
class Slide:
    title: str
    bullets: list[str]


@dataclasses.dataclass
class DataclassJob:
    job_id: uuid.UUID
    status: Status
    created_at: datetime
    slides: list[Slide]
    settings: dict[str, Any]
    result_url: str | None = None
    progress: float = 0.0


class PydanticJob(pydantic.BaseModel):
    job_id: uuid.UUID
    status: Status
    created_at: datetime
    slides: list[dict[str, list[str]]]
    retries: dict[str, int] = {}
    finished_at: datetime | None = None


class TypedJob(TypedDict):
    job_id: str
    status: str
    created_at: datetime
    pages: list[int]


CREATED = datetime(2024, 5, 17, 9, 30, 12, 345678, tzinfo=timezone.utc)
NAIVE = datetime(2024, 5, 17, 11, 0, 0, 1)
JOB_UUID = uuid.UUID("12345678-1234-5678-1234-567812345678")


def _dataclass_value() -> DataclassJob:
    return DataclassJob(
        job_id=JOB_UUID, status=Status.RUNNING, created_at=CREATED,
        slides=[Slide("Intro", ["why", "how"]), Slide("Ünïcode ✓", [])],
        settings={"theme": "dark", "nested": {"depth": [1, 2, {"x": None}]}},
        progress=0.5,
    )


def _pydantic_value() -> PydanticJob:
    return PydanticJob(
        job_id=JOB_UUID, status=Status.COMPLETED,
        created_at=datetime(2024, 1, 1, 12, tzinfo=timezone(timedelta(hours=-5))),
        slides=[{"intro": ["a", "b"]}, {}], retries={"render": 2}, finished_at=NAIVE,
    )


def _typed_value() -> TypedJob:
    return TypedJob(job_id="t-1", status="queued", created_at=CREATED, pages=[1, 2, 3])


def _plain_value() -> Any:
    return {
        "status": "queued", "count": 2**53 + 1, "ratio": 0.1, "ok": True, "none": None,
        "text": "quote ' and \" and \\ and ✓", "list": [1, [2, [3, {"deep": []}]]],
        "empty": {}, "float_int": 1.0,
    }


VALUE_KINDS: dict[str, tuple[Any, Callable[[], Any]]] = {
    "dataclass": (DataclassJob, _dataclass_value),
    "pydantic": (PydanticJob, _pydantic_value),
    "typeddict": (TypedJob, _typed_value),
    "plain-json": (None, _plain_value),
    "typed-datetimes": (dict[str, datetime], lambda: {"a": CREATED, "b": NAIVE}),
    "typed-uuids": (list[uuid.UUID], lambda: [JOB_UUID, uuid.UUID(int=0)]),
    "typed-enums": (dict[str, Status], lambda: {"first": Status.QUEUED}),
}


@contract
class TestValues:
    @pytest.mark.parametrize("value_kind", list(VALUE_KINDS))
    def test_a_value_reads_back_equal_and_of_its_own_type_after_a_reopen(
        self, subject: Subject, value_kind: str
    ) -> None:
        model, make = VALUE_KINDS[value_kind]
        mapping = subject.open(model)
        mapping["job"] = make()
        mapping.update({"other": make()})
        again = subject.reopen()
        for key in ("job", "other"):
            value = again[key]
            assert value == make()
            assert type(value) is type(make())
        assert dict(again.items()) == {"job": make(), "other": make()}

    def test_nested_values_inside_a_model_keep_their_types(self, subject: Subject) -> None:
        subject.open(DataclassJob)["job"] = _dataclass_value()
        value = subject.reopen()["job"]
        assert type(value.slides[0]) is Slide
        assert type(value.status) is Status
        assert type(value.job_id) is uuid.UUID
        assert value.created_at == CREATED
        assert value.created_at.utcoffset() == timedelta(0)

    def test_an_aware_and_a_naive_datetime_keep_their_offsets(self, subject: Subject) -> None:
        subject.open(PydanticJob)["job"] = _pydantic_value()
        value = subject.reopen()["job"]
        assert value.created_at.utcoffset() == timedelta(hours=-5)
        assert value.finished_at == NAIVE
        assert value.finished_at.tzinfo is None


NOT_PLAIN_JSON = {
    "datetime": CREATED, "uuid": JOB_UUID, "nested-datetime": {"when": CREATED},
    "enum": {"status": Status.QUEUED}, "int-key": {1: "int key"}, "object": object(),
    "set": {"s": {1, 2}}, "tuple": (1, 2), "bytes": b"raw", "nan": float("nan"),
    "infinity": [float("inf")],
}


@pytest.mark.parametrize("backend", ["sqlite"])  # the codec does not depend on the backend
@pytest.mark.parametrize("stage", list(Stage))
def test_a_plain_json_store_refuses_values_that_would_not_read_back_equal(
    make_store: Callable[..., JobStore[Any]], stage: Stage
) -> None:
    """With ``model=None`` a datetime, UUID, enum, tuple or NaN would come back as something
    else, so it is refused with EncodeError (also a TypeError) rather than silently changed."""
    store = make_store(stage=stage)
    for name, value in NOT_PLAIN_JSON.items():
        with pytest.raises(EncodeError):
            store[name] = value
        with pytest.raises(TypeError):
            store.update({name: value})
        assert name not in store
    assert len(store) == 0


# -- a bounded number of statements per mapping method --------------------------------------


class StatementCounter:
    """Counts the SQL statements this thread sends through one engine (the background loop's
    own statements, on its thread, are left out)."""

    def __init__(self, store: JobStore[Any]) -> None:
        # internal: the statements go through the engine the store made for itself from a URL
        self._engine = store._engine
        self._thread = threading.get_ident()
        self.statements: list[str] = []

    def _on_execute(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if threading.get_ident() == self._thread:
            self.statements.append(statement)

    def __enter__(self) -> StatementCounter:
        event.listen(self._engine, "before_cursor_execute", self._on_execute)
        return self

    def __exit__(self, *exc_info: object) -> None:
        event.remove(self._engine, "before_cursor_execute", self._on_execute)


STATEMENT_BOUND = 8
"""The most statements any one measured call may send, whatever the table holds (setdefault
of a new key on MariaDB: a read, then BEGIN, read, insert, version, event, COMMIT)."""

MEASURED: dict[str, Callable[[JobStore[Any]], Any]] = {
    "contains": lambda s: "absent" in s,
    "get": lambda s: s.get("absent"),
    "len": len,
    "keys": lambda s: list(s.keys()),
    "items": lambda s: list(s.items()),
    "values": lambda s: list(s.values()),
    "pop": lambda s: s.pop("k0001", None),
    "setdefault": lambda s: s.setdefault("new", {"status": "queued"}),
    "update": lambda s: s.update({f"u{n}": {"n": n} for n in range(100)}),
    "clear": lambda s: s.clear(),
}
"""Each measured call, in the order they run (the ones that change the table last)."""
WRITES = {"pop", "setdefault", "update", "clear"}


def _transactions(statements: list[str]) -> int:
    return sum(1 for s in statements if s.strip().upper().startswith("BEGIN"))


@pytest.fixture
def extra_table(db_url: str, backend: str) -> Iterator[str]:
    """One more job table on the test's database, dropped afterwards on servers."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    if backend != "sqlite":
        drop_table(db_url, name)


@pytest.mark.parametrize("stage", list(Stage))
def test_mapping_methods_send_as_many_statements_for_300_jobs_as_for_10(
    extra_table: str, table_name: str, make_store: Callable[..., JobStore[Any]], stage: Stage,
    store_target: str | Engine,
) -> None:
    """``in``, get, len, keys, items, values, pop, setdefault, update and clear each send at
    most a handful of statements, and the same number for 300 jobs as for 10, from a fresh
    store whose dict holds none of them (in ``memory``: none at all)."""
    tables = {10: table_name, 300: extra_table}
    for size, table in tables.items():
        with make_store(url=store_target, table=table, stage=stage) as filler:
            filler.update({f"k{i:04d}": {"status": "done", "i": i} for i in range(size)})
    sent: dict[str, dict[int, list[str]]] = {}
    for size, table in tables.items():
        # The reads leave the dict as they found it, so they share one fresh store; each
        # write gets a fresh store of its own.
        store = make_store(url=store_target, table=table, stage=stage, sync_interval=3600)
        for method, call in MEASURED.items():
            if method in WRITES:
                store.close()
                store = make_store(url=store_target, table=table, stage=stage, sync_interval=3600)
            with StatementCounter(store) as counter:
                call(store)
            sent.setdefault(method, {})[size] = counter.statements
        store.close()
    for method, by_size in sent.items():
        small, large = by_size[10], by_size[300]
        if not stage.rules.writes_db:
            assert large == [], (method, large)
        assert len(large) <= STATEMENT_BOUND, (method, large)
        assert len(large) == len(small), (method, small, large)
        assert _transactions(large) <= 1, (method, large)


def test_update_of_a_hundred_jobs_is_one_transaction(
    make_store: Callable[..., JobStore[Any]]
) -> None:
    """``update`` with 100 jobs writes them in one transaction, not one per job."""
    store = make_store(stage=Stage.DB_ONLY, sync_interval=3600)
    store["warm"] = {"n": 0}
    with StatementCounter(store) as counter:
        store.update({f"u{n}": {"n": n} for n in range(100)})
    assert _transactions(counter.statements) == 1
    assert len(store) == 101
