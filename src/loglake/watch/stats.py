"""The daemon's counters and its last errors, shared by the workers, `status` and /metrics.

Per-file problems are data, not crashes: each is counted, kept among the last errors for
`loglake status`, and logged at most once a minute per message so a broken file cannot
flood the journal.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

log = logging.getLogger("loglake.watch")

LAST_ERRORS = 20
LOG_EVERY = 60.0

COUNTERS = (
    "lines",  # lines read (complete, or partial ones emitted at finalization)
    "bytes",  # bytes read
    "records",  # rows produced for the lake (all tables)
    "flushes",  # lake commits
    "flushed_rows",
    "gaps",  # losses and repairs recorded in the gaps table
    "errors",
    "rotations",  # files followed after a rename, copy, truncation or deletion
    "checkpoint_bytes",  # written to the checkpoint file and its journal
)


class Stats:
    """Thread-safe counters; ``snapshot`` is a plain dict for status files and /metrics."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self.errors: deque[dict[str, Any]] = deque(maxlen=LAST_ERRORS)
        self.last_flush: dict[str, Any] | None = None
        self._logged: dict[str, float] = {}

    def add(self, **amounts: int) -> None:
        with self._lock:
            for name, n in amounts.items():
                self.counters[name] = self.counters.get(name, 0) + n

    def error(self, where: str, message: str) -> None:
        """Count an error, keep it for `status`, log it unless logged in the last minute."""
        now = self._clock()
        with self._lock:
            self.counters["errors"] += 1
            self.errors.append({"at": now, "where": where, "message": message})
            last = self._logged.get(message)
            quiet = last is not None and now - last < LOG_EVERY
            if not quiet:
                self._logged[message] = now
                if len(self._logged) > 1000:
                    self._logged.clear()
        if not quiet:
            log.warning("%s: %s", where, message)

    def flushed(self, rows: int, seconds: float) -> None:
        with self._lock:
            self.counters["flushes"] += 1
            self.counters["flushed_rows"] += rows
            self.last_flush = {"at": self._clock(), "rows": rows, "seconds": round(seconds, 3)}

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "counters": dict(self.counters),
                "last_errors": list(self.errors),
                "last_flush": dict(self.last_flush) if self.last_flush else None,
            }
