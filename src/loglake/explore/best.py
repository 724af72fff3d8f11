"""``loglake best``: the best runs by one metric, or the Pareto front over several.

With several objectives no single run is "best"; the front is every run that no other run
beats on one objective without losing on another. A run missing any objective's value
cannot be placed and is left out (and counted).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from loglake.explore.objective import Objective, parse_objective
from loglake.explore.selection import Selection


@dataclass
class BestResult:
    objectives: list[Objective]
    table: pa.Table  # run identity + one column per objective, best first
    considered: int  # runs with a value for every objective
    pareto: bool


def best_runs(
    conn: duckdb.DuckDBPyConnection,
    metrics: Sequence[str | Objective],
    selection: Selection | None = None,
    *,
    limit: int | None = 10,
) -> BestResult:
    """Top ``limit`` runs for one objective; the whole Pareto front for several."""
    objectives = [m if isinstance(m, Objective) else parse_objective(m) for m in metrics]
    if not objectives:
        raise ValueError("best_runs needs at least one metric")
    q = (selection or Selection()).query()
    columns = [
        ("run_id", "r.run_id"),
        ("namespace", "r.namespace"),
        ("experiment", "r.experiment"),
        ("run", "r.run"),
        ("status", "r.status"),
    ]
    scores = [q.compile(o.node, "num") for o in objectives]
    columns += [(o.label, s) for o, s in zip(objectives, scores, strict=True)]
    q.filters += [f"NOT isnan(CAST({s} AS DOUBLE))" for s in scores]
    if len(objectives) == 1:
        s, goal = scores[0], objectives[0].goal
        order = [f"{s} {'DESC' if goal == 'max' else 'ASC'}", "r.run_id"]
        table = conn.sql(
            q.sql([*columns, ("_n", "count(*) OVER ()")], order, limit)
        ).to_arrow_table()
        considered = table.column("_n")[0].as_py() if table.num_rows else 0
        return BestResult(objectives, table.drop_columns(["_n"]), considered, pareto=False)
    table = conn.sql(q.sql(columns, order=["r.run_id"])).to_arrow_table()
    points = [
        tuple(v if o.goal == "max" else -v for o, v in zip(objectives, vals, strict=True))
        for vals in zip(*(table.column(o.label).to_pylist() for o in objectives), strict=True)
    ]
    front = pareto_front(points)
    # Present the front along the first objective, best first.
    front.sort(key=lambda i: (tuple(-x for x in points[i]), table.column("run_id")[i].as_py()))
    if limit is not None:
        front = front[:limit]
    return BestResult(objectives, table.take(front), table.num_rows, pareto=True)


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """``a`` is at least as good everywhere and better somewhere (larger is better)."""
    return all(x >= y for x, y in zip(a, b, strict=True)) and any(
        x > y for x, y in zip(a, b, strict=True)
    )


def pareto_front(points: Sequence[Sequence[float]]) -> list[int]:
    """Indices of the points no other point dominates (larger is better on every axis).

    Points are visited in descending lexicographic order: a point's dominator is never
    behind it there, so checking it against the front found so far is enough.
    """
    order = sorted(range(len(points)), key=lambda i: tuple(points[i]), reverse=True)
    front: list[int] = []
    for i in order:
        if not any(dominates(points[j], points[i]) for j in front):
            front.append(i)
    return sorted(front)
