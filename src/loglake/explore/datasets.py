"""``loglake datasets``: each dataset the logs mention, who used it, and whether it changed.

A dataset is known by its path (or its name when no path was logged). When runs saw it with
different shapes (rows × columns) or fingerprints, it changed under them — the usual reason
a run cannot be reproduced — and ``history`` shows the first run that saw each version.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from loglake.explore.selection import Selection

_USES = """
WITH sel AS ({ids}),
uses AS (
    SELECT d.run_id, coalesce(d.path, d.name) AS dataset, any_value(d.name) AS name,
           any_value(d.rows) AS rows, any_value(d.cols) AS cols,
           any_value(d.fingerprint) AS fingerprint
    FROM datasets d WHERE d.run_id IN (SELECT run_id FROM sel)
      AND coalesce(d.path, d.name) IS NOT NULL
    GROUP BY d.run_id, coalesce(d.path, d.name)
)
SELECT u.*, r.namespace, r.experiment, r.run, r.status,
       coalesce(r.start_time, r.observed_at) AS seen_at,
       CASE WHEN u.rows IS NULL AND u.cols IS NULL THEN NULL
            ELSE concat(coalesce(CAST(u.rows AS VARCHAR), '?'), '×',
                        coalesce(CAST(u.cols AS VARCHAR), '?')) END AS shape
FROM uses u JOIN runs r USING (run_id)
"""


def dataset_summary(
    conn: duckdb.DuckDBPyConnection,
    selection: Selection | None = None,
    *,
    changed_only: bool = False,
) -> pa.Table:
    """One row per dataset: runs, first/last use, distinct shapes and fingerprints, changed."""
    ids = (selection or Selection()).query().sql([("run_id", "r.run_id")])
    sql = f"""
        SELECT dataset, any_value(name) AS name, count(DISTINCT run_id) AS runs,
               min(seen_at) AS first_seen, max(seen_at) AS last_seen,
               list_sort(list_distinct(list(shape))) AS shapes,
               list_sort(list_distinct(list(fingerprint))) AS fingerprints,
               count(DISTINCT shape) > 1 OR count(DISTINCT fingerprint) > 1 AS changed,
               list_sort(list_distinct(list(namespace))) AS namespaces
        FROM ({_USES.format(ids=ids)})
        GROUP BY dataset
        {"HAVING count(DISTINCT shape) > 1 OR count(DISTINCT fingerprint) > 1" if changed_only else ""}
        ORDER BY changed DESC, dataset
    """
    return conn.sql(sql).to_arrow_table()


def dataset_history(
    conn: duckdb.DuckDBPyConnection, dataset: str, selection: Selection | None = None
) -> pa.Table:
    """Every run that used ``dataset`` (a path, a name or a ``*`` pattern), oldest first,
    with ``changed`` true where its shape or fingerprint differs from the run before."""
    ids = (selection or Selection()).query().sql([("run_id", "r.run_id")])
    pattern = dataset.replace("'", "''")
    op = "GLOB" if any(c in dataset for c in "*?[") else "="
    sql = f"""
        SELECT dataset, run_id, namespace, experiment, run, status, seen_at, shape, fingerprint,
               coalesce(
                   (shape IS DISTINCT FROM lag(shape) OVER w
                    OR fingerprint IS DISTINCT FROM lag(fingerprint) OVER w)
                   AND lag(run_id) OVER w IS NOT NULL, FALSE) AS changed
        FROM ({_USES.format(ids=ids)})
        WHERE dataset {op} '{pattern}' OR name {op} '{pattern}'
        WINDOW w AS (PARTITION BY dataset ORDER BY seen_at, run_id)
        ORDER BY dataset, seen_at, run_id
    """
    return conn.sql(sql).to_arrow_table()
