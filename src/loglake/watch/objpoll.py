"""Object-store sources for `loglake watch`: the listing, polled, feeds the same engine.

S3 has no events, so each object-store source is listed every ``poll_interval`` (a source
setting, 30 s by default) with the listings cache off. A log whose listing changed (a new
ETag or size, a new chunk) is staged and read with ``index_file`` from its newest entry,
exactly like a local file the engine follows, and its rows and entries go to the engine's
flush buffer: one flusher, one lake writer, checkpoints that move after the commit.

Remote entries live here, not in the engine's index (the engine would look for their paths
on disk). A failed listing or read is an error in `loglake status` and is retried with
backoff (doubling up to ``poll_interval`` x 8); the entry did not move, so the retry reads
the same bytes again, and the buffer holds no row twice: nothing lost, nothing doubled.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from loglake.config import parse_duration
from loglake.errors import LoglakeError, SourceError
from loglake.index.job import index_file
from loglake.objstore import is_object_url
from loglake.objstore.chunks import Stream
from loglake.objstore.plan import RemoteLog, make_task, resolve_log, shrunk, unchanged
from loglake.objstore.sources import RemoteTarget, list_streams, remote_targets
from loglake.objstore.staging import Stager
from loglake.watch.liveness import FINAL, LIVE, adjust_status
from loglake.watch.tailer import copy_entry

if TYPE_CHECKING:
    from loglake.watch.engine import Engine

log = logging.getLogger(__name__)

BACKOFF_FACTOR_MAX = 8
# One listing retries a blip briefly; a longer outage is the poll loop's backoff.
LIST_RETRY_FOR = 5.0


class ObjectPoller:
    """Every object-store source of one daemon, polled on its own schedule."""

    def __init__(
        self,
        engine: Engine,
        *,
        clock: Callable[[], float] = time.time,
        stop: threading.Event | None = None,
    ) -> None:
        self.engine = engine
        self.config = engine.config
        self.clock = clock
        self.stop = stop
        self.targets: list[RemoteTarget] = remote_targets([], self.config)
        self.stager = Stager(self.config.state_path(), stop)
        self.stager.cleanup()
        # Newest entry per remote log (committed or still buffered): reading goes on from it.
        self.entries: dict[str, dict[str, Any]] = {}
        for key, entry in list(engine.index.entries.items()):
            if is_object_url(str(entry.get("path") or "")):
                engine.index.pop(key)
                self.entries[key] = engine.full_entry(key, entry) or entry
        self.due: dict[str, float] = {}
        self.failures: dict[str, int] = {}
        self.polls = 0
        self.shrunk: set[tuple[str, int]] = set()

    @property
    def active(self) -> bool:
        return bool(self.targets)

    def interval(self, target: RemoteTarget) -> float:
        return parse_duration(target.source.poll_interval)

    # -- polling -------------------------------------------------------------------------------

    def poll(self, force: bool = False) -> int:
        """List every source that is due (all with ``force``); read what changed."""
        n = 0
        for target in self.targets:
            now = self.clock()
            if not force and now < self.due.get(target.url, 0.0):
                continue
            if self.stop is not None and self.stop.is_set():
                break
            try:
                n += self._poll_target(target)
            except LoglakeError as e:
                self._failed(target, e.one_line())
            except Exception as e:  # one source failing must not stop the others
                log.debug("polling %s failed", target.url, exc_info=True)
                self._failed(target, f"{target.url}: {type(e).__name__}: {e}")
            else:
                self.failures.pop(target.url, None)
                self.due[target.url] = self.clock() + self.interval(target)
        self.polls += 1
        return n

    def _failed(self, target: RemoteTarget, message: str) -> None:
        count = self.failures.get(target.url, 0) + 1
        self.failures[target.url] = count
        factor = min(2 ** (count - 1), BACKOFF_FACTOR_MAX)
        self.due[target.url] = self.clock() + self.interval(target) * factor
        self.engine.stats.error(target.url, message)

    def _poll_target(self, target: RemoteTarget) -> int:
        streams = list_streams(
            target, self.config, self.stager, stop=self.stop, retry_for=LIST_RETRY_FOR
        )
        n = 0
        try:
            for stream in streams:
                if self.stop is not None and self.stop.is_set():
                    break
                n += self._read(target, stream)
        finally:
            self.stager.save()
        return n

    def _read(self, target: RemoteTarget, stream: Stream) -> int:
        options = target.options(self.config)
        try:
            ident = self.stager.identify(stream, options)
        except FileNotFoundError:
            return 0  # deleted since the listing
        if ident is None:
            return 0
        found = resolve_log(stream, target, ident)
        if isinstance(found, SourceError):
            self.engine.note(found.one_line())
            return 0
        now = self.clock()
        settings = self.engine.settings
        idle = ident.compressed or now - stream.mtime >= settings.idle_timeout
        cp = self.entries.get(ident.fp)
        if unchanged(cp, ident.size, idle):
            return 0
        why = shrunk(cp, ident, stream.path)
        if why:
            if (ident.fp, ident.size) not in self.shrunk:  # once per shrunk version
                self.shrunk.add((ident.fp, ident.size))
                self.engine.note(why)
            return 0
        return self._index(found, cp, idle)

    def _index(self, found: RemoteLog, cp: dict[str, Any] | None, idle: bool) -> int:
        settings = self.engine.settings
        key = found.ident.fp
        task = make_task(
            self.config,
            found,
            self.stager,
            copy_entry(cp),
            idle=idle,
            max_line=settings.max_line,
            flush_records=settings.flush_records,
        )
        n = 0
        try:
            for chunk in index_file(task, self.engine.registry):
                entry = dict(chunk.checkpoint)
                entry.update(fp=key, compressed=found.ident.compressed, remote=True)
                tables = adjust_status(chunk.tables, entry, FINAL if idle else LIVE)
                old = self.entries.get(key) or {}
                self.engine.stats.add(
                    lines=max(0, int(entry.get("lines") or 0) - int(old.get("lines") or 0)),
                    bytes=max(0, int(entry.get("offset") or 0) - int(old.get("offset") or 0)),
                    records=sum(t.num_rows for name, t in tables.items() if name != "runs"),
                )
                self.engine.put(tables, {key: entry})
                self.entries[key] = entry
                n += 1
        finally:
            self.stager.release(found.stream)
        return n

    # -- the loop ----------------------------------------------------------------------------

    def next_due(self) -> float:
        """Seconds until some source is due to be listed again."""
        if not self.targets:
            return float("inf")
        now = self.clock()
        return max(0.0, min(self.due.get(t.url, 0.0) for t in self.targets) - now)

    def run(self, stop: threading.Event) -> None:
        """The daemon's ``objpoll`` worker: poll, then wait for the next due source."""
        while not stop.is_set():
            self.poll()
            if stop.wait(min(max(self.next_due(), 0.05), 5.0)):
                return

    def snapshot(self) -> dict[str, Any]:
        return {
            "remote_logs": len(self.entries),
            "remote_sources": [t.url for t in self.targets],
            "remote_failing": sorted(self.failures),
        }
