"""One retention run: archive what is due, report what was lost, record both in the lake.

A run holds ``<state>/retain/lock`` (flock: released by the kernel if the process dies), so
runs never overlap — between the daemon's scheduler and ``loglake retain``, or two of either.
Work is done most urgent first (earliest deadline). Rows go to the ``logs`` and ``gaps``
tables through a ``LakeWriter`` of its own (state ``<state>/retain``, app id
``loglake:retain-…``), whose checkpoint store is the retention store: an entry moves only
after its row is committed, exactly once. A run killed at any point is finished by the next:
a complete spool entry is replayed, a verified archive object is found by its manifest and
recorded without being written again, a half-written one is written again.
"""

from __future__ import annotations

import hashlib
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from loglake.config import Config
from loglake.errors import LoglakeError
from loglake.lake.checkpoint import CheckpointStore
from loglake.lake.schema import SCHEMAS
from loglake.lake.tables import is_remote, normalize_lake
from loglake.lake.writer import LakeWriter
from loglake.objstore.reach import check_lake
from loglake.query.remote import fsspec_options
from loglake.retain.archive import Archived, ArchiveError, ArchiveStore, ArchiveUnavailable
from loglake.retain.lakestate import lake_state
from loglake.retain.lock import Busy, exclusive
from loglake.retain.sources import SourceAccess
from loglake.retain.worklist import (
    ARCHIVE,
    LOST,
    UNAVAILABLE,
    Decision,
    Policy,
    Source,
    decide,
    gather,
    read_indexer_checkpoints,
)

log = logging.getLogger(__name__)

LOST_GAP = "archive_lost"  # the gaps-table kind of a raw log deleted before it was archived
STORE_DIR = "retain"


RetentionBusy = Busy  # another retention run holds the lock


@dataclass
class RetentionReport:
    decisions: list[Decision] = field(default_factory=list)
    archived: list[tuple[Decision, Archived]] = field(default_factory=list)
    reused: int = 0  # archives found finished by an earlier, interrupted run
    lost: list[Decision] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    written: int = 0  # archive objects written by this run
    dry_run: bool = False
    seconds: float = 0.0

    def summary(self) -> str:
        verb = "would archive" if self.dry_run else "archived"
        due = sum(1 for d in self.decisions if d.action == ARCHIVE)
        n = due if self.dry_run else len(self.archived)
        waiting = sum(1 for d in self.decisions if d.action == "wait")
        how = "" if self.dry_run else f" ({self.written} written, {self.reused} resumed)"
        away = sum(1 for d in self.decisions if d.action == UNAVAILABLE)
        unseen = f" · {away} unreachable" if away else ""
        return (
            f"retention: {verb} {n} log(s){how} · {len(self.lost)} lost · {waiting} waiting · "
            f"{len(self.failures)} failure(s){unseen} · {len(self.decisions)} known in "
            f"{self.seconds:.2f}s"
        )


def archive_base(config: Config) -> str:
    """The archive location: ``[retention] archive``, else ``<lake>/archive``."""
    if config.retention.archive:
        return normalize_lake(config.retention.archive)
    return f"{normalize_lake(config.lake)}/archive"


def archive_store(config: Config) -> ArchiveStore:
    base = archive_base(config)
    options = config.retention.storage_options
    if options is None:
        options = config.storage_options or {}
    if is_remote(base):
        options = fsspec_options(base.split("://", 1)[0], options)
    return ArchiveStore(
        base,
        options,
        compression=config.retention.compression,
        redact=config.retention.redact,
    )


def _writer_id(config: Config) -> str:
    where = hashlib.sha256(str(config.state_path().absolute()).encode()).hexdigest()[:8]
    return f"retain-{socket.gethostname()}-{where}"


