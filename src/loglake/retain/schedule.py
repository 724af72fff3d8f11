"""The daemon's scheduler: retention and lake upkeep on intervals (APScheduler 3).

The scheduler only says *when*; *what* comes from loglake's own state (see ``worklist``), so
a missed or killed run is simply made up by the next one. Every job has
``max_instances=1`` and ``coalesce=True`` (a late job runs once, not once per missed slot), and
the work itself holds a file lock, so a ``loglake retain`` run by hand never overlaps the
daemon's either. Jobs run on one worker thread: upkeep waits for an archive run instead of
competing with it and with the daemon for the cores.

Retention runs as soon as the scheduler starts (a daemon that was down catches up first);
compaction and vacuum first run one interval later.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from loglake.config import Config, parse_duration
from loglake.errors import LoglakeError
from loglake.retain.lock import Busy

log = logging.getLogger(__name__)

ErrorSink = Callable[[str, str], None]


def _guarded(name: str, fn: Callable[[], str], on_error: ErrorSink | None) -> Callable[[], None]:
    """A job that never raises into the scheduler: errors go to ``on_error`` and the log."""

    def job() -> None:
        try:
            summary = fn()
        except Busy as exc:
            log.info("%s skipped: %s", name, exc.one_line())
            return
        except LoglakeError as exc:
            message = exc.one_line()
        except Exception as exc:
            log.exception("%s failed", name)
            message = f"{type(exc).__name__}: {exc}"
        else:
            log.info("%s", summary)
            return
        log.warning("%s failed: %s", name, message)
        if on_error is not None:
            on_error(name, message)

    return job


def start_scheduler(
    config: Config,
    *,
    stop: threading.Event | None = None,
    on_error: ErrorSink | None = None,
    clock: Callable[[], float] = time.time,
) -> BackgroundScheduler:
    """Start retention and housekeeping jobs in the background; ``shutdown()`` stops them.

    ``stop`` (the daemon's stop event) makes a running retention job end after the file it
    is archiving; ``on_error(where, message)`` receives job failures (e.g. ``Stats.error``).
    """
    from loglake.retain.housekeep import run_housekeeping
    from loglake.retain.job import run_retention

    scheduler = BackgroundScheduler(
        executors={"default": ThreadPoolExecutor(max_workers=1)},
        job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": None},
        timezone="UTC",
    )
    now = datetime.now().astimezone()
    r, hk = config.retention, config.housekeeping

    def retention() -> str:
        report = run_retention(config, clock=clock, stop=stop)
        for line in report.failures:
            log.warning("retention: %s", line)
        return report.summary()

    def upkeep(**kinds: bool) -> Callable[[], str]:
        def run() -> str:
            report = run_housekeeping(
                config,
                do_optimize=kinds.get("optimize", False),
                do_vacuum=kinds.get("vacuum", False),
                do_index_retention=kinds.get("index_retention", False),
                clock=clock,
            )
            return report.summary()

        return run

    if r.enabled:
        # Soon after start (a daemon that was down may have logs near expiry), but after the
        # first backfill has had a moment: a minute, or the interval if that is shorter.
        first = now + timedelta(seconds=min(60.0, parse_duration(r.interval)))
        _every(scheduler, "retention", retention, r.interval, on_error, first=first)
    if hk.enabled:
        _every(scheduler, "optimize", upkeep(optimize=True), hk.optimize_interval, on_error)
        _every(scheduler, "vacuum", upkeep(vacuum=True), hk.vacuum_interval, on_error)
        if hk.index_retention:
            job = upkeep(index_retention=True)
            _every(scheduler, "index_retention", job, hk.vacuum_interval, on_error)
    scheduler.start()
    return scheduler


def _every(
    scheduler: BackgroundScheduler,
    name: str,
    fn: Callable[[], str],
    interval: str,
    on_error: ErrorSink | None,
    first: datetime | None = None,
) -> None:
    seconds = parse_duration(interval)
    if seconds <= 0:
        return
    scheduler.add_job(
        _guarded(name, fn, on_error),
        "interval",
        seconds=seconds,
        id=name,
        name=name,
        next_run_time=first or datetime.now().astimezone() + timedelta(seconds=seconds),
    )
