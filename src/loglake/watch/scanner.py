"""Filesystem events as hints: watchdog observers that mark paths as worth a look.

Each source gets watchdog's native observer (inotify) or, with ``observer = "polling"``, its
polling observer (NFS: inotify never sees other clients' writes). Events only name paths;
the reader decides what changed by looking, and the periodic full rescan is the authority,
so a dropped event (an inotify queue overflow, a watch limit reached) costs latency, never
data (Fluent Bit's rescan, watchdog's polling snapshots).
"""

from __future__ import annotations

import os
import threading

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from loglake.config import Config
from loglake.watch.roots import SourceRoots
from loglake.watch.stats import Stats

# Opens and reads (ours included) are not changes: subscribing to them would make every
# read trigger another.
EVENTS = [
    FileModifiedEvent,
    FileCreatedEvent,
    FileMovedEvent,
    FileDeletedEvent,
    DirCreatedEvent,
    DirMovedEvent,
    DirDeletedEvent,
]


class Hints:
    """Paths named by events since the reader last looked; shared by observer threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._paths: set[str] = set()
        self._rescan = False
        self.event = threading.Event()

    def add(self, path: str) -> None:
        with self._lock:
            self._paths.add(path)
        self.event.set()

    def request_rescan(self) -> None:
        with self._lock:
            self._rescan = True
        self.event.set()

    def take(self) -> tuple[set[str], bool]:
        """The paths and whether a rescan was asked for, clearing both."""
        with self._lock:
            paths, rescan = self._paths, self._rescan
            self._paths, self._rescan = set(), False
            self.event.clear()
        return paths, rescan

    def wait(self, timeout: float) -> bool:
        return self.event.wait(timeout)


class _Handler(FileSystemEventHandler):
    def __init__(self, hints: Hints, roots: SourceRoots) -> None:
        self.hints = hints
        self.roots = roots

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            # A glob source watches its static root, where other daemons' folders come and
            # go too: only a folder on the way to (or inside) a match is worth a rescan.
            if event.event_type in ("created", "moved", "deleted") and any(
                self.roots.wanted(os.fsdecode(p), is_dir=True)
                for p in (event.src_path, getattr(event, "dest_path", ""))
                if p
            ):
                self.hints.request_rescan()
            return
        self.hints.add(os.fsdecode(event.src_path))
        dest = getattr(event, "dest_path", "")
        if dest:
            self.hints.add(os.fsdecode(dest))


class Observers:
    """One native and one polling observer, watching every local source folder."""

    def __init__(self, config: Config, hints: Hints, stats: Stats, poll_interval: float) -> None:
        self.config = config
        self.stats = stats
        self.roots = SourceRoots(config)
        self.handler = _Handler(hints, self.roots)
        self.native: BaseObserver | None = None
        self.polling: BaseObserver | None = None
        self.poll_interval = poll_interval
        self.watched: set[str] = set()
        self._failed: set[str] = set()

    def start(self) -> None:
        self.ensure()

    def ensure(self) -> None:
        """Watch source folders that exist now (a folder may appear after the start).

        A glob source is watched at its static root (``/pods`` for ``/pods/team-a_*``):
        folders matching the glob may be created there at any time.
        """
        for sp, src in self.roots.paths:
            if sp.root in self.watched or not os.path.isdir(sp.root):
                continue
            self._watch(sp.root, polling=src.observer == "polling")

    def _watch(self, path: str, polling: bool) -> None:
        observer = self._observer(polling)
        try:
            observer.schedule(self.handler, path, recursive=True, event_filter=EVENTS)
        except OSError as e:
            if path not in self._failed:
                self._failed.add(path)
                self.stats.error(
                    "observer",
                    f"cannot watch {path} for events ({e.strerror or e}); it is rescanned "
                    "every rescan_interval instead — raise fs.inotify.max_user_watches or "
                    'set observer = "polling" for this source',
                )
            return
        self.watched.add(path)

    def _observer(self, polling: bool) -> BaseObserver:
        if polling:
            if self.polling is None:
                self.polling = PollingObserver(timeout=self.poll_interval)
                self.polling.name = "loglake-polling-observer"
                self.polling.daemon = True
                self.polling.start()
            return self.polling
        if self.native is None:
            self.native = Observer()
            self.native.name = "loglake-observer"
            self.native.daemon = True
            self.native.start()
        return self.native

    def alive(self) -> bool:
        return all(o.is_alive() for o in (self.native, self.polling) if o is not None)

    def restart(self) -> None:
        """After an observer thread died: start over (the rescan covered the gap)."""
        self.stop()
        self.native = self.polling = None
        self.watched.clear()
        self.ensure()

    def stop(self) -> None:
        for o in (self.native, self.polling):
            if o is not None:
                o.stop()
        for o in (self.native, self.polling):
            if o is not None and o.is_alive():
                o.join(timeout=5)
