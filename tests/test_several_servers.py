"""Several servers, one job: every change a dict would keep is kept (issue 10, points 1-5).

Each server is a real process (``tests/workers/server.py``) with its own store on one
database, holding the objects the store handed out as a render worker or an API handler does;
the module's processes serve test after test, each test opening its own stores in them.
The row is checked through a fresh store; each held object through the server holding it.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from _workers import Agent, worker
from conftest import BACKENDS
from jobstore import JobStore, Stage

DB_STAGES = [Stage.DUAL_WRITE, Stage.SHADOW, Stage.DB_PRIMARY, Stage.DB_ONLY]
CASES = [(backend, stage) for backend in BACKENDS for stage in DB_STAGES
         if backend == "sqlite" or stage in (Stage.DUAL_WRITE, Stage.DB_ONLY)]
"""Every stage that writes the database on SQLite; one of each authority on the servers."""
INTERVAL = 0.2
"""Short enough that a dict entry is revalidated soon; the tests also sync explicitly."""



class Server(Agent):
    """A ``workers/server.py`` process that serves test after test, each on a store of its own
    (its process start and imports are paid once per module, not once per server per test)."""

    def __init__(self) -> None:
        self.process = worker("server", stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.instance_id = self._read()["instance_id"]

    def open(self, url: str, table: str, stage: Stage) -> Server:
        self.instance_id = ok(self("open", url=url, table=table, stage=stage.value,
                                   interval=INTERVAL))["instance_id"]
        return self


Servers = Callable[[Stage], Server]


@pytest.fixture(scope="module")
def pool() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        server.close()


@pytest.fixture
def servers(db_url: str, table_name: str, pool: list[Server]) -> Iterator[Servers]:
    """Servers on the test's table, from the module's processes; their stores are closed
    when the test ends."""
    taken: list[Server] = []

    def start(stage: Stage) -> Server:
        index = len(taken)
        if index == len(pool):
            pool.append(Server())
        elif pool[index].process.poll() is not None:
            pool[index] = Server()
        taken.append(pool[index].open(db_url, table_name, stage))
        return taken[-1]

    yield start
    for server in taken:
        if server.process.poll() is None:
            ok(server("shut"))


def ok(reply: dict[str, Any]) -> dict[str, Any]:
    assert "error" not in reply, reply["error"]
    return reply


def row(make_store: Callable[..., JobStore[Any]], key: str) -> Any:
    """The job as the database holds it, read by a store of its own in db_only."""
    store = make_store(stage=Stage.DB_ONLY)
    try:
        return store.get(key)
    finally:
        store.close()


def seed_stage(make_store: Callable[..., JobStore[Any]], stage: Stage) -> None:
    make_store(stage=stage).close()


@pytest.mark.parametrize(("backend", "stage"), CASES)
def test_the_api_server_cancels_while_the_render_worker_reports_progress_and_both_are_kept(
        stage: Stage, servers: Servers, make_store: Callable[..., JobStore[Any]]) -> None:
    seed_stage(make_store, stage)
    worker, api = servers(stage), servers(stage)
    ok(worker("set", key="J", value={"status": "queued", "render": {"progress": 0.0}}))
    ok(worker("hold", key="J", name="job"))
    ok(api("hold", key="J", name="job"))
    ok(api("change", name="job", path=["status"], value="cancelled"))
    ok(api("assign", name="job", key="J"))
    ok(worker("change", name="job", path=["render", "progress"], value=0.5))
    ok(worker("sync"))
    assert row(make_store, "J") == {"status": "cancelled", "render": {"progress": 0.5}}
    assert ok(worker("held", name="job"))["value"] == {
        "status": "cancelled", "render": {"progress": 0.5}}, "the held job is brought up to date"
    assert ok(worker("stats"))["value"]["conflicts"] == 0


@pytest.mark.parametrize(("backend", "stage"), CASES)
def test_a_held_job_stays_live_after_another_server_updates_it_and_this_one_reads_it(
        stage: Stage, servers: Servers, make_store: Callable[..., JobStore[Any]]) -> None:
    seed_stage(make_store, stage)
    worker, api = servers(stage), servers(stage)
    ok(worker("set", key="J", value={"status": "processing", "progress": 0.0}))
    ok(worker("hold", key="J", name="job"))
    ok(api("hold", key="J", name="job"))
    ok(api("change", name="job", path=["progress"], value=0.3))
    ok(api("assign", name="job", key="J"))
    time.sleep(INTERVAL * 2)  # the worker's dict entry is older than one interval: revalidated
    poll = ok(worker("read", key="J", name="job"))
    assert poll["value"]["progress"] == 0.3
    assert poll["same"], "the status poll handed out a new object: the worker's went dead"
    ok(worker("change", name="job", path=["status"], value="completed"))
    ok(worker("change", name="job", path=["video_url"], value="https://cdn/j.mp4"))
    ok(worker("sync"))
    assert row(make_store, "J") == {"status": "completed", "progress": 0.3,
                                    "video_url": "https://cdn/j.mp4"}


@pytest.mark.parametrize(("backend", "stage"), CASES)
def test_a_job_another_server_deleted_does_not_come_back_from_a_held_copy(
        stage: Stage, servers: Servers, make_store: Callable[..., JobStore[Any]]) -> None:
    seed_stage(make_store, stage)
    worker, api = servers(stage), servers(stage)
    ok(worker("set", key="J", value={"status": "processing"}))
    ok(worker("hold", key="J", name="job"))
    ok(api("hold", key="J", name="job"))
    ok(api("delete", key="J"))
    ok(worker("change", name="job", path=["status"], value="completed"))
    ok(worker("sync"))
    assert row(make_store, "J") is None
    assert ok(worker("stats"))["value"]["dropped_writes"] == 1
    assert ok(worker("contains", key="J"))["value"] is False
    ok(worker("set", key="J", value={"status": "queued"}))
    assert row(make_store, "J") == {"status": "queued"}, "an assignment creates the job again"


@pytest.mark.parametrize(("backend", "stage"), CASES)
def test_two_servers_changing_one_field_the_later_wins_and_the_conflict_is_counted(
        stage: Stage, servers: Servers, make_store: Callable[..., JobStore[Any]]) -> None:
    seed_stage(make_store, stage)
    a, b, c = servers(stage), servers(stage), servers(stage)
    ok(a("set", key="J", value={"status": "queued", "owner": "a", "notes": []}))
    for server in (a, b, c):
        ok(server("hold", key="J", name="job"))
    ok(b("change", name="job", path=["status"], value="running"))
    ok(b("sync"))
    ok(c("change", name="job", path=["notes"], value=["from c"]))
    ok(c("sync"))
    ok(a("change", name="job", path=["status"], value="cancelled"))
    ok(a("sync"))
    assert row(make_store, "J") == {"status": "cancelled", "owner": "a", "notes": ["from c"]}
    assert ok(a("stats"))["value"]["conflicts"] == 1
    assert [ok(s("stats"))["value"]["conflicts"] for s in (b, c)] == [0, 0]
    store = make_store(stage=Stage.DB_ONLY)
    statuses = [v.value["status"] for v in store.history("J") if v.value is not None]
    assert "running" in statuses, "the earlier value stays in the history"


@pytest.mark.parametrize(("backend", "stage"), CASES)
def test_versions_keep_rising_across_delete_and_re_create(
        stage: Stage, make_store: Callable[..., JobStore[Any]]) -> None:
    jobs = make_store(stage=stage)
    jobs["a"] = {"n": 1}
    jobs["a"] = {"n": 2}
    del jobs["a"]
    jobs["a"] = {"n": 3}
    jobs.update({"a": {"n": 4}})
    jobs.clear()
    jobs.update({"a": {"n": 5}, "b": {"n": 1}})
    assert [(v.version, v.op) for v in jobs.history("a")] == [
        (1, "set"), (2, "set"), (3, "delete"), (4, "set"), (5, "set"), (6, "delete"),
        (7, "set")]


@pytest.mark.parametrize(("backend", "stage"), CASES)
def test_an_object_let_go_by_a_replacement_writes_nothing(
        stage: Stage, make_store: Callable[..., JobStore[Any]]) -> None:
    jobs = make_store(stage=stage, sync_interval=3600)
    jobs["a"] = {"status": "queued", "n": 0}
    held = jobs["a"]
    jobs["a"] = "plain text"
    held["n"] = 10
    jobs.sync()
    assert jobs["a"] == "plain text"
    assert row(make_store, "a") == "plain text"
    jobs["b"] = {"status": "queued", "n": 0}
    held = jobs["b"]
    jobs["b"] = {"other": 1}
    held["n"] = 10
    jobs.sync()
    assert row(make_store, "b") == {"other": 1}


@pytest.mark.parametrize(("backend", "stage"), CASES)
@pytest.mark.parametrize("view", ["values", "items"])
def test_an_object_from_a_scan_is_tracked_after_the_loop_let_it_go(
        stage: Stage, view: str, make_store: Callable[..., JobStore[Any]]) -> None:
    jobs = make_store(stage=stage, sync_interval=0.05)
    jobs["a"] = {"status": "queued"}
    time.sleep(0.5)  # rounds of the loop let go of the object nobody else refers to
    found = ([v for v in jobs.values() if v["status"] == "queued"] if view == "values"
             else [v for _k, v in jobs.items() if v["status"] == "queued"])
    found[0]["status"] = "running"
    jobs.close()
    assert row(make_store, "a") == {"status": "running"}


@pytest.mark.parametrize(("backend", "stage"), CASES)
def test_an_assignment_of_a_stale_copy_keeps_what_another_server_wrote_since(
        stage: Stage, servers: Servers, make_store: Callable[..., JobStore[Any]]) -> None:
    seed_stage(make_store, stage)
    worker, api = servers(stage), servers(stage)
    ok(worker("set", key="J", value={"status": "queued", "render": {"progress": 0.0}}))
    ok(api("hold", key="J", name="job"))
    ok(worker("hold", key="J", name="job"))
    ok(worker("change", name="job", path=["render", "progress"], value=0.5))
    ok(worker("sync"))
    ok(api("change", name="job", path=["status"], value="cancelled"))
    ok(api("assign", name="job", key="J"))
    assert row(make_store, "J") == {"status": "cancelled", "render": {"progress": 0.5}}
    assert ok(api("held", name="job"))["value"] == {
        "status": "cancelled", "render": {"progress": 0.5}}, "the assigned object is merged too"
    assert ok(api("stats"))["value"]["conflicts"] == 0
