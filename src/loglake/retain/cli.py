"""The `retain` and `housekeep` sub-commands: argument parsing and printing only."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from loglake.errors import ExitCode


def register(sub: Any, add_config: Callable[[argparse.ArgumentParser], None]) -> None:
    r = sub.add_parser(
        "retain",
        help="archive raw logs before the cluster deletes them (runs once)",
        description="Archive every finished raw log (redacted, compressed, verified) and any "
        "log whose expiry is near; report logs deleted before they could be archived. "
        "The daemon runs this on its scheduler; see docs/retention.md.",
    )
    r.add_argument("--dry-run", action="store_true", help="show what would be done; change nothing")
    r.add_argument("--all", action="store_true", help="also list logs with nothing to do")
    r.add_argument("-f", "--format", choices=["table", "csv", "json"], default="table")
    r.add_argument("--state-dir", help="checkpoint folder (default: <lake>/_loglake)")
    add_config(r)
    r.set_defaults(func=cmd_retain)

    h = sub.add_parser(
        "housekeep",
        help="compact the lake, vacuum old files, apply index retention (runs once)",
        description="Lake upkeep the daemon also schedules: optimize (compaction), vacuum and, "
        "if [housekeeping] index_retention is set, dropping old runs' rows. Without a choice, "
        "does all three.",
    )
    h.add_argument("--optimize", action="store_true", help="compact small files")
    h.add_argument("--vacuum", action="store_true", help="delete unreferenced old files")
    h.add_argument(
        "--index-retention", action="store_true", help="drop rows of runs older than the limit"
    )
    h.add_argument("--dry-run", action="store_true", help="count what vacuum/retention would do")
    h.add_argument("--state-dir", help="checkpoint folder (default: <lake>/_loglake)")
    add_config(h)
    h.set_defaults(func=cmd_housekeep)


def _config(args: argparse.Namespace) -> Any:
    from loglake.cli import load_cli_config

    cfg = load_cli_config(args)
    if args.state_dir:
        cfg.state_dir = args.state_dir
    return cfg


def _when(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, tz=UTC).replace(microsecond=0)


def report_table(report: Any, *, show_all: bool = False) -> pa.Table:
    """One row per log: file, run, bytes, deadline, action, why."""
    done = {id(d): a for d, a in report.archived}
    failed = {line.split(": ", 1)[0] for line in report.failures}
    rows = []
    for d in report.decisions:
        action = d.action
        if not report.dry_run and action == "archive":
            if id(d) in done:
                action = f"archived v{done[id(d)].version}"
            elif d.source.path in failed or (d.seen and d.seen.path in failed):
                action = "failed"
            else:
                action = "not reached"
        elif report.dry_run and action == "archive":
            action = "would archive"
        if not show_all and action in ("done", "reported"):
            continue
        rows.append(
            {
                "file": d.seen.path if d.seen else d.source.path,
                "run": d.source.run_id,
                "bytes": d.size,
                "deadline": _when(d.deadline),
                "action": action,
                "why": d.reason,
            }
        )
    schema = pa.schema(
        [
            ("file", pa.string()),
            ("run", pa.string()),
            ("bytes", pa.int64()),
            ("deadline", pa.timestamp("s", tz="UTC")),
            ("action", pa.string()),
            ("why", pa.string()),
        ]
    )
    return pa.Table.from_pylist(rows, schema=schema)


def cmd_retain(args: argparse.Namespace) -> int:
    from loglake.query.output import write_result
    from loglake.retain.job import run_retention

    report = run_retention(_config(args), dry_run=args.dry_run)
    table = report_table(report, show_all=args.all)
    if table.num_rows or args.format != "table":
        write_result(table, args.format)
    for line in report.failures:
        print(f"loglake: error: {line}", file=sys.stderr)
    print(f"loglake: {report.summary()}", file=sys.stderr)
    return ExitCode.PARTIAL if report.failures or report.lost else ExitCode.OK


def cmd_housekeep(args: argparse.Namespace) -> int:
    from loglake.retain.housekeep import run_housekeeping

    cfg = _config(args)
    chosen = args.optimize or args.vacuum or args.index_retention
    report = run_housekeeping(
        cfg,
        do_optimize=args.optimize or not chosen,
        do_vacuum=args.vacuum or not chosen,
        do_index_retention=args.index_retention or not chosen,
        dry_run=args.dry_run,
    )
    print(f"loglake: {report.summary()}", file=sys.stderr)
    return ExitCode.PARTIAL if report.failures else ExitCode.OK
