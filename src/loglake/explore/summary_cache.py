"""Per-file metric summaries, cached on local disk: ``metric_summary`` without a full scan.

A lake's Parquet files never change once written (Delta adds and removes whole files), so
the per-(run, key) partial summary of one file — first, last, min, max, count, last step —
is computed once and kept, named by the file's URI. The ``metric_summary`` view then
combines the partials of the table's live files (a few rows per run and key) instead of
aggregating every point. New files get partials on the next ``install_summary_cache``;
files compacted away simply drop out of the list. Derived metrics (not in any file) are
summarised from ``metrics_derived`` on the fly.

The results equal the plain view's (tests compare both); the cache is an optimisation
only: when its folder cannot be written the plain view stays in place.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from pathlib import Path

import duckdb

from loglake.explore.sqlgen import POINT_ORDER, lit
from loglake.lake.tables import cache_dir as lake_cache_dir
from loglake.lake.tables import normalize_lake, table_files

log = logging.getLogger(__name__)

VERSION = 1  # of the partial files' layout; part of each file name
STALE_SECONDS = 7 * 86400  # partials of files no longer in the table are removed after this

_POINTS = f"""
    SELECT run_id, key, namespace, value, step, {POINT_ORDER} AS _o,
           coalesce(CAST(step AS DOUBLE), epoch) AS _step,
           CASE WHEN isnan(value) THEN NULL ELSE value END AS _n
    FROM {{source}}
"""

_PARTIAL = f"""
SELECT run_id, key, any_value(namespace) AS namespace,
       arg_min(value, _o) AS first_v, min(_o) AS first_o,
       arg_max(value, _o) AS last_v, max(_o) AS last_o,
       min(_n) AS mn, max(_n) AS mx,
       arg_min_null(_step, _n) AS step_of_min, arg_max_null(_step, _n) AS step_of_max,
       count(*) AS n, max(step) AS last_step
FROM ({_POINTS})
GROUP BY run_id, key
"""

_COMBINE = """
SELECT run_id, key, any_value(namespace) AS namespace,
       arg_min(first_v, first_o) AS first, arg_max(last_v, last_o) AS last,
       min(mn) AS min, max(mx) AS max,
       arg_min_null(step_of_min, mn) AS step_of_min, arg_max_null(step_of_max, mx) AS step_of_max,
       CAST(sum(n) AS BIGINT) AS count, max(last_step) AS last_step
FROM {source}
GROUP BY run_id, key
"""


def default_cache_dir(lake: str | Path) -> Path:
    """``$LOGLAKE_CACHE_DIR``; else beside a local, writable lake (``_loglake/cache``);
    else ``$XDG_CACHE_HOME/loglake`` — one folder per lake."""
    return lake_cache_dir(lake, "summaries")


def install_summary_cache(
    conn: duckdb.DuckDBPyConnection,
    lake: str | Path,
    *,
    cache_dir: Path | None = None,
    storage_options: dict[str, str] | None = None,
    derived: bool = False,
) -> bool:
    """Point ``metric_summary`` at cached partials; False (plain view kept) if impossible."""
    folder = cache_dir or default_cache_dir(lake)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        log.info("no metric summary cache (%s): %s", folder, exc)
        return False
    files = table_files(normalize_lake(lake), "metrics", storage_options)
    partials = []
    for uri in files:
        path = folder / f"{hashlib.sha256(uri.encode()).hexdigest()[:32]}.v{VERSION}.parquet"
        if not path.exists():
            try:
                _build(conn, uri, path)
            except (OSError, duckdb.Error) as exc:
                log.info("no metric summary cache: cannot summarise %s: %s", uri, exc)
                return False
        partials.append(str(path))
    _prune(folder, set(partials))
    source = (
        f"read_parquet([{', '.join(lit(p) for p in partials)}])"
        if partials
        else f"({_empty_partials()})"
    )
    sql = _COMBINE.format(source=source)
    if derived:
        derived_partials = _PARTIAL.format(source="metrics_derived")
        sql += " UNION ALL " + _COMBINE.format(source=f"({derived_partials})")
    conn.execute(f"CREATE OR REPLACE VIEW metric_summary AS {sql}")
    return True


def _build(conn: duckdb.DuckDBPyConnection, uri: str, path: Path) -> None:
    """Summarise one data file into ``path``, atomically (a torn file is never used)."""
    source = (
        f"read_parquet({lit(uri)}, hive_partitioning = true, "
        "hive_types = {'namespace': 'VARCHAR'}, can_have_nan = true)"
    )
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    conn.execute(
        f"COPY ({_PARTIAL.format(source=source)}) TO {lit(str(tmp))} "
        "(FORMAT parquet, COMPRESSION zstd)"
    )
    os.replace(tmp, path)


def _prune(folder: Path, keep: set[str]) -> None:
    now = time.time()
    for p in folder.glob("*.parquet"):
        try:
            if str(p) not in keep and now - p.stat().st_mtime > STALE_SECONDS:
                p.unlink()
        except OSError:
            pass


def _empty_partials() -> str:
    return (
        "SELECT NULL::VARCHAR AS run_id, NULL::VARCHAR AS key, NULL::VARCHAR AS namespace, "
        "NULL::DOUBLE AS first_v, NULL::BIGINT AS first_o, NULL::DOUBLE AS last_v, "
        "NULL::BIGINT AS last_o, NULL::DOUBLE AS mn, NULL::DOUBLE AS mx, "
        "NULL::DOUBLE AS step_of_min, NULL::DOUBLE AS step_of_max, NULL::BIGINT AS n, "
        "NULL::BIGINT AS last_step WHERE false"
    )
