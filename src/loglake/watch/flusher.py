"""Rows on their way to the lake: a bounded buffer, and commits on size or age.

Readers put rows with the checkpoint entries they complete; the flusher commits everything
buffered as one lake flush when enough rows wait or the oldest has waited ``flush_interval``.
The buffer is bounded in bytes: a slow or unreachable lake makes ``put`` wait, so reading
pauses and nothing is dropped (the files keep the bytes; checkpoints have not moved).

A commit that fails is retried with the same rows. If it failed after the flush was spooled,
the spool entry is replayed instead (``recover``): committing the rows again as a new flush
would land them twice.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from loglake.watch.checkpoints import pack, unpack
from loglake.watch.stats import Stats

BACKOFF_MAX = 30.0
# Every read of a file gives a few one-row tables (its run observation, a handful of metric
# rows), and a small Arrow table costs ~1 KB of C++ objects per column on top of its data:
# at 10,000 files that is most of the memory. Small tables are joined every so often, and
# counted with that overhead, so the buffer's bound is what it really holds.
COMPACT_AT = 256
TABLE_OVERHEAD = 1024
# Checkpoint entries travel packed (see ``checkpoints.pack``); a commit unpacks them all for
# the writer's spool manifest, so one flush carries at most this many.
FLUSH_ENTRIES = 1000


def table_cost(t: pa.Table) -> int:
    chunks = int(max(1, t.column(0).num_chunks)) if t.num_columns else 1
    columns, rows = int(t.num_columns), int(t.num_rows)
    # Summing buffer sizes costs more than the estimate is worth on a few-row table.
    data = rows * 64 * columns if rows <= 64 else int(t.nbytes)
    return data + TABLE_OVERHEAD * columns * chunks


class Sink(Protocol):
    """What the flusher commits to: the lake writer."""

    spool_dir: Path

    @property
    def last_seq(self) -> int: ...

    def commit(self, tables: dict[str, pa.Table], checkpoint_update: dict[str, Any]) -> int: ...

    def recover(self) -> int: ...


@dataclass
class Batch:
    tables: dict[str, list[pa.Table]] = field(default_factory=dict)
    checkpoints: dict[str, bytes | None] = field(default_factory=dict)  # packed entries
    rows: int = 0
    nbytes: int = 0
    since: float | None = None

    def add(self, name: str, table: pa.Table) -> None:
        parts = self.tables.setdefault(name, [])
        parts.append(table)
        self.rows += table.num_rows
        self.nbytes += table_cost(table)
        if len(parts) >= COMPACT_AT:
            joined = _join(name, parts)
            self.nbytes += table_cost(joined) - sum(table_cost(t) for t in parts)
            self.tables[name] = [joined]

    def merged(self) -> dict[str, pa.Table]:
        """One contiguous table per name: a flush gathers a chunk from every file that grew."""
        return {name: _join(name, parts) for name, parts in self.tables.items() if parts}


def _join(name: str, parts: list[pa.Table]) -> pa.Table:
    joined = parts[0] if len(parts) == 1 else pa.concat_tables(parts)
    joined = joined.combine_chunks()
    return latest_runs(joined) if name == "runs" else joined


def latest_runs(runs: pa.Table) -> pa.Table:
    """One observation per (run, source) and flush: each row carries the whole summary so far,
    so the newest one says everything the older ones did."""
    keys = zip(runs.column("run_id").to_pylist(), runs.column("source_fp").to_pylist(), strict=True)
    last = {k: i for i, k in enumerate(keys)}
    if len(last) == runs.num_rows:
        return runs
    return runs.take(sorted(last.values()))


class FlushBuffer:
    """Rows and checkpoints waiting for a commit; ``put`` blocks while it is full."""

    def __init__(
        self,
        *,
        max_bytes: int,
        flush_records: int,
        flush_interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_bytes = max_bytes
        self.flush_records = flush_records
        self.flush_interval = flush_interval
        self._clock = clock
        self._cond = threading.Condition()
        self._batch = Batch()
        self._inflight_bytes = 0
        self.waits = 0  # how often a reader had to wait for the lake (backpressure)

    @property
    def rows(self) -> int:
        return self._batch.rows

    @property
    def nbytes(self) -> int:
        return self._batch.nbytes + self._inflight_bytes

    @property
    def entries(self) -> int:
        return len(self._batch.checkpoints)

    def full(self) -> bool:
        return self.nbytes >= self.max_bytes or self.entries >= 4 * FLUSH_ENTRIES

    def put(
        self,
        tables: dict[str, pa.Table],
        checkpoints: Mapping[str, bytes | dict[str, Any] | None],
        stop: threading.Event | None = None,
    ) -> None:
        """Add rows and the checkpoint entries (packed) they complete; waits while full.

        Once ``stop`` is set it no longer waits: shutdown must not hang on a dead lake, and
        what is added then is at most one read's worth.
        """
        with self._cond:
            if self.full():
                self.waits += 1
            while self.full() and not (stop is not None and stop.is_set()):
                self._cond.wait(0.5)
            b = self._batch
            for name, t in tables.items():
                if t is not None and t.num_rows:
                    b.add(name, t)
            for key, entry in checkpoints.items():
                packed = pack(entry) if isinstance(entry, dict) else entry
                old = b.checkpoints.get(key)
                b.nbytes += len(packed or b"") - len(old or b"")
                b.checkpoints[key] = packed
            if b.since is None and (b.rows or b.checkpoints):
                b.since = self._clock()
            self._cond.notify_all()

    def due(self) -> bool:
        b = self._batch
        if b.since is None:
            return False
        return (
            b.rows >= self.flush_records
            or len(b.checkpoints) >= FLUSH_ENTRIES
            or b.nbytes >= self.max_bytes // 2
            or self._clock() - b.since >= self.flush_interval
        )

    def wait_due(self, stop: threading.Event, timeout: float) -> bool:
        """Wait until a flush is due (True), or ``timeout`` or ``stop`` (False)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not stop.is_set():
                if self.due():
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                since = self._batch.since
                if since is not None:
                    left = min(left, max(0.01, since + self.flush_interval - self._clock()))
                self._cond.wait(left)
        return False

    def take(self) -> Batch | None:
        with self._cond:
            b = self._batch
            if b.since is None:
                return None
            self._batch = Batch()
            self._inflight_bytes += b.nbytes
            return b

    def release(self, batch: Batch) -> None:
        with self._cond:
            self._inflight_bytes -= batch.nbytes
            self._cond.notify_all()


