"""The explore commands: runs, show, compare, best, tag, note, datasets, plot, report.

Thin: each parses its arguments, opens the lake (``session.open_lake``) and calls the
function the tests and notebooks call; output goes to stdout, hints to stderr.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from loglake.errors import ExitCode, LoglakeError

FORMATS = ("table", "csv", "json")
_WHERE_HELP = (
    'filter expression, e.g. "params.lr < 0.01 and max(val_accuracy) > 0.9"; aggregates '
    "last/first/min/max/mean/count/best, windows like best(val_acc after step 1000)"
)


def register(sub: Any, add_config: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add the explore commands to the ``loglake`` sub-command parser."""
    p = sub.add_parser("runs", help="list runs: what varied, how good, how they ended")
    _selection_args(p)
    p.add_argument("-m", "--metric", action="append", help="metric column, e.g. val_loss:min")
    p.add_argument(
        "-p", "--param", action="append", help="param column (default: the ones that vary)"
    )
    p.add_argument("-s", "--sort", action="append", default=[], help="e.g. -max(val_accuracy)")
    p.add_argument("--limit", type=int, default=50, help="rows to show; 0 for all (default 50)")
    _output_args(p)
    add_config(p)
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("show", help="everything known about one run")
    p.add_argument("run", help="run id, id prefix, name, or experiment/run")
    p.add_argument("-f", "--format", choices=("table", "json"), default="table")
    add_config(p)
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("compare", help="runs side by side: params, metrics, packages, data")
    p.add_argument("runs", nargs="*", help="runs to compare (or select them with filters)")
    _selection_args(p)
    p.add_argument("--all", action="store_true", help="also list params that are the same")
    _output_args(p)
    add_config(p)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("best", help="best run by a metric; Pareto front for several")
    p.add_argument(
        "-m",
        "--metric",
        action="append",
        required=True,
        help='KEY[:max|min] or an expression, e.g. val_accuracy:max, "last(val_loss):min"',
    )
    _selection_args(p)
    p.add_argument("--limit", type=int, default=10, help="rows to show; 0 for all (default 10)")
    _output_args(p)
    add_config(p)
    p.set_defaults(func=cmd_best)

    p = sub.add_parser("tag", help="set tags on runs: loglake tag RUN key=value (key= removes)")
    p.add_argument("items", nargs="+", metavar="RUN|KEY=VALUE")
    add_config(p)
    p.set_defaults(func=cmd_tag)

    p = sub.add_parser("note", help='add a note to runs: loglake note RUN "text"')
    p.add_argument("runs", nargs="+", metavar="RUN")
    p.add_argument("text", help="the note")
    add_config(p)
    p.set_defaults(func=cmd_note)

    p = sub.add_parser("datasets", help="datasets seen in logs, their runs, and what changed")
    p.add_argument("dataset", nargs="?", help="one dataset (path, name or glob): its runs in order")
    p.add_argument("--changed", action="store_true", help="only datasets that changed")
    _selection_args(p)
    _output_args(p)
    add_config(p)
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("plot", help="metric curves of runs overlaid, to PNG")
    p.add_argument("runs", nargs="*", help="runs to plot (or select them with filters)")
    p.add_argument("-m", "--metric", action="append", required=True, help="metric key to plot")
    p.add_argument("-o", "--output", required=True, help="PNG file to write")
    p.add_argument("--limit", type=int, default=10, help="runs to plot when selecting (default 10)")
    p.add_argument("--log-y", action="store_true", help="logarithmic y axis")
    p.add_argument("--title")
    _selection_args(p)
    add_config(p)
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("report", help="a self-contained HTML page about a selection of runs")
    p.add_argument("-o", "--output", required=True, help="HTML file to write")
    p.add_argument("-m", "--metric", action="append", help="metric columns (default: key metrics)")
    p.add_argument("--curve", action="append", help="metric keys to draw curves of")
    p.add_argument("--title", default="loglake report")
    p.add_argument("--limit", type=int, default=500, help="runs in the page (default 500)")
    _selection_args(p)
    add_config(p)
    p.set_defaults(func=cmd_report)


