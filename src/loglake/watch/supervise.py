"""Supervised worker loops, as Dagster runs its daemons (``run_daemon_loop``).

A worker runs one loop function that returns when the shared stop event is set. If the loop
raises, the error is kept for `loglake status` and the loop starts again after a backoff; its
state lives in the objects it drives (the engine, the flusher's in-flight batch), so nothing is
lost by a restart. A worker that keeps crashing gives up and its thread ends: the supervisor
sees a dead thread and stops the whole process with a non-zero exit, so systemd or
Kubernetes restarts it from the last commit.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from loglake.watch.stats import Stats

log = logging.getLogger(__name__)

# Tests make a named worker crash on every start, to see the process give up.
TEST_FAIL_ENV = "LOGLAKE_TEST_FAIL_WORKER"


class Worker:
    """One supervised thread running ``loop(stop)``."""

    def __init__(
        self,
        name: str,
        loop: Callable[[threading.Event], None],
        stop: threading.Event,
        stats: Stats,
        *,
        max_restarts: int = 3,
        window: float = 60.0,
        backoff: float = 0.5,
    ) -> None:
        self.name = name
        self.loop = loop
        self.stop = stop
        self.stats = stats
        self.max_restarts = max_restarts
        self.window = window
        self.backoff = backoff
        self.restarts = 0
        self.failure: str | None = None
        self.thread = threading.Thread(target=self._run, name=f"loglake-{name}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    def join(self, timeout: float | None = None) -> bool:
        self.thread.join(timeout)
        return not self.thread.is_alive()

    def describe(self) -> dict[str, Any]:
        return {"alive": self.alive, "restarts": self.restarts, "failure": self.failure}

    def _run(self) -> None:
        crashes: deque[float] = deque()
        while not self.stop.is_set():
            try:
                if os.environ.get(TEST_FAIL_ENV) == self.name:
                    raise RuntimeError(f"{TEST_FAIL_ENV}={self.name}: simulated crash")
                self.loop(self.stop)
                return
            except Exception as e:  # a supervisor's job is to catch everything
                message = f"{type(e).__name__}: {e}"
                log.exception("worker %s crashed: %s", self.name, message)
                self.stats.error(f"worker {self.name}", f"crashed: {message}")
                now = time.monotonic()
                crashes.append(now)
                while crashes and now - crashes[0] > self.window:
                    crashes.popleft()
                if len(crashes) > self.max_restarts:
                    self.failure = (
                        f"crashed {len(crashes)} times in {self.window:.0f}s, last: {message}"
                    )
                    return  # the supervisor sees this thread dead and stops the process
                self.restarts += 1
                if self.stop.wait(min(30.0, self.backoff * 2 ** (len(crashes) - 1))):
                    return