class Flusher:
    """Commits the buffer to the lake exactly once, retrying until the lake takes it."""

    def __init__(
        self,
        buffer: FlushBuffer,
        sink: Sink,
        stats: Stats,
        on_commit: Callable[[dict[str, bytes | None], dict[str, dict[str, Any] | None]], None]
        | None = None,
    ) -> None:
        self.buffer = buffer
        self.sink = sink
        self.stats = stats
        self.on_commit = on_commit
        self.inflight: Batch | None = None  # survives a worker restart: retried, never lost
        self._spooled = False
        self._lock = threading.Lock()

    def flush(self, stop: threading.Event | None = None, attempts: int | None = None) -> bool:
        """Commit what is buffered; False if it could not be committed (it stays pending)."""
        with self._lock:
            if self.inflight is None:
                self.inflight = self.buffer.take()
                self._spooled = False
            batch = self.inflight
            if batch is None:
                return True
            tables = batch.merged()
            entries = {k: None if v is None else unpack(v) for k, v in batch.checkpoints.items()}
            tried = 0
            while True:
                started = time.monotonic()
                try:
                    if self._spooled:
                        self.sink.recover()
                    else:
                        self.sink.commit(tables, entries)
                    break
                except Exception as e:  # noqa: BLE001 - the lake failing must not lose rows
                    self._spooled = _spooled(self.sink)
                    self.stats.error("flush", f"{type(e).__name__}: {_first_line(e)}")
                    tried += 1
                    if attempts is not None and tried >= attempts:
                        return False
                    delay = min(BACKOFF_MAX, 0.5 * 2 ** min(tried, 8))
                    if stop is not None and stop.wait(delay):
                        return False
                    if stop is None:
                        time.sleep(delay)
            self.inflight = None
            self.buffer.release(batch)
            self.stats.flushed(sum(t.num_rows for t in tables.values()), time.monotonic() - started)
            if self.on_commit is not None:
                self.on_commit(batch.checkpoints, entries)
            return True


def _spooled(sink: Sink) -> bool:
    """Whether the failed commit reached the spool (then it must be replayed, not redone)."""
    entry = Path(sink.spool_dir) / str(sink.last_seq)
    return (entry / "checkpoint.json").exists()


def _first_line(e: BaseException) -> str:
    one_line = getattr(e, "one_line", None)
    text = one_line() if callable(one_line) else str(e)
    return (text.strip().splitlines() or [repr(e)])[0]