def plan(
    config: Config,
    store: CheckpointStore,
    access: SourceAccess,
    *,
    now: float,
) -> list[Decision]:
    """Every known source's decision at ``now``, most urgent first."""
    checkpoints = read_indexer_checkpoints(config.state_path())
    status, logs = lake_state(config.lake, config.storage_options or None)
    sources = gather(checkpoints, store.entries(), status, logs)
    policy = Policy.from_config(config)
    decisions = [decide(s, policy, now, access) for s in sources.values()]
    decisions.sort(key=lambda d: (d.urgency, d.source.path))
    return decisions


def _ts(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, tz=UTC)


def _entry(src: Source, d: Decision, **state: Any) -> dict[str, Any]:
    entry = {
        **src.retained,
        "path": d.seen.path if d.seen else src.path,
        "fp": src.fp,
        "fp_len": src.fp_len,
        "run_id": src.run_id,
        "namespace": src.namespace,
        "size": max(d.size, src.known_size),
        "mtime": d.seen.mtime if d.seen else src.known_mtime,
        "expires_at": d.expires_at,
    }
    entry.update(state)
    return entry


def _logs_row(
    src: Source, d: Decision, state: str, a: Archived | None, now: float
) -> dict[str, Any]:
    return {
        "source_fp": src.key,
        "source_path": d.seen.path if d.seen else src.path,
        "run_id": src.run_id,
        "namespace": src.namespace,
        "state": state,
        "version": a.version if a else src.archived_version,
        "archive_uri": a.uri if a else src.archived_uri,
        "sha256": a.sha256 if a else None,
        "content_sha256": a.content_sha256 if a else None,
        "bytes": a.bytes if a else max(src.known_size - src.archived_bytes, 0),
        "archive_bytes": a.archive_bytes if a else None,
        "compression": a.compression if a else None,
        "redactions": a.redactions if a else None,
        "mtime": _ts(d.seen.mtime if d.seen else src.known_mtime),
        "expires_at": _ts(d.expires_at),
        "archived_at": _ts(a.archived_at if a else now),  # lost: when it was reported
        "detail": d.reason,
    }


def _table(name: str, rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=SCHEMAS[name])


class _Batch:
    """Rows and retention-store entries committed together, every ``every`` archives."""

    def __init__(self, writer: LakeWriter, every: int) -> None:
        self.writer, self.every = writer, every
        self.logs: list[dict[str, Any]] = []
        self.gaps: list[dict[str, Any]] = []
        self.entries: dict[str, dict[str, Any] | None] = {}

    def add(
        self, key: str, entry: dict[str, Any] | None, logs: Any = None, gap: Any = None
    ) -> None:
        self.entries[key] = entry
        if logs:
            self.logs.append(logs)
        if gap:
            self.gaps.append(gap)
        if len(self.logs) >= self.every:
            self.flush()

    def flush(self) -> None:
        if not self.entries:
            return
        tables = {"logs": _table("logs", self.logs), "gaps": _table("gaps", self.gaps)}
        self.writer.commit(tables, self.entries)
        self.logs, self.gaps, self.entries = [], [], {}


def run_retention(
    config: Config,
    *,
    clock: Callable[[], float] = time.time,
    dry_run: bool = False,
    stop: threading.Event | None = None,
    archive: ArchiveStore | None = None,
) -> RetentionReport:
    """Run retention once; ``dry_run`` decides without writing anything (and takes no lock)."""
    started = time.monotonic()
    report = RetentionReport(dry_run=dry_run)
    rdir = config.state_path() / STORE_DIR
    access = SourceAccess(config)
    check_lake(config)  # one line and seconds when its store is down, not a retry storm
    if dry_run:
        report.decisions = plan(config, CheckpointStore(rdir), access, now=clock())
        report.lost = [d for d in report.decisions if d.action == LOST]
        report.seconds = time.monotonic() - started
        return report
    lock = exclusive(rdir, "retention")
    try:
        store = CheckpointStore(rdir)
        writer = LakeWriter(
            config.lake,
            rdir,
            writer_id=_writer_id(config),
            storage_options=config.storage_options or None,
            checkpoints=store,
        )
        writer.recover()
        archive = archive or archive_store(config)
        before = archive.writes
        report.decisions = plan(config, store, access, now=clock())
        _execute(report, report.decisions, writer, archive, config, clock, stop)
        report.written = archive.writes - before
    finally:
        lock.release()
    report.seconds = time.monotonic() - started
    return report


