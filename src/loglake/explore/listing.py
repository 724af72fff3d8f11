"""``loglake runs``: one compact row per run — who, when, how it ended, what varied, how good.

The columns adapt to the selection: parameters appear only when they differ between the
selected runs (a constant is noise in a table of a sweep), and the metrics shown are the
ones most runs logged, held-out ones first, each as its best value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa

from loglake.explore.expr import RUN_FIELDS, Metric, Param, parse
from loglake.explore.objective import Objective, is_eval_key, key_objective, parse_objective
from loglake.explore.selection import Selection
from loglake.explore.sqlgen import RunQuery

RUN_COLUMNS = (
    ("run_id", "r.run_id"),
    ("namespace", "r.namespace"),
    ("experiment", "r.experiment"),
    ("run", "r.run"),
    ("status", "r.status"),
    ("start", "r.start_time"),
    ("duration_s", "r.duration_s"),
)
DEFAULT_ORDER = ["r.start_time DESC NULLS LAST", "r.namespace", "r.experiment", "r.run", "r.run_id"]


@dataclass
class RunsTable:
    """The rows shown, how many runs matched in all, and which params and metrics are columns."""

    table: pa.Table
    total: int
    params: list[str] = field(default_factory=list)
    metrics: list[Objective] = field(default_factory=list)


@dataclass(frozen=True)
class ParamStats:
    key: str
    runs: int  # selected runs that have it
    distinct: int
    numeric: bool  # every value is a number


def list_runs(
    conn: duckdb.DuckDBPyConnection,
    selection: Selection | None = None,
    *,
    metrics: Sequence[str] | None = None,
    params: Sequence[str] | None = None,
    sort: Sequence[str] = (),
    limit: int | None = 100,
    max_params: int = 6,
    max_metrics: int = 3,
) -> RunsTable:
    """The selected runs as a table (see the module doc for the columns)."""
    selection = selection or Selection()
    ids_sql = selection.query().sql([("run_id", "r.run_id")])
    stats = param_stats(conn, ids_sql)
    if params is None:
        n_runs = _count(conn, ids_sql) if stats else 0
        shown = [s for s in stats if s.distinct > 1 or 0 < s.runs < n_runs]
        shown.sort(key=lambda s: (-s.runs, -s.distinct, s.key))
        params = [s.key for s in shown[:max_params]]
    by_key = {s.key: s for s in stats}
    objectives = (
        [parse_objective(m) for m in metrics]
        if metrics is not None
        else key_metrics(conn, ids_sql, max_metrics)
    )

    q = selection.query()
    columns = list(RUN_COLUMNS)
    taken = {name for name, _ in columns}
    for key in params:
        alias = q.param(key)
        numeric = key in by_key and by_key[key].numeric
        name = key if key not in taken and key not in RUN_FIELDS else f"params.{key}"
        columns.append((name, f"{alias}.value_num" if numeric else f"{alias}.value"))
        taken.add(name)
    for obj in objectives:
        columns.append((obj.label, q.compile(obj.node, "num")))
    columns.append(("_total", "count(*) OVER ()"))
    order = [*sort_terms(q, sort), *DEFAULT_ORDER]
    table = conn.sql(q.sql(columns, order=order, limit=limit)).to_arrow_table()
    total = table.column("_total")[0].as_py() if table.num_rows else 0
    if table.num_rows == 0 and limit != 0:
        total = _count(conn, ids_sql)
    return RunsTable(table.drop_columns(["_total"]), total, list(params), objectives)


def sort_terms(q: RunQuery, specs: Sequence[str]) -> list[str]:
    """``max(val_accuracy)``, ``-params.lr`` / ``params.lr:desc`` → ORDER BY terms."""
    terms = []
    for spec in specs:
        text, desc = spec.strip(), False
        if text.startswith("-"):
            text, desc = text[1:].strip(), True
        low = text.lower()
        for suffix, is_desc in ((":desc", True), (":asc", False)):
            if low.endswith(suffix):
                text, desc = text[: -len(suffix)].strip(), is_desc
        node = parse(text)
        way = "DESC" if desc else "ASC"
        if isinstance(node, Param):
            # Numbers in numeric order, then the values that are not numbers, as text.
            terms.append(f"{q.compile(node, 'num')} {way} NULLS LAST")
        terms.append(
            f"{q.compile(node, 'num' if isinstance(node, Metric) else None)} {way} NULLS LAST"
        )
    return terms


def param_stats(conn: duckdb.DuckDBPyConnection, ids_sql: str) -> list[ParamStats]:
    """Per param key among the selected runs: coverage, distinct values, numeric or not."""
    rows = conn.execute(
        f"SELECT key, count(*), count(DISTINCT value), count(value_num) = count(value) "
        f"FROM params_latest WHERE run_id IN (SELECT run_id FROM ({ids_sql})) GROUP BY key"
    ).fetchall()
    return [ParamStats(k, int(n), int(d), bool(num)) for k, n, d, num in rows]


def key_metrics(conn: duckdb.DuckDBPyConnection, ids_sql: str, limit: int) -> list[Objective]:
    """The metrics worth a column: logged by most runs, held-out ones first, best of each."""
    if limit <= 0:
        return []
    rows = conn.execute(
        "SELECT key, count(*) FROM metric_summary "
        f"WHERE run_id IN (SELECT run_id FROM ({ids_sql})) GROUP BY key"
    ).fetchall()
    if not rows:
        return []
    most = max(n for _, n in rows)
    rows.sort(key=lambda kn: (kn[1] * 2 < most, not is_eval_key(kn[0]), -kn[1], kn[0]))
    return [key_objective(k) for k, _ in rows[:limit]]


def _count(conn: duckdb.DuckDBPyConnection, ids_sql: str) -> int:
    return int(conn.execute(f"SELECT count(*) FROM ({ids_sql})").fetchall()[0][0])
