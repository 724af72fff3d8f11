"""One connection for the explore commands: the lake's views, derived metrics, summary cache.

Views read the table versions current when they were made (``refresh`` moves them on), so
the small, much-used ones — ``runs``, ``metric_summary`` and ``params_latest`` — are computed
once per connection into temporary tables: each later question joins ready rows instead of
re-deriving runs from observations, summaries from partials and params from every edit.

Their rows are also kept on disk (``cache_dir(lake, "pinned")``), named by a digest of the
SQL that makes them — which spells out every data file read — so a later process points the
views at those files (reading only what a question needs) instead of computing them again
(a second or more at 50,000 runs); a new Delta version, derived metric or view change
simply names another file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from pathlib import Path
from typing import Any

import duckdb

from loglake.explore.derived import install_derived
from loglake.explore.sqlgen import lit
from loglake.explore.summary_cache import install_summary_cache
from loglake.lake.tables import cache_dir
from loglake.query.connect import connect

log = logging.getLogger(__name__)

PINNED = ("runs", "metric_summary", "params_latest")
MAX_PINNED_ROWS = 5_000_000  # beyond this a view stays a view: memory beats speed
PIN_CACHE_VERSION = 1  # of the pinned files' layout; part of the digest
# A connection reads its pinned files for as long as it lives: like vacuum's retention, a
# file is removed after a week without being opened. A lake that changes all day names new
# files all day, so past the KEEP_PINNED most recently opened ones, a day unused is enough.
STALE_SECONDS = 7 * 86400
KEEP_PINNED = 16
BUSY_STALE_SECONDS = 86400
# Rows of the pinned files are ordered so a key filter skips most row groups.
_FILE_ORDER = {"metric_summary": "key, run_id", "params_latest": "key, run_id", "runs": "run_id"}


def open_lake(
    config: Any = None,
    lake: Any = None,
    *,
    summary_cache: bool | Path = True,
    pin: bool = True,
    pin_cache: bool | Path = True,
) -> duckdb.DuckDBPyConnection:
    """``connect`` to ``lake`` (default: the config's) with ``config.derived`` installed and
    ``metric_summary`` served from the per-file cache (``summary_cache``: False for the
    plain view, a path for another cache folder); ``pin`` materialises the small views,
    loading them from ``pin_cache`` (a folder, or False to always compute them)."""
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
        folder = None
        if pin_cache is not False:
            folder = pin_cache if isinstance(pin_cache, Path) else cache_dir(lake, "pinned")
        pin_views(conn, cache=folder)
    return conn


def pin_views(
    conn: duckdb.DuckDBPyConnection,
    views: tuple[str, ...] = PINNED,
    *,
    cache: Path | None = None,
) -> None:
    """Replace each view by one over its current rows: a file in ``cache`` when a process
    computed the same rows before, else a temporary table (then also saved to ``cache``)."""
    definitions = _view_sql(conn)
    for view in views:
        if view not in definitions or "_pinned_" in definitions[view]:
            continue  # pinned already; its SQL no longer names the files it came from
        table = f"_pinned_{view}"
        path = None
        if cache is not None:
            path = cache / f"{table}-{_digest(view, definitions)}.parquet"
            if _use_file(conn, view, path):
                continue
        # One pass, bounded: a view too big to hold stays a view.
        conn.execute(
            f"CREATE OR REPLACE TEMP TABLE {table} AS "
            f"SELECT * FROM {view} LIMIT {MAX_PINNED_ROWS + 1}"
        )
        if conn.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0] > MAX_PINNED_ROWS:
            conn.execute(f"DROP TABLE {table}")
            continue
        conn.execute(f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM {table}")
        if path is not None:
            _save(conn, table, _FILE_ORDER.get(view), path)


def _view_sql(conn: duckdb.DuckDBPyConnection) -> dict[str, str]:
    rows = conn.execute("SELECT view_name, sql FROM duckdb_views() WHERE NOT internal").fetchall()
    return {name: sql or "" for name, sql in rows}


def _digest(view: str, definitions: dict[str, str]) -> str:
    """A digest of ``view``'s SQL and of every view it reads, to the raw views' file lists."""
    seen: set[str] = set()
    todo = [view]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", definitions[name]))
        todo += [other for other in definitions if other in words and other not in seen]
    text = "\n".join(f"{n}\n{definitions[n]}" for n in sorted(seen))
    return hashlib.sha256(f"{PIN_CACHE_VERSION}\n{text}".encode()).hexdigest()[:32]


def _use_file(conn: duckdb.DuckDBPyConnection, view: str, path: Path) -> bool:
    """Point ``view`` at ``path``: read where needed, not loaded whole into memory."""
    try:
        os.utime(path)  # in use: not stale
        conn.execute(
            f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM read_parquet({lit(str(path))})"
        )
    except (OSError, duckdb.Error) as exc:
        if not isinstance(exc, FileNotFoundError):
            log.info("cannot read pinned rows from %s: %s", path, exc)
        return False
    return True


def _save(conn: duckdb.DuckDBPyConnection, table: str, order: str | None, path: Path) -> None:
    """Write ``table`` to ``path`` atomically; drop files of this view unused for long."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    query = f"SELECT * FROM {table}" + (f" ORDER BY {order}" if order else "")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn.execute(
            f"COPY ({query}) TO {lit(str(tmp))} "
            "(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 16384)"
        )
        os.replace(tmp, path)
    except (OSError, duckdb.Error) as exc:  # a cache only
        log.info("cannot keep pinned rows in %s: %s", path, exc)
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        return
    _prune(path, table)


def _prune(path: Path, table: str) -> None:
    now = time.time()
    aged = []
    for other in path.parent.glob(f"{table}-*.parquet"):
        try:
            aged.append((now - other.stat().st_mtime, other))
        except OSError:
            pass
    for rank, (age, other) in enumerate(sorted(aged)):
        limit = STALE_SECONDS if rank < KEEP_PINNED else BUSY_STALE_SECONDS
        if other != path and age > limit:
            try:
                other.unlink()
            except OSError:
                pass
