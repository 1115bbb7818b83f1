"""A value reads back equal or is not written (issue 10, item 9): lossy values raise
`EncodeError` before anything is written, by a direct set and by the write-back of an in-place
change, and what does read back equal (private attributes, sets) is never refused.

Each "nothing was written" is read from the database directly, with an engine of the test's own.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pydantic import BaseModel, Field, PrivateAttr, field_validator
from sqlalchemy import Engine, create_engine, func, select, update

from jobstore import EncodeError, JobStore, Stage, StoreUnavailableError
from jobstore.db.schema import build_schema
from jobstore.verify import DriftKind

DB_STAGES = [s for s in Stage if s.rules.writes_db]
DICT_FIRST = [Stage.DUAL_WRITE, Stage.SHADOW]


class Key(BaseModel, frozen=True):
    a: int


@dataclasses.dataclass
class Catalog:
    status: str
    prices: dict[Key, int]


class Progress(BaseModel):
    status: str = "queued"
    percent: int = Field(default=0, ge=0, le=100)


class Secret(BaseModel):
    status: str
    _token: str = PrivateAttr(default="")


class Envelope(BaseModel):
    status: str
    secret: Secret


class Tagged(BaseModel):
    status: str
    tags: set[str] = Field(default_factory=set)


class Flat(BaseModel):
    status: str
    n: int = 0


class Loose(BaseModel):
    status: str
    extra: Any = None


class Typed(BaseModel):
    status: str
    pair: tuple[int, int] = (0, 0)
    by_id: dict[int, str] = Field(default_factory=dict)


class Aliased(BaseModel):
    status: str = Field(alias="state")


class Validated(BaseModel):
    status: str

    @field_validator("status")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()


@pytest.fixture
def raw(db_url: str) -> Iterator[Engine]:
    engine = create_engine(db_url)
    yield engine
    engine.dispose()


def _row(raw: Engine, table: str, key: str) -> tuple[str | None, int]:
    """The key's payload (None if no row) and how many history events it has."""
    schema = build_schema(table)
    jobs, events = schema.jobs, schema.events
    with raw.connect() as conn:
        payload = conn.execute(select(jobs.c.payload).where(jobs.c.key == key)).scalar()
        count = conn.execute(select(func.count()).select_from(events)
                             .where(events.c.key == key)).scalar_one()
    return payload, int(count)


def _codec_check(store: JobStore[Any]) -> str:
    # internal: which read-back path the store's codec chose for its model
    return str(store._parts.codec.round_trip_check)


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("stage", list(Stage))
def test_a_dict_keyed_by_models_is_refused_and_nothing_is_written(
    make_store: Callable[..., JobStore[Any]], raw: Engine, table_name: str, stage: Stage
) -> None:
    """The keys would be written as "a=1" and never decode: EncodeError (a TypeError) naming
    the failure, and neither the dict nor the database holds the key."""
    store = make_store(stage=stage, model=Catalog)
    store["ok"] = Catalog("queued", {})
    with pytest.raises(EncodeError, match="does not decode") as raised:
        store["bad"] = Catalog("queued", {Key(a=1): 2})
    assert isinstance(raised.value, TypeError)
    with pytest.raises(EncodeError):
        store.update({"bad": Catalog("queued", {Key(a=2): 3})})
    with pytest.raises(EncodeError):
        store.setdefault("bad", Catalog("queued", {Key(a=3): 4}))
    assert "bad" not in store
    assert list(store) == ["ok"]
    if stage.rules.writes_db:
        assert _row(raw, table_name, "bad") == (None, 0)


@pytest.mark.parametrize("stage", DB_STAGES)
def test_a_value_outside_its_constraints_is_refused_and_the_row_and_dict_stay(
    make_store: Callable[..., JobStore[Any]], raw: Engine, table_name: str, stage: Stage
) -> None:
    """``model_construct`` skips validation: ``percent=150`` would be written and fail to
    decode everywhere. The set raises, the row and its history are as before, and the dict
    still answers the old value."""
    store = make_store(stage=stage, model=Progress)
    store["k"] = Progress(status="running", percent=5)
    before = _row(raw, table_name, "k")
    with pytest.raises(EncodeError, match="less than or equal to 100"):
        store["k"] = Progress.model_construct(status="done", percent=150)
    assert _row(raw, table_name, "k") == before
    assert store["k"] == Progress(status="running", percent=5)
    assert _codec_check(store) == "full"


@pytest.mark.parametrize("stage", DB_STAGES)
def test_an_in_place_change_outside_the_constraints_is_not_written_back(
    make_store: Callable[..., JobStore[Any]], raw: Engine, table_name: str, db_url: str,
    stage: Stage,
) -> None:
    """Set in place, then ``sync()``: the write-back does not write it, ``failed_writes`` and
    ``verify`` show it, another process still reads the last good value, and the next valid
    change is written."""
    store = make_store(stage=stage, model=Progress, sync_interval=3600)
    store["k"] = Progress(status="running", percent=5)
    before = _row(raw, table_name, "k")
    job = store["k"]
    job.percent = 150
    if stage.rules.db_authoritative:
        with pytest.raises(StoreUnavailableError):
            store.sync()
    else:
        store.sync()
    assert _row(raw, table_name, "k") == before
    assert store.failed_writes == 1
    if stage in DICT_FIRST:
        report = store.verify()
        assert [(d.key, d.kind) for d in report.drifts] == [("k", DriftKind.UNENCODABLE)]
        assert report.failed_writes == 1
    assert _read_in_subprocess(db_url, table_name, "k") == {"status": "running", "percent": 5}
    job.percent = 50
    store.sync()
    assert store.failed_writes == 0
    payload, _ = _row(raw, table_name, "k")
    assert payload is not None
    assert json.loads(payload)["percent"] == 50


