"""The daemon's core: list the sources, follow every file, read what is new into the buffer.

One synchronous object; the daemon's threads drive it (``scan`` on a timer and on events,
``read`` whenever something changed) and tests call it step by step with an injected clock.
It never sleeps and never commits by itself; rows go to the flush buffer with the checkpoint
entries they complete, and the flusher commits both.

Reading a file is the batch indexer's ``index_file``: the daemon only decides *when* to read
(the file changed), *from where* (its newest checkpoint, through its open descriptor) and
*whether it is over* (``idle``: no growth for the idle timeout, or a rotated file that has
stopped growing). What follows a file when it is renamed, copied, truncated or deleted is in
``follow.py``.
"""

from __future__ import annotations

import heapq
import logging
import os
import stat
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import pyarrow as pa

from loglake.config import Config
from loglake.errors import LoglakeError, SourceError
from loglake.index.discover import Found, discover
from loglake.index.job import FileTask, index_file
from loglake.parse.registry import Registry, route_file
from loglake.watch.adopt import Adopter
from loglake.watch.checkpoints import PackedCheckpoints, pack, slim, unpack
from loglake.watch.flusher import FlushBuffer, Flusher
from loglake.watch.follow import Follower
from loglake.watch.identity import (
    EntryIndex,
)
from loglake.watch.liveness import FINAL, LIVE, ROTATED, adjust_status
from loglake.watch.roots import SourceRoots
from loglake.watch.settings import WatchSettings
from loglake.watch.states import StateShrinker
from loglake.watch.stats import Stats
from loglake.watch.tailer import COPY, Shared, Tailer, copy_entry
from loglake.watch.tailer import ROTATED as ROTATED_FILE

log = logging.getLogger(__name__)


