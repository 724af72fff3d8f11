"""A DuckDB connection with one view per lake table, reading the live Parquet files natively.

The views read each Delta table's current file list with ``read_parquet``; DuckDB never
downloads or loads an extension (no ``delta``, no ``httpfs``), so queries work offline and
on locked-down machines. Object-store lakes are read through fsspec, registered with DuckDB.

The file lists are fixed when the views are made: call ``refresh`` to see newer commits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from loglake.lake.schema import PARTITIONS, SCHEMAS
from loglake.lake.tables import DEFAULT_LAKE, is_remote, normalize_lake, table_files
from loglake.query.remote import register_filesystem
from loglake.query.views import DERIVED

# Raw tables get a view of their own name, except runs: its rows are observations, and
# `runs` is the one-row-per-run view built from them.
RAW_VIEW_NAMES = {name: ("runs_log" if name == "runs" else name) for name in SCHEMAS}

_DUCKDB_CONFIG = {
    # Never fetch or load an extension behind the user's back.
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
}


def connect(
    lake: str | Path | None = None,
    *,
    config: Any = None,
    storage_options: dict[str, str] | None = None,
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the lake's views (``runs``, ``metrics``, ...).

    ``lake`` defaults to the config's lake, else ``./lake``. Timestamps are shown in UTC.
    """
    lake, storage_options = _resolve(lake, config, storage_options)
    conn = duckdb.connect(config=dict(_DUCKDB_CONFIG))
    conn.execute("SET TimeZone = 'UTC'")
    # Footers are re-read by every query otherwise; the files of a Delta version never change.
    conn.execute("SET parquet_metadata_cache = true")
    refresh(conn, lake, storage_options=storage_options)
    derived = getattr(config, "derived", None)
    if derived:
        from loglake.explore.derived import install_derived

        install_derived(conn, derived)
    return conn


def refresh(
    conn: duckdb.DuckDBPyConnection,
    lake: str | Path = DEFAULT_LAKE,
    *,
    storage_options: dict[str, str] | None = None,
) -> None:
    """(Re)create every view over the tables' current versions."""
    lake_uri = normalize_lake(lake)
    if is_remote(lake_uri):
        register_filesystem(conn, lake_uri, storage_options)
    for name, schema in SCHEMAS.items():
        files = table_files(lake_uri, name, storage_options)
        select = _scan_sql(conn, name, schema, files) if files else _empty_sql(schema)
        conn.execute(f"CREATE OR REPLACE VIEW {RAW_VIEW_NAMES[name]} AS {select}")
    for sql in DERIVED:
        conn.execute(sql)


def _resolve(
    lake: str | Path | None, config: Any, storage_options: dict[str, str] | None
) -> tuple[str | Path, dict[str, str] | None]:
    """Explicit arguments win over the config object (``lake``, ``storage_options``)."""
    if config is not None:
        if lake is None:
            lake = getattr(config, "lake", None)
        if storage_options is None:
            storage_options = getattr(config, "storage_options", None) or None
    return (lake if lake is not None else DEFAULT_LAKE), storage_options


def _scan_sql(
    conn: duckdb.DuckDBPyConnection, name: str, schema: pa.Schema, files: list[str]
) -> str:
    partitions = PARTITIONS.get(name, [])
    options = ["union_by_name = true"]
    if any(pa.types.is_floating(f.type) for f in schema):
        # Parquet min/max exclude NaN; without this DuckDB folds isnan(value) to false
        # from the statistics and loses diverged-loss points (duckdb issue #25521).
        options.append("can_have_nan = true")
    if partitions:
        hive_types = ", ".join(f"'{p}': '{duck_type(schema.field(p).type)}'" for p in partitions)
        options += ["hive_partitioning = true", f"hive_types = {{{hive_types}}}"]
    else:
        # A `key=value` directory in the lake's own path must not become a column.
        options.append("hive_partitioning = false")
    source = f"read_parquet([{', '.join(_quote(f) for f in files)}], {', '.join(options)})"
    # Files written before a column was added lack it; files may hold columns a newer
    # loglake wrote. Project to exactly this schema either way.
    found = {row[0]: row[1] for row in conn.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
    columns = []
    for field in schema:
        want = duck_type(field.type)
        if field.name not in found:
            columns.append(f'CAST(NULL AS {want}) AS "{field.name}"')
        elif found[field.name] != want:
            columns.append(f'CAST("{field.name}" AS {want}) AS "{field.name}"')
        else:
            columns.append(f'"{field.name}"')
    return f"SELECT {', '.join(columns)} FROM {source}"


def _empty_sql(schema: pa.Schema) -> str:
    columns = ", ".join(f'CAST(NULL AS {duck_type(f.type)}) AS "{f.name}"' for f in schema)
    return f"SELECT {columns} WHERE false"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def duck_type(arrow_type: pa.DataType) -> str:
    """The DuckDB type a lake column of ``arrow_type`` reads as."""
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "VARCHAR"
    if pa.types.is_timestamp(arrow_type):
        return "TIMESTAMP WITH TIME ZONE" if arrow_type.tz else "TIMESTAMP"
    simple = {
        pa.int64(): "BIGINT",
        pa.int32(): "INTEGER",
        pa.float64(): "DOUBLE",
        pa.float32(): "FLOAT",
        pa.bool_(): "BOOLEAN",
        pa.date32(): "DATE",
    }
    if arrow_type in simple:
        return simple[arrow_type]
    raise TypeError(f"no DuckDB type for lake column type {arrow_type}")
