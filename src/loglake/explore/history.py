"""Metric histories (every point of some keys of some runs), for notebooks, plots and reports.

Points come in the metric_summary order (step, else epoch, else position in the log), with
``x``: the step, else the epoch, else the point's index — one axis every curve can share.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from loglake.explore.sqlgen import POINT_ORDER, lit


def metric_history(
    conn: duckdb.DuckDBPyConnection,
    run_ids: Sequence[str],
    keys: Sequence[str] | None = None,
    *,
    max_points: int | None = None,
) -> pa.Table:
    """Columns run_id, key, step, epoch, x, value, ts; ``max_points`` thins each curve
    evenly (the first and last points are always kept)."""
    if not run_ids:
        return _empty()
    cond = f"run_id IN ({', '.join(lit(r) for r in run_ids)})"
    if keys:
        cond += f" AND key IN ({', '.join(lit(k) for k in keys)})"
    if not max_points:
        return _with_x(
            conn.sql(
                f"SELECT run_id, key, step, epoch, value, ts FROM metrics WHERE {cond} "
                f"ORDER BY run_id, key, {POINT_ORDER}"
            ).to_arrow_table()
        )
    thin = ""
    if max_points:
        thin = (
            f"WHERE _n <= {int(max_points)} OR _i = _n - 1 "
            f"OR _i % CAST(ceil(_n / {int(max_points)}) AS BIGINT) = 0"
        )
    sql = f"""
        SELECT run_id, key, step, epoch,
               coalesce(CAST(step AS DOUBLE), epoch, CAST(_i AS DOUBLE)) AS x, value, ts
        FROM (
            SELECT *, row_number() OVER (PARTITION BY run_id, key ORDER BY _o) - 1 AS _i,
                   count(*) OVER (PARTITION BY run_id, key) AS _n
            FROM (SELECT run_id, key, step, epoch, value, ts, {POINT_ORDER} AS _o
                  FROM metrics WHERE {cond})
        )
        {thin}
        ORDER BY run_id, key, _i
    """
    return conn.sql(sql).to_arrow_table()


def _with_x(table: pa.Table) -> pa.Table:
    """Add ``x``: the step, else the epoch, else the point's index within its curve."""
    x = pc.coalesce(pc.cast(table.column("step"), pa.float64()), table.column("epoch"))
    if x.null_count:
        runs, keys = table.column("run_id").to_pylist(), table.column("key").to_pylist()
        values = x.to_pylist()
        index, previous = 0, None
        for i, curve in enumerate(zip(runs, keys, strict=True)):
            index = index + 1 if curve == previous else 0
            previous = curve
            if values[i] is None:
                values[i] = float(index)
        x = pa.chunked_array([pa.array(values, pa.float64())])
    return table.add_column(4, "x", x)


def _empty() -> pa.Table:
    return pa.table(
        {
            "run_id": pa.array([], pa.string()),
            "key": pa.array([], pa.string()),
            "step": pa.array([], pa.int64()),
            "epoch": pa.array([], pa.float64()),
            "x": pa.array([], pa.float64()),
            "value": pa.array([], pa.float64()),
            "ts": pa.array([], pa.timestamp("us", tz="UTC")),
        }
    )