class Engine(Adopter, Follower):
    """Every followed file, and the checkpoint entries no file has claimed (yet)."""

    def __init__(
        self,
        config: Config,
        settings: WatchSettings,
        *,
        entries: dict[str, dict[str, Any]],
        buffer: FlushBuffer,
        flusher: Flusher,
        registry: Registry,
        checkpoints: PackedCheckpoints | None = None,
        stats: Stats | None = None,
        clock: Callable[[], float] = time.time,
        stop: threading.Event | None = None,
        inline_flush: bool = False,
    ) -> None:
        self.config = config
        self.settings = settings
        self.buffer = buffer
        self.flusher = flusher
        self.registry = registry
        self.shrinker = StateShrinker(registry)
        self.checkpoints = checkpoints
        # The newest entry (packed) handed to the buffer per file, until the lake has it:
        # with the committed ones in ``checkpoints``, what a slim entry is unpacked from.
        self.pending: dict[str, bytes] = {}
        self._pending_lock = threading.Lock()
        self.stats = stats or Stats(clock)
        self.clock = clock
        self.stop = stop
        self.inline_flush = inline_flush
        self.roots = SourceRoots(config)
        self.index = EntryIndex(entries)
        self.tailers: dict[str, Tailer] = {}
        self.at_path: dict[str, Tailer] = {}
        self.by_ino: dict[tuple[int, int], Tailer] = {}
        self.by_dir: dict[str, set[Tailer]] = defaultdict(set)
        self.committed: dict[str, int] = {k: int(e.get("offset") or 0) for k, e in entries.items()}
        self.gone_since: dict[str, float] = {}
        self.shared = Shared(settings.max_open_files)
        self._due_at = 0.0  # no file is due to be finalized before this (wall clock)
        self.changes = 0  # bumped by anything a status snapshot shows
        self._snapshot: tuple[int, float, dict[str, Any]] | None = None
        self.first_scan = True
        self.scans = 0
        self._noted: set[str] = set()
        self.unregistered: list[Tailer] = []  # new files with no entry saved yet
        flusher.on_commit = self.on_commit

    # -- listing ---------------------------------------------------------------------------

    def scan(self) -> None:
        """List every source (the authority: events are only hints) and reconcile."""
        now = self.clock()
        found, missing = discover([], self.config)
        for m in missing:
            self.note(m.message)
        listed: dict[str, tuple[Found, os.stat_result]] = {}
        for f in found:
            try:
                st = os.stat(f.path)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                listed[f.path] = (f, st)
        for t in list(self.at_path.values()):
            item = listed.get(t.where or "")
            if item is not None and (item[1].st_dev, item[1].st_ino) == (t.dev, t.ino):
                # A truncation is handled before new files are adopted: the copy it left
                # next to the file is its continuation, not a new file.
                if self._shrunk(t, item[1]):
                    self.truncated(t, now)
                else:
                    self._observe(t, item[1])
            elif item is None and t.still_at_path():
                t.dirty = True  # a rotation copy outside the include patterns
            else:
                self.detach(t, now)
        fresh = [
            (f, st)
            for p, (f, st) in listed.items()
            if p not in self.at_path and (st.st_dev, st.st_ino) not in self.by_ino
        ]
        # Files at a checkpointed path first, so a look-alike elsewhere cannot claim its entry.
        fresh.sort(key=lambda item: not self.index.has_path(item[0].path))
        for f, st in fresh:
            self.adopt(f, st, now)
        self.register()
        self.sweep(now)
        self.first_scan = False
        self.scans += 1

    def register(self) -> None:
        """Save an entry for every file adopted as new, before any of it is read.

        Until its first commit nothing else names the file: were it copied away outside the
        include patterns and truncated, and the daemon killed, a restart could not know where
        its lines went. With the entry (offset 0) the restart looks for the copy, as it does
        for any checkpointed file that is gone.
        """
        if not self.unregistered:
            return
        todo, self.unregistered = self.unregistered, []
        entries = {
            t.key: {**self.entry_of(t), "seen_size": t.size}
            for t in todo
            if self.tailers.get(t.key) is t and t.cp is None and not t.compressed
        }
        if entries and self.checkpoints is not None:
            try:
                self.checkpoints.register(entries)
            except LoglakeError as e:
                self.stats.error("checkpoints", e.one_line())

    def hint(self, paths: Iterable[str]) -> bool:
        """Mark followed files as changed; True when an unknown path calls for a rescan."""
        rescan = False
        for p in paths:
            t = self.at_path.get(p)
            if t is not None:
                t.dirty = True
            elif not rescan and self.roots.wanted(p):
                rescan = True
        return rescan

    def _observe(self, t: Tailer, st: os.stat_result) -> None:
        if st.st_size != t.size or st.st_mtime != t.mtime:
            t.dirty = True
            if t.retry_at == float("inf"):
                t.retry_at = 0.0  # it changed: worth another try

    def _shrunk(self, t: Tailer, st: os.stat_result) -> bool:
        if st.st_size == t.size and st.st_mtime == t.mtime:
            return False
        return not t.offset_valid(st.st_size)

    # -- tracking ------------------------------------------------------------------------------

    def track(self, t: Tailer) -> None:
        self.changes += 1
        self.tailers[t.key] = t
        self.by_ino[(t.dev, t.ino)] = t
        self.by_dir[os.path.dirname(t.path)].add(t)  # by the path rows name: copies sit there
        if t.where is not None:
            self.at_path[t.where] = t

    def untrack_path(self, t: Tailer) -> None:
        """``t`` is no longer at ``where`` (it may still be read through its descriptor)."""
        self.changes += 1
        if t.where is not None:
            if self.at_path.get(t.where) is t:
                del self.at_path[t.where]
            t.where = None

    def forget(self, t: Tailer) -> None:
        """Stop following ``t`` at all."""
        self.untrack_path(t)
        t.close()
        t.dirty = False
        if self.tailers.get(t.key) is t:
            del self.tailers[t.key]
        if self.by_ino.get((t.dev, t.ino)) is t:
            del self.by_ino[(t.dev, t.ino)]
        folder = os.path.dirname(t.path)
        peers = self.by_dir.get(folder)
        if peers is not None:
            peers.discard(t)
            if not peers:
                del self.by_dir[folder]

    def drop(self, t: Tailer) -> None:
        """Stop following ``t``; its newest entry goes back to the index."""
        self.forget(t)
        if t.cp is not None:
            self.index.add(t.key, slim(t.cp))

    def open_fds(self) -> int:
        return self.shared.open

    # -- reading -------------------------------------------------------------------------------

    def wait_for(self, t: Tailer) -> float:
        return self.settings.rotate_wait if t.moved else self.settings.idle_timeout

    def idle(self, t: Tailer, now: float) -> bool:
        return t.compressed or now - t.grew_at >= self.wait_for(t)

    def read(self, stop: threading.Event | None = None) -> int:
        """Read every file that changed or is due to be finalized; returns chunks produced."""
        now = self.clock()
        self.register()
        todo = set(self.shared.dirty)
        if now >= self._due_at:
            todo.update(self._due(now))
        n = 0
        for t in todo:
            if stop is not None and stop.is_set():
                break
            if self.tailers.get(t.key) is not t:
                t.dirty = False  # dropped meanwhile
                continue
            if now < t.retry_at:
                if t.retry_at != float("inf"):
                    self._due_at = min(self._due_at, t.retry_at)
                continue
            n += self.step(t, now, stop)
            if self.tailers.get(t.key) is t and not t.final:
                if t.moved:
                    t.dirty = True  # no events, no listing: looked at on every pass
                self._due_at = min(self._due_at, t.grew_at + self.wait_for(t))
        self.register()  # files a truncation made new, before anything else happens to them
        return n

    def _due(self, now: float) -> list[Tailer]:
        """Files idle long enough to be finalized; sets when the next one will be."""
        due: list[Tailer] = []
        self._due_at = float("inf")
        for t in list(self.tailers.values()):
            if t.final:
                continue
            at = max(t.grew_at + self.wait_for(t), t.retry_at)
            if at <= now:
                due.append(t)
            else:
                self._due_at = min(self._due_at, at)
        return due

    def next_due(self, now: float) -> float | None:
        """Seconds until some file may be due to be finalized (None: none is waiting)."""
        if self.shared.dirty:
            return 0.0
        return None if self._due_at == float("inf") else max(0.0, self._due_at - now)

    def step(self, t: Tailer, now: float, stop: threading.Event | None = None) -> int:
        """Bring one file up to date: notice a move or truncation, then read what is new."""
        self.changes += 1
        if t.moved is None and t.fd is not None and not t.still_at_path():
            self.detach(t, now)
            if self.tailers.get(t.key) is not t:
                return 0
        st = t.stat()
        if st is None:
            self.detach(t, now)
            return 0
        changed = st.st_size != t.size or st.st_mtime != t.mtime
        if st.st_size > t.size:
            t.grew_at = now
        if changed and not t.offset_valid(st.st_size):
            self.truncated(t, now)
            return 0
        t.size, t.mtime = st.st_size, st.st_mtime
        idle = self.idle(t, now)
        cp = t.cp
        if cp is not None and cp.get("size") == t.size and (cp.get("idle_final") or not idle):
            t.dirty = False
            return 0
        if not idle and t.fd is None:
            t.open()
        mode = ROTATED if t.moved in (ROTATED_FILE, COPY) else (FINAL if idle else LIVE)
        return self._read(t, st, idle, mode, now, stop)

    def _read(
        self,
        t: Tailer,
        st: os.stat_result,
        idle: bool,
        mode: str,
        now: float,
        stop: threading.Event | None,
    ) -> int:
        if t.route is None:
            t.route = route_file(self.config, t.source, t.path, t.root, t.identity.namespace)
        task = FileTask(
            path=t.path,
            fp=t.key,
            fp_len=t.fp_len,
            size=st.st_size,
            mtime=st.st_mtime,
            identity=t.identity,
            routed=t.route[0],
            auto_detect=t.route[1],
            checkpoint=self.fresh_entry(t),
            idle=idle,
            max_line=self.settings.max_line,
            flush_records=self.settings.flush_records,
            compressed=t.compressed,
            source=t.read_path,
        )
        n = 0
        try:
            for chunk in index_file(task, self.registry):
                cp = dict(chunk.checkpoint)  # packed at once below: a snapshot
                cp.update(t.extras())
                tables = adjust_status(chunk.tables, cp, mode)
                self._count(t.cp, cp, tables)
                self.put(tables, {t.key: cp})
                # Only what finds and checks the file stays as objects; the rest is packed
                # (pending, then in the store) until the file grows again.
                t.cp = slim(cp)
                n += 1
                if stop is not None and stop.is_set() and not chunk.final:
                    return n  # the entry matches the rows handed over; the rest is read later
        except SourceError as e:
            # Not a log (binary data): no use trying again until the file changes.
            return self._failed(t, float("inf"), n, e.one_line())
        except LoglakeError as e:
            return self._failed(t, now + self.settings.rescan_interval, n, e.one_line())
        except Exception as e:  # one file failing must not stop the others
            log.debug("reading %s failed", t.path, exc_info=True)
            return self._failed(
                t, now + self.settings.rescan_interval, n, f"{type(e).__name__}: {e}"
            )
        t.dirty = False
        if not idle:
            t.seen_live = True
        else:
            t.close()
            if t.moved:
                self.drop(t)
        return n

    def _failed(self, t: Tailer, retry_at: float, n: int, message: str) -> int:
        self.stats.error(t.path, message)
        t.retry_at = retry_at
        return n

    def _count(
        self, old: dict[str, Any] | None, new: dict[str, Any], tables: dict[str, pa.Table]
    ) -> None:
        old = old or {}
        lines = int(new.get("lines") or 0) - int(old.get("lines") or 0)
        nbytes = int(new.get("offset") or 0) - int(old.get("offset") or 0)
        gaps = tables.get("gaps")
        self.stats.add(
            lines=max(lines, 0),
            bytes=max(nbytes, 0),
            records=sum(tb.num_rows for name, tb in tables.items() if name != "runs"),
            gaps=gaps.num_rows if gaps is not None else 0,
        )

    # -- handing rows over -----------------------------------------------------------------------

    def put(
        self, tables: dict[str, pa.Table], checkpoints: dict[str, dict[str, Any] | None]
    ) -> None:
        if self.inline_flush and self.buffer.full():
            self.flusher.flush()
        shrink = self.shrinker.shrink
        packed = {k: None if cp is None else pack(shrink(cp)) for k, cp in checkpoints.items()}
        with self._pending_lock:
            for key, entry in packed.items():
                if entry is None:
                    self.pending.pop(key, None)
                else:
                    self.pending[key] = entry
        self.buffer.put(tables, packed, self.stop)

    def fresh_entry(self, t: Tailer) -> dict[str, Any] | None:
        """``t``'s full entry as a fresh copy reading may change (parsers update their
        states in place)."""
        return self.full_entry(t.key, t.cp)

    def full_entry(self, key: str, cp: dict[str, Any] | None) -> dict[str, Any] | None:
        """The full entry behind ``cp`` (a slim one), unpacked: a fresh copy."""
        if cp is None or not cp.get("slim"):
            full = copy_entry(cp)
            return None if full is None else self.shrinker.expand(full)
        with self._pending_lock:
            packed = self.pending.get(key)
        full = unpack(packed) if packed is not None else None
        if full is None and self.checkpoints is not None:
            full = self.checkpoints.get(key)
        mine = {k: v for k, v in cp.items() if k != "slim"}
        if full is None or full.get("offset") != cp.get("offset"):
            # Offsets are what matter; without the states parsers start afresh from there.
            return mine
        full.update(mine)
        return self.shrinker.expand(full)

    def flush(self) -> bool:
        """Commit what is buffered now (tests, shutdown)."""
        return self.flusher.flush()

    def on_commit(
        self, packed: dict[str, bytes | None], entries: dict[str, dict[str, Any] | None]
    ) -> None:
        """The lake has these entries (called from the flusher's thread)."""
        with self._pending_lock:
            for key, entry in packed.items():
                if entry is not None and self.pending.get(key) is entry:
                    del self.pending[key]
        for key, cp in entries.items():
            if cp is None:
                self.committed.pop(key, None)
            else:
                self.committed[key] = int(cp.get("offset") or 0)
        self.changes += 1

    def note(self, message: str) -> None:
        """A problem with a path, reported once per daemon life (listings repeat it)."""
        if message not in self._noted:
            self._noted.add(message)
            self.stats.error("scan", message)

    def close(self) -> None:
        for t in list(self.tailers.values()):
            t.close()

    # -- status ------------------------------------------------------------------------------------

    def snapshot(self, max_age: float = 30.0) -> dict[str, Any]:
        """Files, lag and the worst lagging files, for `loglake status` and /metrics.

        Going over every file costs milliseconds at 10,000 files: an unchanged daemon
        reuses the last snapshot for up to ``max_age`` seconds.
        """
        cached, now = self._snapshot, time.monotonic()
        if cached is not None and cached[0] == self.changes and now - cached[1] < max_age:
            return {
                **cached[2],
                "buffered_rows": self.buffer.rows,
                "buffered_bytes": self.buffer.nbytes,
            }
        snap = self._take_snapshot()
        self._snapshot = (self.changes, now, snap)
        return snap

    def _take_snapshot(self) -> dict[str, Any]:
        tailers = list(self.tailers.values())  # one C-level copy: safe against the reader
        committed = self.committed
        lags = [(max(0, t.size - committed.get(t.key, 0)), t.path) for t in tailers]
        by_source: dict[str, int] = defaultdict(int)
        for t in tailers:
            by_source[t.source.name] += 1
        return {
            "files": {
                "tracked": len(tailers),
                "live": sum(1 for t in tailers if not t.final and not t.moved),
                "finished": sum(1 for t in tailers if t.final),
                "rotated": sum(1 for t in tailers if t.moved and not t.final),
                "open": sum(1 for t in tailers if t.fd is not None),
                "checkpoints": len(tailers) + len(self.index),
            },
            "by_source": dict(by_source),
            "lag_bytes": sum(lag for lag, _ in lags),
            "lagging": [
                {"path": p, "lag_bytes": lag} for lag, p in heapq.nlargest(10, lags) if lag > 0
            ],
            "buffered_rows": self.buffer.rows,
            "buffered_bytes": self.buffer.nbytes,
            "backpressure_waits": self.buffer.waits,
            "scans": self.scans,
        }
