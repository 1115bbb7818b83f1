"""How a demo run stops early: a step that did not turn out as narrated, or a signal.

Ctrl-C, SIGTERM and SIGHUP unwind the run like an exception, so that its ``finally`` blocks stop
the servers; a second signal during that cleanup is ignored.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

_HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class DemoFailure(Exception):
    """A step did not turn out as the demo narrates it."""


class Interrupted(BaseException):
    """SIGTERM or SIGHUP: stop like Ctrl-C, cleaning up first."""


_signalled = threading.Event()
"""Set by Ctrl-C, SIGTERM or SIGHUP. The exception the signal raises can be swallowed when it
lands in a finaliser (``Exception ignored in ...``); every step checks this flag too."""


def checkpoint() -> None:
    """Raise `KeyboardInterrupt` if a signal arrived, even one whose exception was swallowed."""
    if _signalled.is_set():
        raise KeyboardInterrupt


@contextlib.contextmanager
def signals_interrupt() -> Iterator[None]:
    """Ctrl-C, SIGTERM and SIGHUP unwind the demo, so the ``finally`` blocks stop the servers."""
    def handler(signum: int, _frame: FrameType | None) -> None:
        _signalled.set()
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Interrupted(signum)

    _signalled.clear()
    previous = {s: signal.signal(s, handler) for s in _HANDLED}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


@contextlib.contextmanager
def signals_ignored() -> Iterator[None]:
    """A second Ctrl-C must not cut the cleanup short (it takes about a second)."""
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in _HANDLED}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
