"""The background loop: one light thread per store that runs its sync rounds.

It holds the store weakly, so a store the program forgot can still be collected; it is started
lazily, restarted in a forked child (threads do not survive ``fork``) and stopped by ``close``.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any

JOIN_TIMEOUT_S = 30.0


class BackgroundLoop:
    def __init__(self, owner: Any, round_fn: Callable[[Any], None], interval: float) -> None:
        self._owner = weakref.ref(owner)
        self._round = round_fn
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def ensure_started(self) -> None:
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is not None or self._stop.is_set():
                return
            thread = threading.Thread(target=self._run, name="jobstore-sync", daemon=True)
            self._thread = thread
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(JOIN_TIMEOUT_S)

    def reset_after_fork(self) -> None:
        """In a forked child: the parent's thread is gone; a new one starts on next use."""
        self._stop = threading.Event()
        self._thread = None
        self._start_lock = threading.Lock()

    def _run(self) -> None:
        while True:
            owner = self._owner()
            if owner is None:
                return
            self._round(owner)
            del owner
            if self._stop.wait(self.interval):
                return
