"""Quick attempts (`jobstore.db.attempts`) on the drivers jobstore bounds, psycopg and PyMySQL.

Inside `quick_attempt()` a reply slower than the engine's ``quick_timeout`` ends the attempt,
and its later statements are refused before they are sent; outside it, and inside
`unhurried()`, the engine's own longer bounds apply. The slow replies are the shared servers'
own ``pg_sleep``/``SLEEP`` (harmless to them); the server that never answers a connection is a
listening socket nobody accepts from, as the kernel treats a frozen server's.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from conftest import SERVER_URLS, require_backend
from jobstore.db.attempts import quick_attempt, unhurried
from jobstore.db.drivers import NOT_SENT
from jobstore.db.engine import create_store_engine

pytestmark = pytest.mark.server

QUICK_S = 0.5
SLEEP = {"postgresql": "SELECT pg_sleep(1.5)", "mysql": "SELECT SLEEP(1.5)"}


def run(engine: Engine, sql: str) -> object:
    with engine.connect() as conn:
        return conn.exec_driver_sql(sql).scalar()


def seconds(started: float) -> float:
    return time.monotonic() - started


@pytest.fixture(params=["postgresql", "mysql"])
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    require_backend(request.param)
    engine = create_store_engine(SERVER_URLS[request.param], quick_timeout=QUICK_S)
    yield engine
    engine.dispose()


def test_a_slow_reply_ends_a_quick_attempt_and_its_next_statement_is_not_sent(
        engine: Engine) -> None:
    sleep = SLEEP[engine.dialect.name.replace("mariadb", "mysql")]
    with quick_attempt():
        started = time.monotonic()
        with pytest.raises(DBAPIError):
            run(engine, sleep)
        slow = seconds(started)
        started = time.monotonic()
        with pytest.raises(DBAPIError, match=NOT_SENT):
            run(engine, "SELECT 1")
        refused = seconds(started)
        started = time.monotonic()
        with unhurried():
            run(engine, sleep)  # long by nature: the engine's own bound lets it finish
        unhurried_s = seconds(started)
    assert QUICK_S * 0.9 < slow < QUICK_S + 0.5
    assert refused < 0.1
    assert unhurried_s > 1.4
    assert run(engine, "SELECT 1") == 1  # outside the attempt the engine works as before


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port whose TCP handshakes the kernel completes and where nothing ever answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield int(listener.getsockname()[1])


@pytest.mark.parametrize("scheme", ["postgresql+psycopg", "mysql+pymysql"])
def test_a_quick_attempt_gives_up_connecting_to_a_server_that_never_answers(
        silent_server: int, scheme: str) -> None:
    """psycopg counts its connect_timeout in whole seconds (2 at least), and PyMySQL waits for
    the server's greeting with its read timeout (20 s): inside a quick attempt both give up
    after ``quick_timeout``."""
    engine = create_store_engine(f"{scheme}://u@127.0.0.1:{silent_server}/test",
                                 quick_timeout=QUICK_S)
    try:
        with quick_attempt():
            started = time.monotonic()
            with pytest.raises(DBAPIError):
                run(engine, "SELECT 1")
            took = seconds(started)
            started = time.monotonic()
            with pytest.raises(DBAPIError, match=NOT_SENT):
                run(engine, "SELECT 1")
            again = seconds(started)
    finally:
        engine.dispose()
    print(f"\n{scheme}: gave up connecting after {took:.3f} s")
    assert QUICK_S * 0.9 < took < QUICK_S + 0.5
    assert again < 0.1


@pytest.mark.parametrize("scheme", ["postgresql+psycopg", "mysql+pymysql"])
def test_outside_a_quick_attempt_connecting_gives_up_after_connect_timeout(
        silent_server: int, scheme: str) -> None:
    """The engine's own bound for the stages where the database is the authority: PyMySQL
    would wait for the greeting with its read timeout (here 1 + 5 s), not connect_timeout."""
    engine = create_store_engine(f"{scheme}://u@127.0.0.1:{silent_server}/test",
                                 connect_timeout=2, statement_timeout=1)
    try:
        started = time.monotonic()
        with pytest.raises(DBAPIError):
            run(engine, "SELECT 1")
        took = seconds(started)
    finally:
        engine.dispose()
    print(f"\n{scheme}: gave up connecting after {took:.3f} s")
    assert 1.8 < took < 2.5
