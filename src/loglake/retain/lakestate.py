"""What the lake says about each source: its latest run status and its latest archive row.

Read through deltalake (only the few columns needed) and grouped in DuckDB over Arrow, so a
lake on object storage needs nothing more than its storage options.
"""

from __future__ import annotations

from typing import Any

import duckdb
import pyarrow as pa

from loglake.lake.schema import SCHEMAS
from loglake.lake.tables import open_table

_RUN_COLUMNS = [
    "source_fp",
    "run_id",
    "parent_run_id",
    "namespace",
    "status",
    "bytes",
    "observed_at",
]


def _read(lake: str, name: str, columns: list[str], options: dict[str, str] | None) -> pa.Table:
    dt = open_table(lake, name, options)
    if dt is None:
        return SCHEMAS[name].empty_table().select(columns)
    present = set(dt.schema().to_arrow().names)
    table = dt.to_pyarrow_table(columns=[c for c in columns if c in present])
    for c in columns:
        if c not in table.column_names:
            table = table.append_column(c, pa.nulls(table.num_rows, SCHEMAS[name].field(c).type))
    return table.select(columns)


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> dict[str, dict[str, Any]]:
    cur = con.execute(sql)
    names = [d[0] for d in cur.description]
    return {row[0]: dict(zip(names, row, strict=True)) for row in cur.fetchall()}


def lake_state(
    lake: str, storage_options: dict[str, str] | None = None
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """(latest status per source_fp, latest ``logs`` row per source_fp)."""
    runs = _read(lake, "runs", _RUN_COLUMNS, storage_options)
    logs = _read(lake, "logs", SCHEMAS["logs"].names, storage_options)
    con = duckdb.connect()
    try:
        con.register("runs_in", runs)
        con.register("logs_in", logs)
        status = _rows(
            con,
            """
            SELECT source_fp,
                   arg_max(status, observed_at) AS status,
                   arg_max(bytes, observed_at) AS bytes,
                   arg_max(run_id, observed_at) AS run_id,
                   arg_max(namespace, observed_at) AS namespace
            FROM runs_in
            WHERE source_fp IS NOT NULL AND parent_run_id IS NULL
            GROUP BY source_fp
            """,
        )
        archived = _rows(
            con,
            """
            SELECT * FROM logs_in
            WHERE source_fp IS NOT NULL
            QUALIFY row_number() OVER (
                PARTITION BY source_fp
                ORDER BY (state = 'lost') DESC, version DESC, archived_at DESC
            ) = 1
            """,
        )
    finally:
        con.close()
    return status, archived