def _selection_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("selecting runs")
    g.add_argument("-n", "--namespace", action="append", default=[], help="namespace (glob ok)")
    g.add_argument("-e", "--experiment", action="append", default=[], help="experiment (glob ok)")
    g.add_argument("--status", action="append", default=[], help="completed, failed, killed…")
    g.add_argument("-t", "--tag", action="append", default=[], help="KEY or KEY=VALUE")
    g.add_argument("--note", help="text in a note (case-insensitive)")
    g.add_argument("--since", help="start time or age, e.g. 2024-05-01 or 7d")
    g.add_argument("--until", help="start time or age")
    g.add_argument("-w", "--where", help=_WHERE_HELP)


def _output_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--format", choices=FORMATS, default="table")
    p.add_argument("-o", "--output", help="write to this file instead of stdout")


def _selection(args: argparse.Namespace) -> Any:
    from loglake.explore.selection import Selection

    return Selection(
        namespaces=tuple(args.namespace),
        experiments=tuple(args.experiment),
        statuses=tuple(args.status),
        tags=tuple(args.tag),
        note=args.note,
        since=args.since,
        until=args.until,
        where=args.where,
    )


def _has_filters(args: argparse.Namespace) -> bool:
    return any(
        (
            args.namespace,
            args.experiment,
            args.status,
            args.tag,
            args.note,
            args.since,
            args.until,
            args.where,
        )
    )


def _open(args: argparse.Namespace) -> tuple[Any, Any]:
    from loglake.cli import load_cli_config
    from loglake.explore.session import open_lake

    cfg = load_cli_config(args)
    return cfg, open_lake(cfg)


def _limit(n: int) -> int | None:
    return None if n <= 0 else n


def _write(table: Any, args: argparse.Namespace) -> None:
    from loglake.query.output import write_result

    write_result(table, args.format, path=args.output)


def _hint_elsewhere(conn: Any, selection: Any) -> None:
    from loglake.explore.selection import elsewhere

    found = elsewhere(conn, selection)
    if found:
        where = ", ".join(f"{ns} ({n})" for ns, n in found.items())
        print(f"loglake: no runs match in that namespace; they match in: {where}", file=sys.stderr)


def cmd_runs(args: argparse.Namespace) -> int:
    from loglake.explore.listing import list_runs

    _, conn = _open(args)
    selection = _selection(args)
    result = list_runs(
        conn,
        selection,
        metrics=args.metric,
        params=args.param,
        sort=args.sort,
        limit=_limit(args.limit),
    )
    _write(result.table, args)
    if result.total == 0:
        _hint_elsewhere(conn, selection)
    elif result.table.num_rows < result.total and args.format == "table":
        print(
            f"loglake: showing {result.table.num_rows} of {result.total} runs (--limit 0 for all)",
            file=sys.stderr,
        )
    return ExitCode.OK


def cmd_show(args: argparse.Namespace) -> int:
    from loglake.explore.render import as_json, show_text
    from loglake.explore.show import show_run

    _, conn = _open(args)
    detail = show_run(conn, args.run)
    if args.format == "json":
        as_json(detail.as_dict(), sys.stdout)
    else:
        show_text(detail, sys.stdout)
    return ExitCode.OK


