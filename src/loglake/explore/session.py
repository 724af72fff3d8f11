"""One connection for the explore commands: the lake's views, derived metrics, summary cache.

Views read the table versions current when they were made (``refresh`` moves them on), so
the small, much-used ones — ``runs`` and ``metric_summary`` — are computed once per
connection into temporary tables: each later question joins a few thousand ready rows
instead of re-deriving runs from observations and summaries from partials.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from loglake.explore.derived import install_derived
from loglake.explore.summary_cache import install_summary_cache
from loglake.query.connect import connect


def open_lake(
    config: Any = None,
    lake: Any = None,
    *,
    summary_cache: bool | Path = True,
    pin: bool = True,
) -> duckdb.DuckDBPyConnection:
    """``connect`` to ``lake`` (default: the config's) with ``config.derived`` installed and
    ``metric_summary`` served from the per-file cache (``summary_cache``: False for the
    plain view, a path for another cache folder); ``pin`` materialises the small views."""
    if config is None:
        from loglake.config import load_config

        config = load_config()
    lake = lake if lake is not None else config.lake
    conn = connect(lake, config=config)
    derived = getattr(config, "derived", None) or {}
    install_derived(conn, derived)
    if summary_cache is not False:
        install_summary_cache(
            conn,
            lake,
            cache_dir=summary_cache if isinstance(summary_cache, Path) else None,
            storage_options=getattr(config, "storage_options", None) or None,
            derived=bool(derived),
        )
    if pin:
        pin_views(conn)
    return conn


PINNED = ("runs", "metric_summary")
MAX_PINNED_ROWS = 5_000_000  # beyond this a view stays a view: memory beats speed


def pin_views(conn: duckdb.DuckDBPyConnection, views: tuple[str, ...] = PINNED) -> None:
    """Replace each view by a view over a temporary table holding its current rows."""
    for view in views:
        rows = conn.execute(f"SELECT count(*) FROM {view}").fetchall()[0][0]
        if rows > MAX_PINNED_ROWS:
            continue
        conn.execute(f"CREATE OR REPLACE TEMP TABLE _pinned_{view} AS SELECT * FROM {view}")
        conn.execute(f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM _pinned_{view}")
