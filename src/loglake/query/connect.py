"""A DuckDB connection with one view per lake table, reading the live Parquet files natively.

The views read each Delta table's current file list with ``read_parquet``; DuckDB never
downloads or loads an extension (no ``delta``, no ``httpfs``), so queries work offline and
on locked-down machines. Object-store lakes are read through fsspec, registered with DuckDB.

The file lists are fixed when the views are made: call ``refresh`` to see newer commits.
A view's SQL is cached by its file list (``cache_dir(lake, "views")``): working out the
columns of a table means reading the footer of every file, once per new Delta version.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from loglake.lake.schema import PARTITIONS, SCHEMAS
from loglake.lake.tables import DEFAULT_LAKE, cache_dir, is_remote, normalize_lake, table_files
from loglake.query.views import DERIVED

log = logging.getLogger(__name__)

VIEW_CACHE_VERSION = 2  # bump when _scan_sql writes different SQL for the same files

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
        from loglake.query.remote import register_filesystem  # fsspec: remote lakes only

        register_filesystem(conn, lake_uri, storage_options)
    views = cache_dir(lake_uri, "views")
    for name, schema in SCHEMAS.items():
        files = table_files(lake_uri, name, storage_options)
        select = _cached_scan_sql(conn, views, name, schema, files) if files else None
        conn.execute(
            f"CREATE OR REPLACE VIEW {RAW_VIEW_NAMES[name]} AS {select or _empty_sql(schema)}"
        )
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


def _cached_scan_sql(
    conn: duckdb.DuckDBPyConnection, folder: Path, name: str, schema: pa.Schema, files: list[str]
) -> str:
    """``_scan_sql``, from the cache when these very files were scanned before."""
    key = hashlib.sha256(
        json.dumps(
            [VIEW_CACHE_VERSION, duckdb.__version__, name, str(schema), PARTITIONS.get(name), files]
        ).encode()
    ).hexdigest()
    path = folder / f"{name}.json"
    try:
        cached = json.loads(path.read_text())
        if cached.get("key") == key:
            return str(cached["sql"])
    except (OSError, ValueError, AttributeError, KeyError):
        pass
    sql = _scan_sql(conn, name, schema, files)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps({"key": key, "sql": sql}))
        os.replace(tmp, path)
    except OSError as exc:  # a cache only
        log.debug("cannot cache the view of %s: %s", name, exc)
    return sql


def _scan_sql(
    conn: duckdb.DuckDBPyConnection, name: str, schema: pa.Schema, files: list[str]
) -> str:
    partitions = PARTITIONS.get(name, [])
    # Matching columns by name across files means reading every footer whenever the view is
    # bound; when all files have the same columns (no schema change since they were
    # written), the first file's footer tells the columns of all.
    options = [] if _same_columns(conn, files) else ["union_by_name = true"]
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


def _same_columns(conn: duckdb.DuckDBPyConnection, files: list[str]) -> bool:
    """True when every file has the same columns, of the same types, in the same order."""
    if len(files) < 2:
        return True
    count, distinct = conn.execute(
        "SELECT count(*), count(DISTINCT columns) FROM ("
        "  SELECT file_name, string_agg(name || ' ' || coalesce(duckdb_type, '?'), ', '"
        "         ORDER BY column_id) AS columns"
        "  FROM parquet_schema(?) WHERE column_id > 0 GROUP BY file_name)",
        [files],
    ).fetchall()[0]
    return count == len(files) and distinct == 1


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
