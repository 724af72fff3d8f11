"""Lake upkeep: compaction, vacuum, and the optional index retention.

Compaction (Delta ``optimize``) rewrites many small files into few; readers keep seeing every
row exactly once because the swap is one commit. ``vacuum`` then deletes files no version
younger than ``vacuum_retention`` references, so a reader holding an older file list (a
notebook's connection) keeps working for that long. Index retention deletes the rows of runs
whose last observation is older than ``index_retention`` from the configured tables (metrics
by default); the run itself, its tags, notes and its archived raw log stay.

A run of any of these holds ``<state>/housekeep/lock`` so the daemon's scheduler and the
``loglake housekeep`` command never do the same work twice at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from deltalake.exceptions import DeltaError

from loglake.config import Config, parse_duration
from loglake.errors import LakeError
from loglake.lake.schema import SCHEMAS
from loglake.lake.tables import open_table, optimize, vacuum
from loglake.objstore.reach import LakeUnreachable, check_lake
from loglake.retain.lock import exclusive

log = logging.getLogger(__name__)

LOCK_DIR = "housekeep"
_DELETE_BATCH = 500  # run ids per delete predicate


@dataclass
class HousekeepReport:
    optimized: dict[str, dict[str, Any]] = field(default_factory=dict)
    vacuumed: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    old_runs: int = 0
    failures: list[str] = field(default_factory=list)
    dry_run: bool = False

    def summary(self) -> str:
        added = sum(int(m.get("numFilesAdded", 0)) for m in self.optimized.values())
        removed = sum(int(m.get("numFilesRemoved", 0)) for m in self.optimized.values())
        vacuumed, dropped = sum(self.vacuumed.values()), sum(self.dropped.values())
        if self.dry_run:
            parts = [
                "compaction not run (dry run)",
                f"would vacuum {vacuumed} file(s)",
                f"{self.old_runs} run(s) past index retention, {dropped} row(s) would be dropped",
            ]
        else:
            parts = [
                f"compacted {removed} file(s) into {added}",
                f"vacuumed {vacuumed} file(s)",
                f"{self.old_runs} run(s) past index retention, {dropped} row(s) dropped",
            ]
        return f"housekeeping: {' · '.join(parts)} · {len(self.failures)} failure(s)"


def _options(config: Config) -> dict[str, str] | None:
    return config.storage_options or None


def optimize_lake(config: Config, report: HousekeepReport, tables: list[str] | None = None) -> None:
    """Compact every table (or ``tables``)."""
    for name in tables or list(SCHEMAS):
        try:
            metrics = optimize(config.lake, name, _options(config))
        except (LakeError, DeltaError, OSError) as exc:
            report.failures.append(f"optimize {name}: {exc}")
            continue
        if metrics:
            report.optimized[name] = metrics


def vacuum_lake(config: Config, report: HousekeepReport, *, dry_run: bool = False) -> None:
    """Delete unreferenced files older than ``housekeeping.vacuum_retention``."""
    hours = max(0, int(parse_duration(config.housekeeping.vacuum_retention) // 3600))
    for name in SCHEMAS:
        try:
            removed = vacuum(
                config.lake, name, _options(config), retention_hours=hours, dry_run=dry_run
            )
        except (LakeError, DeltaError, OSError) as exc:
            report.failures.append(f"vacuum {name}: {exc}")
            continue
        report.vacuumed[name] = len(removed)


def old_run_ids(config: Config, older_than: float, now: float) -> list[str]:
    """Runs whose latest observation is older than ``older_than`` seconds before ``now``."""
    dt = open_table(config.lake, "runs", _options(config))
    if dt is None:
        return []
    runs = dt.to_pyarrow_table(columns=["run_id", "observed_at"])
    cutoff = datetime.fromtimestamp(now - older_than, tz=UTC)
    con = duckdb.connect()
    try:
        con.register("runs_in", runs)
        rows = con.execute(
            "SELECT run_id FROM runs_in WHERE run_id IS NOT NULL GROUP BY run_id "
            "HAVING max(observed_at) < ? ORDER BY run_id",
            [cutoff],
        ).fetchall()
    finally:
        con.close()
    return [r[0] for r in rows]


def drop_old_runs(
    config: Config, report: HousekeepReport, *, now: float, dry_run: bool = False
) -> None:
    """Index retention: delete old runs' rows from ``housekeeping.index_retention_tables``."""
    hk = config.housekeeping
    if not hk.index_retention:
        return
    ids = old_run_ids(config, parse_duration(hk.index_retention), now)
    report.old_runs = len(ids)
    if not ids:
        return
    for name in hk.index_retention_tables:
        dt = open_table(config.lake, name, _options(config))
        if dt is None or "run_id" not in dt.schema().to_arrow().names:
            continue
        total = 0
        for i in range(0, len(ids), _DELETE_BATCH):
            chunk = ids[i : i + _DELETE_BATCH]
            quoted = ", ".join("'" + r.replace("'", "''") + "'" for r in chunk)
            predicate = f"run_id IN ({quoted})"
            try:
                if dry_run:
                    total += _count(dt, chunk)
                else:
                    total += int(dt.delete(predicate).get("num_deleted_rows", 0))
            except (DeltaError, OSError) as exc:
                report.failures.append(f"index retention on {name}: {exc}")
                break
        report.dropped[name] = total


def _count(dt: Any, run_ids: list[str]) -> int:
    column = dt.to_pyarrow_table(columns=["run_id"]).column("run_id")
    hits = pc.is_in(column, value_set=pa.array(run_ids, pa.string()))
    return int(pc.sum(hits).as_py() or 0)


def run_housekeeping(
    config: Config,
    *,
    do_optimize: bool = True,
    do_vacuum: bool = True,
    do_index_retention: bool = True,
    dry_run: bool = False,
    clock: Callable[[], float] = time.time,
) -> HousekeepReport:
    """Run the chosen upkeep once, holding the housekeeping lock."""
    report = HousekeepReport(dry_run=dry_run)
    lock = exclusive(config.state_path() / LOCK_DIR, "housekeeping")
    try:
        try:
            check_lake(config)
        except LakeUnreachable as exc:
            # Every table would fail the same way, each after its own retries.
            report.failures.append(exc.one_line())
            return report
        if do_index_retention:
            drop_old_runs(config, report, now=clock(), dry_run=dry_run)
        if do_optimize and not dry_run:
            optimize_lake(config, report)
        if do_vacuum:
            vacuum_lake(config, report, dry_run=dry_run)
    finally:
        lock.release()
        for line in report.failures:
            log.warning("%s", line)
    return report
