"""Notebook helpers: ``loglake.runs(...)`` and ``loglake.history(...)`` as pandas or Arrow.

Both take the same filters as the CLI and open the lake themselves (from ``lake``, or the
config's), or use a connection passed as ``conn`` — e.g. one from ``loglake.connect()``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb
import pyarrow as pa

from loglake.errors import LoglakeError
from loglake.explore.history import metric_history
from loglake.explore.listing import list_runs
from loglake.explore.resolve import resolve_runs
from loglake.explore.selection import Selection
from loglake.explore.session import open_lake


def runs(
    where: str | None = None,
    *,
    namespace: str | Sequence[str] = (),
    experiment: str | Sequence[str] = (),
    status: str | Sequence[str] = (),
    tag: str | Sequence[str] = (),
    since: str | None = None,
    until: str | None = None,
    metrics: Sequence[str] | None = None,
    params: Sequence[str] | None = None,
    sort: str | Sequence[str] = (),
    limit: int | None = None,
    lake: Any = None,
    config: Any = None,
    conn: duckdb.DuckDBPyConnection | None = None,
    as_: str = "pandas",
) -> Any:
    """The runs table of ``loglake runs`` (all matches unless ``limit``), as pandas or Arrow."""
    selection = Selection(
        namespaces=_tuple(namespace),
        experiments=_tuple(experiment),
        statuses=_tuple(status),
        tags=_tuple(tag),
        since=since,
        until=until,
        where=where,
    )
    conn = conn or open_lake(config, lake)
    result = list_runs(
        conn, selection, metrics=metrics, params=params, sort=_tuple(sort), limit=limit
    )
    return _convert(result.table, as_)


def history(
    run_ids: str | Sequence[str],
    keys: str | Sequence[str] | None = None,
    *,
    max_points: int | None = None,
    lake: Any = None,
    config: Any = None,
    conn: duckdb.DuckDBPyConnection | None = None,
    as_: str = "pandas",
) -> Any:
    """Every point of ``keys`` (default: all) for the runs named (ids, prefixes or names):
    columns run_id, key, step, epoch, x, value, ts."""
    conn = conn or open_lake(config, lake)
    ids = resolve_runs(conn, list(_tuple(run_ids)))
    table = metric_history(
        conn, ids, list(_tuple(keys)) if keys is not None else None, max_points=max_points
    )
    return _convert(table, as_)


def _convert(table: pa.Table, as_: str) -> Any:
    if as_ == "arrow":
        return table
    if as_ != "pandas":
        raise LoglakeError(f"unknown as_={as_!r}", fix='use as_="pandas" or as_="arrow"')
    try:
        import pandas  # noqa: F401
    except ImportError:
        raise LoglakeError(
            "pandas is not installed",
            fix='pip install "loglake[pandas]", or pass as_="arrow"',
        ) from None
    return table.to_pandas()


def _tuple(value: str | Sequence[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value)