_READER = """
import json, sys
from pydantic import BaseModel, Field
from jobstore import JobStore
class Progress(BaseModel):
    status: str = "queued"
    percent: int = Field(default=0, ge=0, le=100)
with JobStore(sys.argv[1], table=sys.argv[2], model=Progress, stage="db_only") as s:
    print(s[sys.argv[3]].model_dump_json())
"""


def _read_in_subprocess(url: str, table: str, key: str) -> Any:
    done = subprocess.run([sys.executable, "-c", _READER, url, table, key], check=True,
                          capture_output=True, text=True, timeout=60)
    return json.loads(done.stdout)


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("stage", DB_STAGES)
def test_a_set_private_attribute_and_a_set_field_are_not_refused(
    make_store: Callable[..., JobStore[Any]], stage: Stage
) -> None:
    """Both read back equal though ``==`` (private attributes) or the JSON (a set rebuilt in
    another order) would say otherwise; in place and by a set, nothing is refused."""
    secrets = make_store(stage=stage, model=Secret, table="secrets", sync_interval=3600)
    value = Secret(status="queued")
    value._token = "abc"
    secrets["k"] = value
    secrets["k"]._token = "changed"
    secrets["k"].status = "running"
    secrets.sync()
    assert secrets.failed_writes == 0
    nested = make_store(stage=stage, model=Envelope, table="nested")
    inner = Secret(status="queued")
    inner._token = "abc"
    nested["k"] = Envelope(status="queued", secret=inner)
    assert make_store(stage=stage, model=Envelope, table="nested")["k"].secret.status == "queued"
    tags = make_store(stage=stage, model=Tagged, table="tags", sync_interval=3600)
    tagged = Tagged(status="queued")
    for i in range(200):
        tagged.tags.add(f"tag{i}")
    for i in range(0, 200, 3):
        tagged.tags.discard(f"tag{i}")
    tags["k"] = tagged
    tags["k"].tags.discard("tag1")
    tags.sync()
    assert tags.failed_writes == 0
    assert make_store(stage=stage, model=Tagged, table="tags")["k"].tags == tagged.tags - {"tag1"}


@pytest.mark.parametrize("backend", ["sqlite"])
def test_what_reads_back_as_another_value_is_refused(
    make_store: Callable[..., JobStore[Any]]
) -> None:
    """The rule is "reads back equal": a tuple becomes a list and an int key a str in an
    untyped place, so they are refused there; a field typed for them reads them back."""
    plain = make_store(stage=Stage.DUAL_WRITE)
    for value in ((1, 2), {1: "a"}, {"status": "q", "pair": (1, 2)}):
        with pytest.raises(EncodeError):
            plain["k"] = value
    loose = make_store(stage=Stage.DUAL_WRITE, model=Loose, table="loose")
    for extra in ((1, 2), {1: "a"}, {"inner": (1,)}):
        with pytest.raises(EncodeError, match="reads back different in extra"):
            loose["k"] = Loose(status="q", extra=extra)
    loose["k"] = Loose(status="q", extra={"inner": [1]})
    typed = make_store(stage=Stage.DUAL_WRITE, model=Typed, table="typed")
    typed["k"] = Typed(status="q", pair=(1, 2), by_id={7: "seven"})
    assert make_store(model=Typed, table="typed")["k"].by_id == {7: "seven"}
    assert "k" not in plain


@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_check_is_skipped_only_for_values_that_provably_round_trip(
    make_store: Callable[..., JobStore[Any]], raw: Engine, table_name: str
) -> None:
    """Plain JSON and a flat unconstrained model skip the decode; constraints, validators,
    aliases and private attributes take the full check. A flat model missing a field (built
    by ``model_construct``) is checked in full all the same, and refused."""
    checks = {model: _codec_check(make_store(model=model, table=f"t{i}"))
              for i, model in enumerate([None, Flat, Progress, Validated, Aliased, Secret])}
    assert checks == {None: "skipped", Flat: "skipped", Progress: "full", Validated: "full",
                      Aliased: "full", Secret: "full"}
    flat = make_store(stage=Stage.DUAL_WRITE, model=Flat)
    flat["ok"] = Flat(status="queued")
    with pytest.raises(EncodeError, match="does not decode"):
        flat["bad"] = Flat.model_construct(n=1)
    assert _row(raw, table_name, "bad") == (None, 0)


@pytest.mark.parametrize("stage", DICT_FIRST)
def test_verify_reports_a_row_that_does_not_decode(
    make_store: Callable[..., JobStore[Any]], raw: Engine, table_name: str, stage: Stage
) -> None:
    """A row damaged behind the store's back (out of range for the model) is reported by
    ``verify`` as undecodable, not as consistent."""
    store = make_store(stage=stage, model=Progress, sync_interval=3600)
    store["k"] = Progress(status="running", percent=5)
    jobs = build_schema(table_name).jobs
    with raw.begin() as conn:
        conn.execute(update(jobs).where(jobs.c.key == "k")
                     .values(payload='{"status": "running", "percent": 500}'))
    report = store.verify()
    assert [(d.key, d.kind) for d in report.drifts] == [("k", DriftKind.UNDECODABLE)]
