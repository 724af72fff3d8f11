"""`loglake watch`: the batch pipeline kept running, fed by events, polling and rescans.

Threads, each a supervised loop waiting on one stop event:

- **tail**: rescans the sources (every ``rescan_interval``, sooner when an event names an
  unknown path), reads files that events or the rescan marked as changed, finalizes files
  that went quiet;
- **flush**: commits the buffer to the lake on size or age (``flush_interval``);
- **metrics** (optional): the Prometheus endpoint;
- watchdog's observer threads, which only add hints.

The main thread supervises: a dead worker stops the process with exit code 70; SIGTERM or
SIGINT stops reading, flushes what is buffered and exits 0. One daemon per state dir
(``StateLock``); its checkpoints move only after the lake commit, so a kill at any moment
loses nothing and duplicates nothing.
"""

from __future__ import annotations

import logging
import os
import resource
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from loglake.config import Config
from loglake.errors import ExitCode, LoglakeError
from loglake.index.collector import fewer_collections
from loglake.index.runner import state_tag
from loglake.lake.checkpoint import StateLock
from loglake.lake.writer import LakeWriter
from loglake.objstore.reach import check_lake
from loglake.parse.registry import registry_for
from loglake.retain.schedule import start_scheduler
from loglake.watch.checkpoints import PackedCheckpoints
from loglake.watch.engine import Engine
from loglake.watch.flusher import FlushBuffer, Flusher
from loglake.watch.memory import Trimmer, limit_arenas
from loglake.watch.metrics_http import MetricsServer
from loglake.watch.objpoll import ObjectPoller
from loglake.watch.scanner import Hints, Observers
from loglake.watch.settings import WatchSettings
from loglake.watch.stats import Stats
from loglake.watch.status import HEARTBEAT, write_status
from loglake.watch.supervise import Worker

if TYPE_CHECKING:
    from apscheduler.schedulers.background import BackgroundScheduler

log = logging.getLogger(__name__)

MIN_PASS = 0.2  # seconds between read passes: events arriving meanwhile are read together
MIN_RESCAN_GAP = 1.0  # event-triggered rescans at most this often
SHUTDOWN_JOIN = 30.0