def _execute(
    report: RetentionReport,
    decisions: list[Decision],
    writer: LakeWriter,
    archive: ArchiveStore,
    config: Config,
    clock: Callable[[], float],
    stop: threading.Event | None,
) -> None:
    batch = _Batch(writer, config.retention.commit_every)
    access = SourceAccess(config)
    archive_down = False
    for d in decisions:
        if stop is not None and stop.is_set():
            break
        src = d.source
        if d.action == LOST:
            _lost(report, batch, d, clock())
        elif d.action == ARCHIVE:
            if archive_down:
                continue  # "not reached": the next run archives it
            try:
                done = _archive_one(report, archive, access, d, clock())
            except ArchiveUnavailable as exc:
                # Every other log would fail the same way: say it once, stop archiving.
                report.failures.append(exc.one_line())
                archive_down = True
                continue
            except LoglakeError as exc:
                report.failures.append(f"{src.path}: {exc.one_line()}")
                continue
            report.archived.append((d, done))
            entry = _entry(
                src,
                d,
                state="archived",
                version=done.version,
                bytes=done.bytes,
                uri=done.uri,
                sha256=done.sha256,
            )
            batch.add(src.key, entry, logs=_logs_row(src, d, "archived", done, clock()))
        elif d.seen is None and not src.indexed:
            if src.retained:  # archived or reported, gone, and forgotten by the indexer too
                batch.add(src.key, None)
        elif d.seen is not None and (
            src.state is None
            or src.retained.get("path") != d.seen.path
            or src.retained.get("size") != d.seen.size
        ):
            # Registered as soon as seen: retention never forgets a source the daemon drops.
            batch.add(src.key, _entry(src, d, state=src.state or "pending"))
    batch.flush()


def _archive_one(
    report: RetentionReport, archive: ArchiveStore, access: SourceAccess, d: Decision, now: float
) -> Archived:
    src, seen = d.source, d.seen
    assert seen is not None
    version = src.archived_version + 1
    uri = archive.uri_for(src.namespace, src.run_id, src.path, src.key, version)
    found = archive.existing(uri, src.key, seen.size)
    if found is not None:
        report.reused += 1
        return found
    try:
        done = archive.write(
            access, seen.path, uri, source_fp=src.key, version=version, nbytes=seen.size, now=now
        )
    except ArchiveError:
        raise
    except OSError as exc:
        raise ArchiveError(
            f"cannot read {seen.path}: {exc.strerror or exc}",
            fix="make it readable by this user; it is archived on the next retention run",
        ) from exc
    problem = access.problems.pop(seen.path, None)
    if problem:
        log.warning("%s", problem)
        d.reason = f"{d.reason}; {problem}"
    return done


def _lost(report: RetentionReport, batch: _Batch, d: Decision, now: float) -> None:
    src = d.source
    lost = max(src.known_size - src.archived_bytes, 0)
    log.warning(
        "raw log lost: %s (run %s) %s; %d byte(s) were never archived",
        src.path,
        src.run_id or "?",
        d.reason,
        lost,
    )
    report.lost.append(d)
    gap = {
        "source_path": src.path,
        "kind": LOST_GAP,
        "bytes": lost,
        "detail": f"raw log {d.reason} (retention)",
        "observed_at": datetime.fromtimestamp(now, tz=UTC),
        "source_fp": src.key,
        "offset": src.archived_bytes,
    }
    entry = _entry(src, d, state="lost", lost_bytes=lost)
    batch.add(src.key, entry, logs=_logs_row(src, d, "lost", None, now), gap=gap)
