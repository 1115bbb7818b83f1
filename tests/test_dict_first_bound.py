"""How long a dict-first call can wait on a dead or frozen server: about a second at most.

In ``dual_write`` a write the database does not take is queued, so a call there tries the
database as a quick attempt (each connection and each reply bounded by 1 s), and after one
failure it does not try it at all until a probe, run outside the store's lock, sees it back.
The server is a private PostgreSQL (tests/test_outage.py's fixture), frozen with SIGSTOP (alive
to TCP, answering nothing) or stopped (connections refused).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import pytest

from jobstore import JobStore, Stage, StoreUnavailableError
from jobstore.db.engine import QUICK_TIMEOUT_S
from test_outage import RECOVERY_S, rows_of, table
from workers.pg_cluster import PgCluster, wait_until

pytestmark = [pytest.mark.server, pytest.mark.slow]

BOUND_S = 2.0
"""docs/databases.md: the longest a dict-first call waits on a dead or frozen server. A call that
waited out the connect timeout (5 s) or the reply bound (20 s) is well over it."""


@pytest.fixture
def dual_write(running_pg: PgCluster) -> Iterator[Callable[..., JobStore[Any]]]:
    """Open ``dual_write`` stores on the private server; each is closed afterwards."""
    opened: list[JobStore[Any]] = []

    def make(**kwargs: Any) -> JobStore[Any]:
        kwargs.setdefault("table", table())
        store: JobStore[Any] = JobStore(running_pg.url, stage=Stage.DUAL_WRITE, **kwargs)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


def timed(call: Callable[[], object], raises: type[Exception] | None = None) -> float:
    """Seconds ``call()`` took (raising ``raises``, if given)."""
    started = time.monotonic()
    if raises is None:
        call()
    else:
        with pytest.raises(raises):
            call()
    return time.monotonic() - started


def read_or_none(jobs: JobStore[Any], key: str) -> Any:
    try:
        return jobs.get(key)
    except StoreUnavailableError:
        return None


def drained(jobs: JobStore[Any]) -> bool:
    jobs.sync()
    return jobs.queued_writes == 0


@pytest.mark.parametrize("outage", ["frozen", "stopped"])
def test_every_dual_write_call_returns_within_the_bound_and_its_writes_land_afterwards(
        running_pg: PgCluster, dual_write: Callable[..., JobStore[Any]], outage: str) -> None:
    """Sets, reads of entries due for revalidation, deletions, misses and ``sync()``, from the
    first call after the server failed on, while the background loop keeps trying it."""
    jobs = dual_write(sync_interval=0.5)
    jobs.update({f"old{i}": {"n": i} for i in range(6)})
    time.sleep(0.6)  # every entry is now due for revalidation: a read would ask the server
    frozen = running_pg.freeze() if outage == "frozen" else []
    if outage == "stopped":
        running_pg.stop("immediate")
    waits: list[tuple[float, str]] = []
    try:
        for i in range(6):
            waits.append((timed(partial(jobs.__setitem__, f"k{i}", {"n": i})), f"set k{i}"))
            waits.append((timed(partial(jobs.get, f"old{i}")), f"get old{i}"))
            if i % 2:
                waits.append((timed(partial(jobs.__delitem__, f"old{i}")), f"del old{i}"))
            # A job only the database could know:
            waits.append((timed(partial(jobs.get, "elsewhere"), StoreUnavailableError), "miss"))
            time.sleep(0.3)  # let the loop's rounds try the server in between
        waits.append((timed(jobs.sync), "sync"))
        longest, which = max(waits)
        print(f"\n{outage}: first call {waits[0][0]:.3f} s, longest {longest:.3f} s ({which}) "
              f"of {len(waits)} calls")
        assert jobs.stats()["write_errors"] > 0, "the server was never tried: proves nothing"
        assert longest < BOUND_S, f"{which} waited {longest:.1f} s on the {outage} server"
        assert jobs.stats()["queued_writes"] == 6 + 3
    finally:
        running_pg.thaw(frozen)
        if outage == "stopped":
            running_pg.start()

    back_at = time.monotonic()
    assert wait_until(lambda: drained(jobs), RECOVERY_S, 0.1)
    print(f"{outage}: queue drained {time.monotonic() - back_at:.2f} s after the server was back")
    assert rows_of(running_pg.url, jobs.table) == {
        **{f"k{i}": {"n": i} for i in range(6)}, **{f"old{i}": {"n": i} for i in (0, 2, 4)}}


def test_the_first_call_after_a_freeze_that_must_connect_gives_up_within_the_bound(
        running_pg: PgCluster, dual_write: Callable[..., JobStore[Any]]) -> None:
    """After a restart every connection the store held is dead, so its first call connects
    anew, and connecting is what hangs on a frozen server (the TCP handshake succeeds, the
    server never answers): it gives up after the quick timeout, not the connect timeout."""
    jobs = dual_write(sync_interval=60)
    jobs["a"] = {"n": 0}
    time.sleep(0.5)  # the loop's first round is over and its next a minute away: the first
    running_pg.stop("immediate")  # call to find the server gone is the caller's
    running_pg.start()
    frozen = running_pg.freeze()
    try:
        first = timed(partial(jobs.__setitem__, "b", {"n": 1}))
        then = max(timed(partial(jobs.__setitem__, f"c{i}", {"n": i})) for i in range(20))
    finally:
        running_pg.thaw(frozen)
    print(f"\nfirst call {first:.3f} s (connecting), the next 20 at most {then * 1000:.1f} ms")
    assert QUICK_TIMEOUT_S * 0.9 < first < BOUND_S
    assert then < 0.1
    other = dual_write(sync_interval=60, table=jobs.table)
    other["elsewhere"] = {"n": 2}
    # A read only the database can answer finds it back within a second, although the loop's
    # next round is a minute away.
    assert wait_until(lambda: read_or_none(jobs, "elsewhere") == {"n": 2}, 2.5, 0.1)
    assert wait_until(lambda: drained(jobs), RECOVERY_S, 0.1)
    assert set(rows_of(running_pg.url, jobs.table)) == {
        "a", "b", "elsewhere", *(f"c{i}" for i in range(20))}


def test_a_dict_first_set_is_not_held_behind_a_drain_trying_a_frozen_server(
        running_pg: PgCluster, dual_write: Callable[..., JobStore[Any]]) -> None:
    """Another thread's ``sync()`` (the drain of the retry queue) keeps trying the frozen server
    while this thread writes: the writes do not wait for it."""
    jobs = dual_write(sync_interval=60)
    jobs["a"] = {"n": 0}
    frozen = running_pg.freeze()
    stop = threading.Event()
    drains: list[float] = []

    def drain() -> None:
        while not stop.is_set():
            drains.append(timed(jobs.sync))

    drainer = threading.Thread(target=drain)
    writes: list[float] = []
    try:
        first = timed(partial(jobs.__setitem__, "queued", {"n": 1}))  # the drain has work now
        drainer.start()
        assert wait_until(lambda: drains, 5), "the drain never finished an attempt"
        for i in range(40):
            writes.append(timed(partial(jobs.__setitem__, f"w{i}", {"n": i})))
            time.sleep(0.05)
    finally:
        stop.set()
        drainer.join(30)
        running_pg.thaw(frozen)
    print(f"\nfirst set {first:.3f} s; while {len(drains)} drains tried the frozen server "
          f"({max(drains):.2f} s each at most) the longest of {len(writes)} sets took "
          f"{max(writes) * 1000:.1f} ms")
    assert first < BOUND_S
    assert min(drains) > 0.5 * QUICK_TIMEOUT_S, "the drain did not try the server"
    assert max(drains) < BOUND_S
    # A set held behind the drain would wait out its attempt (one quick timeout); half of one
    # leaves room for a loaded machine without hiding that wait.
    assert max(writes) < 0.5 * QUICK_TIMEOUT_S, "a set waited for the drain's attempt"
    assert wait_until(lambda: drained(jobs), RECOVERY_S, 0.1)
    assert set(rows_of(running_pg.url, jobs.table)) == {
        "a", "queued", *(f"w{i}" for i in range(40))}
