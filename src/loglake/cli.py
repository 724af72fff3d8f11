"""The ``loglake`` command. Thin: parse arguments, call the functions tests and the daemon call.

Data goes to stdout, messages and progress to stderr; exit codes mean something (errors.ExitCode).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from loglake import __version__
from loglake.errors import ExitCode, LoglakeError

# Modules that add their own sub-commands: each has ``register(subparsers, add_config)``.
# Each module's functions are the ones the daemon and tests call; the CLI only wires them.
COMMAND_MODULES: tuple[str, ...] = (
    "loglake.explore.cli",
    "loglake.parsers_cli",
    "loglake.retain.cli",
    "loglake.watch.cli",
)


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-c", "--config", help="config file (TOML); default: $LOGLAKE_CONFIG or built-in"
    )
    p.add_argument("--lake", help="lake location (folder or s3://…); overrides the config")


def load_cli_config(args: argparse.Namespace):
    """The config for a command: file/env, then ``--lake`` on the command line."""
    return _config(args)


def _config(args: argparse.Namespace):
    from loglake.config import load_config

    cfg = load_config(args.config)
    if getattr(args, "lake", None):
        cfg.lake = args.lake
    return cfg


@contextmanager
def _index_progress(enabled: bool) -> Iterator[Callable[[int, int, int, int], None] | None]:
    """The progress bar's update callback, or None: rich (~25 ms to import) is loaded only
    when a bar is drawn, i.e. not with ``-q`` nor when stderr is not a terminal."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from loglake.cli_progress import IndexProgress

    with IndexProgress() as bar:
        yield bar.update


def cmd_index(args: argparse.Namespace) -> int:
    from loglake.index.pandas_probe import skip_pandas_probe
    from loglake.index.runner import print_failures, run_index

    skip_pandas_probe()  # this process indexes only: pandas would be imported for nothing
    cfg = _config(args)
    if args.state_dir:
        cfg.state_dir = args.state_dir
    with _index_progress(not args.quiet) as update:
        report = run_index(cfg, args.paths, jobs=args.jobs, finished=args.finished, progress=update)
    print_failures(report)
    if not args.quiet:
        print(f"loglake: {report.summary()}", file=sys.stderr)
    if report.files_seen == 0 and report.failures and not report.files_indexed:
        return ExitCode.NO_INPUT
    return ExitCode.PARTIAL if report.failures else ExitCode.OK


def cmd_sql(args: argparse.Namespace) -> int:
    from loglake.query.connect import connect
    from loglake.query.output import write_result

    cfg = _config(args)
    con = connect(cfg.lake, config=cfg, storage_options=cfg.storage_options or None)
    query = args.query if args.query != "-" else sys.stdin.read()
    try:
        rel = con.sql(query)
    except Exception as e:  # noqa: BLE001 - duckdb raises many types; all are the user's SQL
        raise LoglakeError(
            f"SQL error: {str(e).splitlines()[0]}",
            fix="tables: runs, params, metrics, metric_summary, packages, datasets, artifacts, "
            "parse_errors, gaps, files — see `loglake sql 'SHOW TABLES'`",
        ) from None
    if rel is None:
        return ExitCode.OK
    write_result(rel, args.format, path=args.output)
    return ExitCode.OK


def cmd_validate(args: argparse.Namespace) -> int:
    from loglake.config import load_config
    from loglake.parse.registry import registry_for

    path = args.file or args.config
    cfg = load_config(path)
    reg = registry_for(cfg)
    where = path or "built-in defaults"
    print(
        f"{where}: ok — lake {cfg.lake}, {len(cfg.sources)} source(s), {len(reg.entries)} parser(s)"
    )
    for err in reg.broken.values():
        print(f"warning: {err}", file=sys.stderr)
    return ExitCode.OK


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="loglake",
        description="Index ML training logs into a queryable lake; query it with SQL.",
    )
    p.add_argument("--version", action="version", version=f"loglake {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="more messages on stderr")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    ix = sub.add_parser("index", help="index existing logs (files, folders, globs, .gz)")
    ix.add_argument("paths", nargs="*", help="files, folders or globs; default: configured sources")
    ix.add_argument("-j", "--jobs", type=int, help="worker processes (default: one per core)")
    ix.add_argument(
        "--finished",
        action="store_true",
        help="treat every log as finished (its job ended), e.g. logs just copied off a cluster",
    )
    ix.add_argument("--state-dir", help="checkpoint folder (default: <lake>/_loglake)")
    ix.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    _add_config(ix)
    ix.set_defaults(func=cmd_index)

    sq = sub.add_parser("sql", help="run SQL over the lake (DuckDB)")
    sq.add_argument("query", help="SQL text, or - to read it from stdin")
    sq.add_argument("-f", "--format", choices=["table", "csv", "json", "parquet"], default="table")
    sq.add_argument(
        "-o", "--output", help="write to this file (required for parquet on a terminal)"
    )
    _add_config(sq)
    sq.set_defaults(func=cmd_sql)

    va = sub.add_parser("validate", help="check a config file; exit 78 when it is bad")
    va.add_argument("file", nargs="?", help="config file (default: $LOGLAKE_CONFIG or built-in)")
    va.add_argument("-c", "--config", help="the same, as every other command spells it")
    va.set_defaults(func=cmd_validate)

    for module in COMMAND_MODULES:
        importlib.import_module(module).register(sub, _add_config)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="loglake: %(levelname)s: %(message)s",
        stream=sys.stderr,
    )
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return ExitCode.USAGE
    try:
        return int(args.func(args))
    except LoglakeError as e:
        print(f"loglake: error: {e.one_line()}", file=sys.stderr)
        return int(e.exit_code)
    except KeyboardInterrupt:
        print("loglake: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return ExitCode.OK
    except Exception as e:  # noqa: BLE001 - the last resort: one line, not a traceback
        if args.verbose:
            traceback.print_exc(file=sys.stderr)
        first = (str(e).strip().splitlines() or [""])[0]
        print(
            f"loglake: internal error: {type(e).__name__}: {first} — rerun with -v for the "
            "traceback and report it at the project's issue tracker",
            file=sys.stderr,
        )
        return ExitCode.SOFTWARE


if __name__ == "__main__":
    sys.exit(main())
