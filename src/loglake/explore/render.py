"""Text for people: ``show`` and ``compare`` as titled sections of aligned tables.

Tables go through ``query.output.write_result`` (rich on a terminal, plain otherwise), so
every command looks alike; programs ask for ``--format json`` instead.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import IO, Any

import pyarrow as pa

from loglake.explore.compare import Comparison
from loglake.explore.show import RunDetail
from loglake.query.output import write_result

SIDE_BY_SIDE_MAX = 6  # more runs than this are shown as rows, not columns
_RUN_FIELDS = (
    "run_id",
    "namespace",
    "experiment",
    "run",
    "parent_run_id",
    "status",
    "status_reason",
    "error",
    "start_time",
    "end_time",
    "duration_s",
    "framework",
    "command",
    "git_commit",
    "git_branch",
    "host",
    "user",
    "exit_code",
    "ranks",
    "lines",
    "bytes",
    "observed_at",
)


def heading(out: IO[str], title: str) -> None:
    out.write(f"\n{title}\n")


def pairs(out: IO[str], items: list[tuple[str, Any]]) -> None:
    items = [(k, v) for k, v in items if v not in (None, "", [], {})]
    if not items:
        out.write("  (none)\n")
        return
    width = max(len(k) for k, _ in items)
    for k, v in items:
        out.write(f"  {k:<{width}}  {_text(v)}\n")


def table(out: IO[str], t: pa.Table) -> None:
    if t.num_rows == 0:
        out.write("  (none)\n")
        return
    out.flush()
    write_result(t, "table", out=out)


def show_text(d: RunDetail, out: IO[str]) -> None:
    run = d.run
    name = "/".join(str(run[k]) for k in ("namespace", "experiment", "run") if run.get(k))
    out.write(f"run {name or run['run_id']}\n")
    pairs(out, [(k, run.get(k)) for k in _RUN_FIELDS])
    if d.facts:
        heading(out, "facts")
        pairs(out, sorted(d.facts.items()))
    heading(out, f"params ({len(d.params)})")
    pairs(out, d.params)
    heading(out, "metrics")
    table(out, d.metrics if d.metrics is not None else pa.table({}))
    if d.tags or d.notes:
        heading(out, "tags and notes")
        pairs(out, sorted(d.tags.items()))
        for n in d.notes:
            out.write(f"  note {_text(n['created_at'])} {n['author'] or ''}: {n['text']}\n")
    for title, rows in (("packages", d.packages), ("datasets", d.datasets)):
        if rows:
            heading(out, title)
            if title == "packages":
                pairs(out, rows)
            else:
                table(out, pa.Table.from_pylist(rows))
    if d.artifacts:
        heading(out, "artifacts")
        table(out, pa.Table.from_pylist(d.artifacts))
    heading(out, "sources")
    if d.files:
        table(out, pa.Table.from_pylist(d.files))
    else:
        pairs(out, [("files", run.get("sources"))])
    heading(out, "archive")
    if d.archive:
        table(out, pa.Table.from_pylist(d.archive))
    else:
        out.write("  not archived (no archive entry for these sources)\n")
    if d.problems:
        heading(out, "reading problems")
        pairs(out, sorted(d.problems.items()))


def compare_text(c: Comparison, out: IO[str], *, show_all: bool = False) -> None:
    n = len(c.runs)
    same = [p for p in c.params if not p.differs]
    if n <= SIDE_BY_SIDE_MAX:
        heading(out, f"runs ({n})")
        table(out, pa.Table.from_pylist(c.runs))
        shown = c.params if show_all else c.differing_params()
        heading(out, f"params ({len(c.differing_params())} differ, ≠ marks them)")
        table(out, _marked(c.side_by_side("params"), shown))
        if same and not show_all:
            out.write(f"  same in all: {_inline(same)}\n")
        heading(out, "metrics (last value; best = best run by min/max)")
        table(out, c.metrics_side_by_side("last"))
    else:
        heading(out, f"{n} runs: differing params and last metric values")
        table(out, c.per_run("last"))
        if same:
            out.write(f"\n  params same in all {n} runs: {_inline(same)}\n")
    for title, rows in (("packages", c.packages), ("datasets", c.datasets)):
        differing = [r for r in rows if r.differs]
        if differing and n <= SIDE_BY_SIDE_MAX:
            heading(out, f"{title} that differ")
            table(out, _marked(c.side_by_side(title), differing))
        elif differing:
            heading(out, f"{title} that differ")
            for r in differing:
                counts: dict[str, int] = {}
                for v in r.values:
                    counts[str(v)] = counts.get(str(v), 0) + 1
                out.write(
                    f"  {r.key}: " + ", ".join(f"{v} ({k} runs)" for v, k in counts.items()) + "\n"
                )
        elif rows:
            out.write(f"\n{title}: same in all runs\n")


def as_json(value: Any, out: IO[str]) -> None:
    """Pretty JSON; NaN and infinities (a diverged loss) become null, which JSON can carry."""
    json.dump(_finite(value), out, default=_json_default, indent=2, allow_nan=False)
    out.write("\n")


def _finite(v: Any) -> Any:
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_finite(x) for x in v]
    return v


def _json_default(v: Any) -> Any:
    if isinstance(v, dt.datetime | dt.date):
        return v.isoformat()
    return str(v)


def _marked(t: pa.Table, keep: list[Any]) -> pa.Table:
    keys = {r.key for r in keep}
    rows = [r for r in t.to_pylist() if r["key"] in keys]
    for r in rows:
        r["key"] = ("≠ " if r.pop("differs") else "  ") + r["key"]
    return pa.Table.from_pylist(rows) if rows else pa.table({})


def _inline(rows: list[Any]) -> str:
    return ", ".join(f"{r.key}={_text(r.values[0])}" for r in rows)


def _text(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.6g}"
    if isinstance(v, dt.datetime):
        return v.isoformat(sep=" ", timespec="seconds")
    if isinstance(v, list):
        return ", ".join(_text(x) for x in v)
    return str(v)
