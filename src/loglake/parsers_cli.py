"""``loglake parsers list|test|new`` and ``loglake reindex``: the parser author's tools.

Thin wiring: the work happens in ``parse.registry``, ``parse.pipeline``, ``parse.scaffold``
and ``reindex``, which tests call directly.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loglake.errors import ExitCode, LoglakeError
from loglake.parse.base import Parser

AddConfig = Callable[[argparse.ArgumentParser], None]


class UsageError(LoglakeError):
    """A command given the wrong arguments."""

    exit_code = ExitCode.USAGE


class NoInputError(LoglakeError):
    """The file a command should read is not there."""

    exit_code = ExitCode.NO_INPUT


def register(sub: Any, add_config: AddConfig) -> None:
    """Add ``parsers`` (list, test, new) and ``reindex`` to the top-level sub-commands."""
    pa_ = sub.add_parser("parsers", help="list, test and create parsers")
    psub = pa_.add_subparsers(dest="parsers_command", metavar="ACTION")
    pa_.set_defaults(func=lambda _args: _usage(pa_))

    pl = psub.add_parser("list", help="installed parsers: name, version, origin, files they read")
    add_config(pl)
    pl.set_defaults(func=cmd_list)

    pt = psub.add_parser(
        "test",
        help="show what parsers extract from a log (or run their embedded tests)",
        description="Run parsers over FILE and print every record they extract, then the "
        "lines no parser extracted anything from. Without --parser, the parsers `loglake "
        "index` would choose for FILE (routes and auto-detection).",
    )
    pt.add_argument("file", nargs="?", help="a log file")
    pt.add_argument(
        "-p",
        "--parser",
        action="append",
        default=[],
        metavar="NAME|PATH",
        help="a parser name, or a parser file (*.toml, *.py) not yet in the config; repeatable",
    )
    pt.add_argument(
        "--embedded", action="store_true", help="run the parsers' own [[test]] blocks instead"
    )
    pt.add_argument("--json", action="store_true", help="records as JSON lines")
    pt.add_argument("--max-lines", type=int, default=200_000, help="read at most this many lines")
    pt.add_argument("--limit", type=int, default=500, help="print at most this many records")
    pt.add_argument(
        "--unmatched", type=int, default=20, help="print at most this many unmatched lines"
    )
    add_config(pt)
    pt.set_defaults(func=cmd_test)

    pn = psub.add_parser("new", help="create a declarative parser file whose test passes")
    pn.add_argument("name", help="parser name, e.g. team_a")
    pn.add_argument("--dir", default="parsers.d", help="folder to write NAME.toml in")
    pn.add_argument("--sample", help="a log of yours: lines that look like data become comments")
    pn.set_defaults(func=cmd_new)

    ri = sub.add_parser(
        "reindex",
        help="re-parse the logs a parser applies to and replace its rows",
        description="Re-read the logs a parser applies to, from their source, up to where "
        "they were indexed, and replace that parser's rows atomically (one commit per "
        "table). Run it after fixing or upgrading a parser.",
    )
    ri.add_argument("-p", "--parser", action="append", default=[], metavar="NAME")
    ri.add_argument(
        "--outdated",
        action="store_true",
        help="every installed parser whose rows in the lake come from another version",
    )
    ri.add_argument("--dry-run", action="store_true", help="re-parse and report, change nothing")
    ri.add_argument("--state-dir", help="checkpoint folder (default: <lake>/_loglake)")
    add_config(ri)
    ri.set_defaults(func=cmd_reindex)


def _usage(p: argparse.ArgumentParser) -> int:
    p.print_help(sys.stderr)
    return ExitCode.USAGE


def _config(args: argparse.Namespace) -> Any:
    from loglake.cli import load_cli_config

    return load_cli_config(args)


def _lenient_registry(cfg: Any) -> Any:
    """Every parser that loads; broken ones become warnings, routes are not enforced."""
    from loglake.parse.registry import load_registry

    return load_registry(
        cfg.parsers.dirs, disable=cfg.parsers.disable, regex_timeout=cfg.parsers.regex_timeout
    )


# -- parsers list -------------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    from loglake.reindex import parser_file_counts

    cfg = _config(args)
    reg = _lenient_registry(cfg)
    try:
        counts = parser_file_counts(cfg)
    except Exception as e:  # noqa: BLE001 - the lake is optional for listing parsers
        why = e.one_line() if isinstance(e, LoglakeError) else f"{type(e).__name__}: {e}"
        print(f"loglake: warning: cannot count files in the lake: {why}", file=sys.stderr)
        counts = {}
    rows = sorted(reg.entries.items(), key=lambda kv: (kv[1].parser.priority, kv[0]))
    table = [("NAME", "VERSION", "PRIORITY", "FILES", "ORIGIN")]
    for name, e in rows:
        table.append(
            (
                name,
                e.parser.version,
                str(e.parser.priority),
                files_cell(counts.get(name, {}), e.parser.version),
                e.origin,
            )
        )
    for name in sorted(set(counts) - set(reg.entries)):
        versions = ",".join(sorted(counts[name]))
        table.append((name, versions, "-", str(sum(counts[name].values())), "not installed"))
    _print_table(table)
    for err in reg.broken.values():
        print(f"loglake: warning: {err}", file=sys.stderr)
    return ExitCode.OK


def files_cell(versions: dict[str, int], current: str) -> str:
    """``12``, or ``12 (3 on v1: reindex)`` when some files were read by another version."""
    total = sum(versions.values())
    old = {v: n for v, n in versions.items() if v != current}
    if not old:
        return str(total)
    detail = ", ".join(f"{n} on v{v}" for v, n in sorted(old.items()))
    return f"{total} ({detail}: reindex)"


def _print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        cells = [c.ljust(w) for c, w in zip(r[:-1], widths, strict=False)]
        print("  ".join([*cells, r[-1]]).rstrip())


# -- parsers test -------------------------------------------------------------------------------


def _chosen(args: argparse.Namespace, cfg: Any) -> list[Parser] | None:
    """Parsers named by --parser (names or files); None when none were named."""
    from loglake.parse.registry import load_parser_path

    if not args.parser:
        return None
    reg = None
    chosen: list[Parser] = []
    for item in args.parser:
        if item.endswith((".toml", ".py")) or Path(item).is_file():
            chosen.extend(load_parser_path(item, regex_timeout=cfg.parsers.regex_timeout))
        else:
            reg = reg or _lenient_registry(cfg)
            chosen.append(reg.get(item))
    return chosen


def cmd_test(args: argparse.Namespace) -> int:
    cfg = _config(args)
    if args.embedded:
        return _embedded(args, cfg)
    if not args.file:
        raise UsageError(
            "give a log file to run the parsers on, or --embedded",
            fix="loglake parsers test train.log [--parser NAME|FILE]",
        )
    path = str(Path(args.file).resolve())
    if not Path(path).is_file():
        raise NoInputError(f"{args.file}: no such file", fix="check the path")
    parsers = _chosen(args, cfg)
    if parsers is None:
        parsers = _as_indexed(cfg, path)
    from loglake.parse.pipeline import emitted_records, run_file

    run = run_file(path, parsers, max_lines=args.max_lines, max_line=cfg.index.max_line_bytes)
    records = emitted_records(run.out)
    numbers = run.line_numbers()
    if args.json:
        for r in records:
            print(json.dumps({"line": numbers.get(r["offset"]), **r}, default=str))
        return ExitCode.OK
    _print_records(records, numbers, args.limit)
    _print_summary(run, records, numbers, args.unmatched)
    return ExitCode.OK


def _as_indexed(cfg: Any, path: str) -> list[Parser]:
    """The parsers ``loglake index`` would run on ``path``."""
    from loglake.index.discover import discover
    from loglake.parse.pipeline import probe
    from loglake.parse.registry import route_file
    from loglake.runs.identity import resolve

    reg = _lenient_registry(cfg)
    found, _ = discover([path], cfg)
    f = found[0]
    ident = resolve(path, root=f.root, template=f.source.template, namespace=f.source.namespace)
    ns = ident.namespace if ident else f.source.namespace
    routed, auto = route_file(cfg, f.source, path, f.root, ns)
    info, _ = probe(path, max_line=cfg.index.max_line_bytes)
    return reg.select(info, [n for n in routed if n in reg.entries], auto_detect=auto)


_FIELDS: dict[str, tuple[str, str]] = {
    # kind -> (field shown as KEY, field shown as VALUE)
    "metric": ("key", "value"),
    "param": ("key", "value"),
    "fact": ("key", "value"),
    "status": ("status", "reason"),
    "package": ("name", "version"),
    "dataset": ("path", "name"),
    "artifact": ("path", "kind"),
    "subrun": ("sub", "name"),
    "error": ("message", "line"),
}


def _cell(v: Any, width: int = 48) -> str:
    text = "" if v is None else (f"{v:g}" if isinstance(v, float) else str(v))
    return text if len(text) <= width else text[: width - 1] + "…"


def _print_records(records: list[dict[str, Any]], numbers: dict[int, int], limit: int) -> None:
    if not records:
        print("no records: no parser extracted anything from this file")
        return
    has_sub = any(r.get("sub") for r in records)
    head = ("LINE", "PARSER", "KIND", "KEY", "VALUE", "STEP", "EPOCH")
    rows = [(*head, "SUB") if has_sub else head]
    for r in records[:limit]:
        k, v = _FIELDS[r["kind"]]
        value = r.get(v)
        if r["kind"] == "status" and r.get("error"):
            value = r["error"]
        row = (
            str(numbers.get(r["offset"], "?")),
            r["parser"],
            r["kind"],
            _cell(r.get(k)),
            _cell(value),
            _cell(r.get("step")),
            _cell(r.get("epoch")),
        )
        rows.append((*row, _cell(r.get("sub"))) if has_sub else row)
    _print_table([(*r, "") for r in rows])
    if len(records) > limit:
        print(f"... {len(records) - limit} more record(s) (--limit, or --json for all)")


def _print_summary(
    run: Any, records: list[dict[str, Any]], numbers: dict[int, int], show: int
) -> None:
    print()
    by_parser: dict[str, Counter[str]] = {}
    for r in records:
        by_parser.setdefault(r["parser"], Counter())[r["kind"]] += 1
    idle: list[str] = []
    for p in run.parsers.parsers:
        label = f"{p.name}@{p.version}"
        kinds = by_parser.get(label, Counter())
        off = " (disabled: too many errors)" if run.parsers.health[p.name]["off"] else ""
        if not kinds and not off:
            idle.append(p.name)
            continue
        detail = ", ".join(f"{n} {k}(s)" for k, n in sorted(kinds.items())) or "nothing"
        print(f"{label}: {detail}{off}")
    if idle:
        print(f"ran, extracted nothing: {', '.join(idle)}")
    hit = {r["offset"] for r in records if r["kind"] != "error"}
    unmatched = [(i, t) for i, (o, t) in enumerate(zip(run.offsets, run.texts)) if o not in hit]
    with_digits = [(i, t) for i, t in unmatched if any(c.isdigit() for c in t)]
    more = " (stopped at --max-lines)" if run.truncated else ""
    print(
        f"{len(run.texts) - len(unmatched)} of {len(run.texts)} line(s) gave records{more}; "
        f"{len(unmatched)} matched no rule, {len(with_digits)} of them with numbers in them:"
    )
    for i, text in with_digits[:show]:
        print(f"  {i + 1:>6}  {_cell(text, 110)}")
    if len(with_digits) > show:
        print(f"  ... {len(with_digits) - show} more (--unmatched N)")


def _embedded(args: argparse.Namespace, cfg: Any) -> int:
    from loglake.parse.registry import embedded_test_failures

    parsers = _chosen(args, cfg)
    if parsers is None:
        parsers = [e.parser for e in _lenient_registry(cfg).entries.values()]
    results = embedded_test_failures(parsers)
    failed = 0
    for p in sorted(parsers, key=lambda p: p.name):
        if p.name not in results:
            print(f"--    {p.name}@{p.version}: no embedded tests")
            continue
        fails = results[p.name]
        n = len(getattr(getattr(p, "spec", None), "test", ()) or ())
        if fails:
            failed += 1
            print(f"FAIL  {p.name}@{p.version}: {len(fails)} of {n} test(s) failed")
            for f in fails:
                print("      " + str(f).replace("\n", "\n      "))
        else:
            print(f"ok    {p.name}@{p.version}: {n} test(s) passed")
    return ExitCode.PARTIAL if failed else ExitCode.OK


# -- parsers new --------------------------------------------------------------------------------


def cmd_new(args: argparse.Namespace) -> int:
    from loglake.parse.scaffold import next_steps, scaffold_parser

    path = scaffold_parser(args.name, args.dir, sample=args.sample)
    print("\n".join(next_steps(path, args.name)))
    return ExitCode.OK


# -- reindex ------------------------------------------------------------------------------------


def cmd_reindex(args: argparse.Namespace) -> int:
    from loglake.parse.registry import registry_for
    from loglake.reindex import outdated_parsers, reindex

    cfg = _config(args)
    if args.state_dir:
        cfg.state_dir = args.state_dir
    names = list(args.parser)
    if args.outdated:
        names += outdated_parsers(cfg, registry_for(cfg))
        if not names:
            print("loglake: every parser's rows come from its installed version", file=sys.stderr)
            return ExitCode.OK
    if not names:
        raise UsageError(
            "name the parser to re-parse with",
            fix="loglake reindex --parser NAME (see `loglake parsers list`), or --outdated",
        )
    tty = sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        if tty:
            print(f"\rre-parsing {done}/{total} file(s)", end="", file=sys.stderr, flush=True)

    report = reindex(cfg, names, dry_run=args.dry_run, progress=progress)
    if tty:
        print(file=sys.stderr)
    for line in report.lines():
        print(line)
    for line in report.failures:
        print(f"loglake: error: {line}", file=sys.stderr)
    return ExitCode.PARTIAL if report.failures or report.missing else ExitCode.OK
