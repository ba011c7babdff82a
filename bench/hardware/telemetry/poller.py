"""A daemon thread that calls one function every ``interval_s`` until stopped.

The meters poll counters, power and RSS in the background so that wraps,
throttles and peaks inside a window are seen; this is the one copy of that
thread.  The first call comes one interval after ``start()``: the owners take
their own edge readings, and the thread only fills in between.
"""

from __future__ import annotations

import threading
from typing import Callable


class Poller:
    """Calls ``fn()`` every ``interval_s`` seconds on a daemon thread.

    Restartable: ``start()`` after ``stop()`` runs a new thread.  An exception
    in ``fn`` ends the thread (reported by ``threading.excepthook``), as a
    hand-written loop would.
    """

    def __init__(self, fn: Callable[[], object], interval_s: float, name: str) -> None:
        self.fn = fn
        self.interval_s = interval_s
        self.name = name
        self._thread: threading.Thread | None = None
        self._stop: threading.Event | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError(f"Poller {self.name!r} started twice without stop()")
        # A fresh event per thread: a straggler that outlived its join timeout
        # keeps seeing its own set event and cannot be revived by a restart.
        stop = threading.Event()
        self._stop = stop
        self._thread = threading.Thread(target=self._loop, args=(stop,), name=self.name, daemon=True)
        self._thread.start()

    def stop(self, join_timeout: float = 2.0) -> None:
        """Stop and wait up to ``join_timeout`` s for the thread; a no-op when not started."""
        if self._thread is None:
            return
        assert self._stop is not None
        self._stop.set()
        self._thread.join(timeout=join_timeout)
        self._thread = None
        self._stop = None

    def _loop(self, stop: threading.Event) -> None:
        while not stop.wait(self.interval_s):
            self.fn()
