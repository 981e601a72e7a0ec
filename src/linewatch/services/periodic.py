"""A service part that works on its own every few seconds (maintenance predictions, the drift watch): a daemon
thread that calls ``run_once`` until the service stops."""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod

log = logging.getLogger("linewatch.periodic")


class Periodic(ABC):
    """Subclasses set ``name`` (the thread's), ``every_s`` and ``what`` (said when a round fails) and define
    ``run_once``. A failed round is logged and the next one runs: the database may be back by then."""

    name = "linewatch-periodic"
    every_s = 60.0
    what = "periodic work"

    def __init__(self):
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.run_once()
            except Exception as e:
                log.warning("%s not updated: %s", self.what, e)

    @abstractmethod
    def run_once(self) -> int:
        """One round of the work; what it did (a count)."""
