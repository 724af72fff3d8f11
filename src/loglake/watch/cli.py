"""The `watch` and `status` sub-commands: argument parsing only, the work is in the daemon."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


def register(sub: Any, add_config: Callable[[argparse.ArgumentParser], None]) -> None:
    w = sub.add_parser(
        "watch",
        help="follow every configured source live into the lake (the daemon)",
        description="Tail every log of the configured sources as jobs write them; rows are "
        "queryable within seconds. SIGTERM or Ctrl-C flushes and exits 0.",
    )
    w.add_argument("--state-dir", help="checkpoint folder (default: <lake>/_loglake)")
    add_config(w)
    w.set_defaults(func=cmd_watch)

    s = sub.add_parser("status", help="what the watch daemon is doing: files, lag, flushes, errors")
    s.add_argument("--json", action="store_true", help="the whole status as one JSON object")
    s.add_argument(
        "--check",
        action="store_true",
        help="liveness probe: exit 0 only if the daemon runs, holds its lock, has a fresh "
        "heartbeat and live workers, and its rows reach the lake; else exit 1 and one line why",
    )
    s.add_argument(
        "--max-flush-age",
        type=_duration,
        metavar="DURATION",
        help="with --check: how long read rows may wait for a lake commit "
        "(default: the larger of 5m and 20 flush intervals)",
    )
    s.add_argument(
        "--expiring",
        metavar="WITHIN",
        default="3d",
        type=_within,
        help="list logs not fully archived that the cluster deletes within this long, most "
        "urgent first (default: 3d; 0: skip; skipped anyway when retention is off)",
    )
    s.add_argument("--state-dir", help="checkpoint folder (default: <lake>/_loglake)")
    add_config(s)
    s.set_defaults(func=cmd_status)


def _duration(text: str) -> float:
    from loglake.config import parse_duration

    try:
        return parse_duration(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _within(text: str) -> str:
    _duration(text)
    return text


def _config(args: argparse.Namespace) -> Any:
    from loglake.cli import load_cli_config

    cfg = load_cli_config(args)
    if args.state_dir:
        cfg.state_dir = args.state_dir
    return cfg


def cmd_watch(args: argparse.Namespace) -> int:
    from loglake.index.pandas_probe import skip_pandas_probe
    from loglake.watch.daemon import run_watch

    skip_pandas_probe()  # the daemon indexes, retains and serves metrics: never pandas
    return run_watch(_config(args))


def cmd_status(args: argparse.Namespace) -> int:
    from loglake.watch.status import status_command

    return status_command(
        _config(args),
        as_json=args.json,
        check=args.check,
        max_flush_age=args.max_flush_age,
        expiring=args.expiring,
    )