def raise_fd_limit(want: int) -> None:
    """Descriptors for every live file: lift the soft limit toward the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


class Daemon:
    """The wired-up daemon for one config and state dir (the lock is held by the caller)."""

    def __init__(self, config: Config, stop: threading.Event | None = None) -> None:
        self.config = config
        self.settings = s = WatchSettings.from_config(config)
        self.state_dir = config.state_path()
        self.stop = stop or threading.Event()
        raise_fd_limit(s.max_open_files + 256)
        limit_arenas()
        self.stats = Stats()
        self.store = store = PackedCheckpoints(
            self.state_dir, on_write=lambda n: self.stats.add(checkpoint_bytes=n)
        )
        self.writer = LakeWriter(
            config.lake,
            self.state_dir,
            writer_id=f"watch-{socket.gethostname()}-{state_tag(self.state_dir)}",
            storage_options=config.storage_options or None,
            checkpoints=store,
        )
        check_lake(config)  # a lake store that is down: one line, exit 1, the service retries
        self.writer.recover()
        entries = store.load()
        registry = registry_for(config)
        self.buffer = FlushBuffer(
            max_bytes=s.max_buffer_bytes,
            flush_records=s.flush_records,
            flush_interval=s.flush_interval,
        )
        self.flusher = Flusher(self.buffer, self.writer, self.stats)
        self.engine = Engine(
            config,
            s,
            entries=entries,
            buffer=self.buffer,
            flusher=self.flusher,
            registry=registry,
            checkpoints=store,
            stats=self.stats,
            stop=self.stop,
        )
        # Object-store sources have no events: a poller lists them (watch/objpoll.py).
        self.objpoll = ObjectPoller(self.engine, stop=self.stop)
        self.hints = Hints()
        self.observers = Observers(config, self.hints, self.stats, s.poll_interval)
        self.metrics = MetricsServer(s.metrics_listen, self.snapshot) if s.metrics_listen else None
        self.workers: list[Worker] = []
        self.scheduler: BackgroundScheduler | None = None
        self.started_at = time.time()
        self.state = "starting"

    # -- loops ---------------------------------------------------------------------------

    def _tail_loop(self, stop: threading.Event) -> None:
        engine, hints = self.engine, self.hints
        next_scan = last_scan = 0.0
        pending = False
        while not stop.is_set():
            now = time.monotonic()
            paths, asked = hints.take()
            if engine.hint(paths) or asked:
                pending = True
            if now >= next_scan or (pending and now - last_scan >= MIN_RESCAN_GAP):
                engine.scan()
                self.observers.ensure()
                last_scan, pending = now, False
                next_scan = now + self.settings.rescan_interval
            engine.read(stop)
            if stop.wait(MIN_PASS):
                return
            now = time.monotonic()
            timeout = next_scan - now
            due = engine.next_due(time.time())
            if due is not None:
                timeout = min(timeout, due)
            if pending:
                timeout = min(timeout, last_scan + MIN_RESCAN_GAP - now)
            hints.wait(max(0.0, timeout))

    def _flush_loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            if self.flusher.inflight is not None or self.buffer.wait_due(stop, 1.0):
                self.flusher.flush(stop)

    def _metrics_loop(self, stop: threading.Event) -> None:
        assert self.metrics is not None
        self.metrics.serve(stop)

    # -- running ---------------------------------------------------------------------------

    def run(self, install_signals: bool = True) -> int:
        if install_signals:
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
        self.observers.start()
        loops = [("tail", self._tail_loop), ("flush", self._flush_loop)]
        if self.objpoll.active:
            loops.append(("objpoll", self.objpoll.run))
        if self.metrics is not None:
            loops.append(("metrics", self._metrics_loop))
        self.workers = [Worker(name, fn, self.stop, self.stats) for name, fn in loops]
        for w in self.workers:
            w.start()
        self.scheduler = start_scheduler(self.config, stop=self.stop, on_error=self.stats.error)
        self.state = "running"
        self._write_status()
        print(
            f"loglake watch: following {len(self.config.sources)} source(s) into "
            f"{self.config.lake} (state {self.state_dir}); SIGTERM or Ctrl-C flushes and stops",
            file=sys.stderr,
        )
        dead: Worker | None = None
        last_status = time.monotonic()
        flushes = 0
        trimmer = Trimmer()
        while not self.stop.wait(0.5):
            dead = next((w for w in self.workers if not w.alive), None)
            if dead is not None:
                log.error("worker %s died (%s); stopping", dead.name, dead.failure)
                break
            if not self.observers.alive():
                self.stats.error("observer", "an observer thread died; restarting observers")
                self.observers.restart()
            trimmer.maybe(self.stats.counters["flushes"])
            flushed = self.stats.counters["flushes"] != flushes
            if flushed or time.monotonic() - last_status >= HEARTBEAT:
                flushes = self.stats.counters["flushes"]
                self._write_status()
                last_status = time.monotonic()
        return self._shutdown(dead)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stop.set()
        self.hints.event.set()  # wake the tail loop, which may sleep until the next rescan

    def _shutdown(self, dead: Worker | None) -> int:
        self.stop.set()
        self.hints.event.set()
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=True)  # a retention job ends after its current file
        self.state = "stopping"
        self._write_status()
        if self.metrics is not None:
            self.metrics.shutdown()
        stuck = [w.name for w in self.workers if not w.join(SHUTDOWN_JOIN)]
        flushed = not stuck and self.flusher.flush(attempts=3)
        if flushed:
            self._fold_checkpoints()
        self.observers.stop()
        self.engine.close()
        failed = dead is not None or bool(stuck) or not flushed
        self.state = "failed" if failed else "stopped"
        self._write_status()
        if dead is not None:
            print(
                f"loglake: error: worker {dead.name} died ({dead.failure}); exiting so the "
                "service manager restarts loglake from the last commit",
                file=sys.stderr,
            )
        elif stuck:
            print(f"loglake: error: worker(s) {', '.join(stuck)} did not stop", file=sys.stderr)
        elif not flushed:
            print(
                "loglake: error: the last flush could not be committed; its lines are read "
                "again on the next start (checkpoints did not move)",
                file=sys.stderr,
            )
        return ExitCode.SOFTWARE if failed else ExitCode.OK

    def _fold_checkpoints(self) -> None:
        """Leave one checkpoint file behind, readable by ``loglake index`` as it is."""
        try:
            self.store.save()
        except LoglakeError as e:  # the journal still holds every entry
            self.stats.error("checkpoints", e.one_line())

    # -- status ----------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        engine = dict(self.engine.snapshot())
        by_source = engine.pop("by_source")
        return {
            "state": self.state,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_at": self.started_at,
            "heartbeat": time.time(),
            "lake": self.config.lake,
            "state_dir": str(self.state_dir),
            "sources": [
                {
                    "name": src.name,
                    "paths": src.paths,
                    "observer": src.observer,
                    "files": by_source.get(src.name, 0),
                }
                for src in self.config.sources
            ],
            "settings": {
                "flush_interval": self.settings.flush_interval,
                "rescan_interval": self.settings.rescan_interval,
                "idle_timeout": self.settings.idle_timeout,
            },
            **engine,
            **self.stats.snapshot(),
            "workers": {w.name: w.describe() for w in self.workers},
        }

    def _write_status(self) -> None:
        try:
            write_status(self.state_dir, self.snapshot())
        except OSError as e:
            self.stats.error("status", f"cannot write the status file: {e.strerror or e}")
        except Exception as e:  # reporting must never stop the daemon
            log.exception("status snapshot failed")
            self.stats.error("status", f"cannot build the status: {type(e).__name__}: {e}")


def run_watch(config: Config, *, stop: threading.Event | None = None) -> int:
    """Run the daemon until stopped; the exit code for the CLI."""
    state_dir = Path(config.state_path())
    with StateLock(state_dir), fewer_collections():  # the indexer's GC thresholds, see there
        main = threading.current_thread() is threading.main_thread()
        return Daemon(config, stop).run(install_signals=main)
