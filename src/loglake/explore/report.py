"""``loglake report -o FILE``: one self-contained HTML page about a selection of runs.

The page holds its data as JSON and draws its charts with a small inline script into SVG:
a sortable table, metric curves, parameter-vs-metric scatters, a bar chart of the best
metric and parallel coordinates for sweeps. No CDN, no fonts, no network: it opens from a
laptop on a plane, or as an e-mail attachment.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import math
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb

from loglake.explore.history import metric_history
from loglake.explore.listing import list_runs
from loglake.explore.selection import Selection

MAX_CURVE_RUNS = 20  # curves of more runs than this are a hairball; the best ones are drawn
MAX_CURVE_POINTS = 300


def build_report(
    conn: duckdb.DuckDBPyConnection,
    path: str | Path,
    selection: Selection | None = None,
    *,
    metrics: Sequence[str] | None = None,
    curves: Sequence[str] | None = None,
    title: str = "loglake report",
    limit: int = 500,
) -> dict[str, Any]:
    """Write the page to ``path``; returns the data embedded in it."""
    data = report_data(conn, selection, metrics=metrics, curves=curves, title=title, limit=limit)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(data), encoding="utf-8")
    return data


def report_data(
    conn: duckdb.DuckDBPyConnection,
    selection: Selection | None = None,
    *,
    metrics: Sequence[str] | None = None,
    curves: Sequence[str] | None = None,
    title: str = "loglake report",
    limit: int = 500,
) -> dict[str, Any]:
    listing = list_runs(conn, selection, metrics=metrics, limit=limit, max_params=12)
    rows = listing.table.to_pylist()
    labels = _labels(rows)
    numeric = [
        k
        for k in listing.params
        if all(
            _num(r.get(_col(listing, k))) is not None
            for r in rows
            if r.get(_col(listing, k)) is not None
        )
    ]
    runs = []
    for row, label in zip(rows, labels, strict=True):
        runs.append(
            {
                "run_id": row["run_id"],
                "label": label,
                "namespace": row["namespace"],
                "experiment": row["experiment"],
                "status": row["status"],
                "start": row["start"].isoformat() if row["start"] else None,
                "duration_s": _clean(row["duration_s"]),
                "params": {k: _clean(row[_col(listing, k)]) for k in listing.params},
                "metrics": {o.label: _clean(row[o.label]) for o in listing.metrics},
            }
        )
    objectives = [{"label": o.label, "goal": o.goal} for o in listing.metrics]
    keys = list(curves) if curves is not None else _curve_keys(listing)
    return {
        "title": title,
        "generated": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "total": listing.total,
        "runs": runs,
        "params": listing.params,
        "numeric_params": numeric,
        "objectives": objectives,
        "primary": objectives[0]["label"] if objectives else None,
        "curves": _curves(conn, runs, objectives, keys),
    }


def render_html(data: dict[str, Any]) -> str:
    assets = resources.files("loglake.explore") / "report_assets"
    script = (assets / "report.js").read_text(encoding="utf-8")
    style = (assets / "report.css").read_text(encoding="utf-8")
    payload = json.dumps(data, allow_nan=False, default=str).replace("</", "<\\/")
    shown = len(data["runs"])
    summary = f"{shown} run{'s' if shown != 1 else ''}"
    if data["total"] > shown:
        summary += f" (of {data['total']} matching)"
    title = html.escape(data["title"])
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
<header><h1>{title}</h1><p>{html.escape(summary)} · generated {html.escape(data["generated"])} by loglake</p></header>
<section><h2>Runs</h2><div id="table" class="scroll"></div></section>
<section><h2>Metric curves</h2><div id="curves" class="grid"></div></section>
<section><h2>Parameters vs {html.escape(str(data["primary"] or "metric"))}</h2><div id="scatter" class="grid"></div></section>
<section><h2>Best runs</h2><div id="bars"></div></section>
<section><h2>Sweep overview</h2><div id="parallel" class="scroll"></div></section>
<script type="application/json" id="loglake-data">{payload}</script>
<script>{script}</script>
</body>
</html>
"""


def _curves(
    conn: duckdb.DuckDBPyConnection,
    runs: list[dict[str, Any]],
    objectives: list[dict[str, Any]],
    keys: list[str],
) -> dict[str, list[dict[str, Any]]]:
    if not keys or not runs:
        return {}
    chosen = runs
    if objectives and len(runs) > MAX_CURVE_RUNS:
        label, goal = objectives[0]["label"], objectives[0]["goal"]
        ranked = [r for r in runs if r["metrics"].get(label) is not None]
        ranked.sort(key=lambda r: r["metrics"][label], reverse=goal == "max")
        chosen = ranked
    chosen = chosen[:MAX_CURVE_RUNS]
    labels = {r["run_id"]: r["label"] for r in chosen}
    hist = metric_history(
        conn, [r["run_id"] for r in chosen], keys, max_points=MAX_CURVE_POINTS
    ).to_pydict()
    out: dict[str, dict[str, dict[str, Any]]] = {k: {} for k in keys}
    for rid, key, x, y in zip(hist["run_id"], hist["key"], hist["x"], hist["value"], strict=True):
        c = out[key].setdefault(rid, {"run_id": rid, "label": labels[rid], "x": [], "y": []})
        c["x"].append(_clean(x))
        c["y"].append(_clean(y))
    return {k: list(v.values()) for k, v in out.items() if v}


def _curve_keys(listing: Any) -> list[str]:
    """The keys behind the listed metrics (``max(val_accuracy)`` → ``val_accuracy``)."""
    from loglake.explore.expr import metric_refs

    keys: list[str] = []
    for o in listing.metrics:
        for m in metric_refs(o.node):
            if m.key not in keys:
                keys.append(m.key)
    return keys


def _col(listing: Any, key: str) -> str:
    names = listing.table.column_names
    return key if key in names else f"params.{key}"


def _labels(rows: list[dict[str, Any]]) -> list[str]:
    names = [r["run"] or r["run_id"] for r in rows]
    if len(set(names)) == len(names):
        return names
    return [f"{n}@{r['run_id'][:8]}" for n, r in zip(names, rows, strict=True)]


def _num(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        return float(v)
    return None


def _clean(v: Any) -> Any:
    """JSON-safe: NaN and infinities become null."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v