def cmd_compare(args: argparse.Namespace) -> int:
    from loglake.explore.compare import compare_runs
    from loglake.explore.render import as_json, compare_text
    from loglake.explore.selection import selected_ids

    _, conn = _open(args)
    refs = list(args.runs)
    if _has_filters(args):
        refs += [r for r in selected_ids(conn, _selection(args)) if r not in refs]
    if len(refs) < 2:
        raise LoglakeError(
            f"compare needs at least two runs (got {len(refs)})",
            fix="name runs, or select them, e.g. loglake compare -e my-sweep",
        )
    cmp = compare_runs(conn, refs)
    if args.format == "json":
        if args.output:
            with open(args.output, "w", encoding="utf-8") as fh:
                as_json(cmp.as_dict(), fh)
        else:
            as_json(cmp.as_dict(), sys.stdout)
    elif args.format == "csv":
        _write(cmp.per_run("last"), args)
    elif args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            compare_text(cmp, fh, show_all=args.all)
    else:
        compare_text(cmp, sys.stdout, show_all=args.all)
    return ExitCode.OK


def cmd_best(args: argparse.Namespace) -> int:
    from loglake.explore.best import best_runs

    _, conn = _open(args)
    selection = _selection(args)
    result = best_runs(conn, args.metric, selection, limit=_limit(args.limit))
    _write(result.table, args)
    if result.considered == 0:
        _hint_elsewhere(conn, selection)
    if args.format == "table":
        what = "Pareto front" if result.pareto else "best"
        print(
            f"loglake: {what} of {result.considered} runs with "
            + ", ".join(f"{o.label} ({o.goal})" for o in result.objectives),
            file=sys.stderr,
        )
    return ExitCode.OK


def cmd_tag(args: argparse.Namespace) -> int:
    from loglake.explore.annotate import TagError, parse_tags, tag_runs

    refs = [i for i in args.items if "=" not in i]
    specs = [i for i in args.items if "=" in i]
    if not refs or not specs:
        raise TagError("tag needs runs and key=value pairs", fix="loglake tag RUN owner=ana")
    cfg, conn = _open(args)
    ids = tag_runs(
        conn, cfg.lake, refs, parse_tags(specs), storage_options=cfg.storage_options or None
    )
    print(f"loglake: tagged {len(ids)} run(s)", file=sys.stderr)
    return ExitCode.OK


def cmd_note(args: argparse.Namespace) -> int:
    from loglake.explore.annotate import note_runs

    cfg, conn = _open(args)
    ids = note_runs(
        conn, cfg.lake, args.runs, args.text, storage_options=cfg.storage_options or None
    )
    print(f"loglake: noted {len(ids)} run(s)", file=sys.stderr)
    return ExitCode.OK


def cmd_datasets(args: argparse.Namespace) -> int:
    from loglake.explore.datasets import dataset_history, dataset_summary

    _, conn = _open(args)
    selection = _selection(args)
    if args.dataset:
        table = dataset_history(conn, args.dataset, selection)
    else:
        table = dataset_summary(conn, selection, changed_only=args.changed)
    _write(table, args)
    return ExitCode.OK


def cmd_plot(args: argparse.Namespace) -> int:
    from loglake.explore.plot import plot_curves

    _, conn = _open(args)
    ids = _runs_for(conn, args, args.metric[0])
    out = plot_curves(conn, ids, args.metric, args.output, title=args.title, log_y=args.log_y)
    print(f"loglake: wrote {out} ({len(ids)} run(s))", file=sys.stderr)
    return ExitCode.OK


def cmd_report(args: argparse.Namespace) -> int:
    from loglake.explore.report import build_report

    _, conn = _open(args)
    data = build_report(
        conn,
        args.output,
        _selection(args),
        metrics=args.metric,
        curves=args.curve,
        title=args.title,
        limit=args.limit,
    )
    print(f"loglake: wrote {args.output} ({len(data['runs'])} run(s))", file=sys.stderr)
    return ExitCode.OK


def _runs_for(conn: Any, args: argparse.Namespace, key: str) -> list[str]:
    """Named runs, else the selection's best ``--limit`` runs by ``key``."""
    from loglake.explore.best import best_runs
    from loglake.explore.resolve import resolve_runs

    if args.runs:
        return resolve_runs(conn, args.runs)
    result = best_runs(conn, [key], _selection(args), limit=_limit(args.limit))
    return result.table.column("run_id").to_pylist()
