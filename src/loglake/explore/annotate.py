"""``loglake tag`` and ``loglake note``: what people know about a run, stored in the lake.

Tags and notes are rows in their own Delta tables (appended, never rewritten), so they are
shared by everyone who reads the lake, searchable with the same filters as parsed facts,
and survive re-indexing. A tag edit is a new row; the latest per key wins and an empty
value removes the tag.
"""

from __future__ import annotations

import datetime as dt
import getpass
import os
from collections.abc import Mapping, Sequence
from typing import Any

import duckdb
import pyarrow as pa
from deltalake import write_deltalake
from deltalake.exceptions import DeltaError

from loglake.errors import ExitCode, LakeError, LoglakeError
from loglake.explore.resolve import resolve_runs
from loglake.explore.sqlgen import lit
from loglake.lake.tables import ensure_tables, table_uri
from loglake.lake.writer import conform


class TagError(LoglakeError):
    exit_code = ExitCode.USAGE


def parse_tags(specs: Sequence[str]) -> dict[str, str | None]:
    """``["owner=ana", "stale="]`` → ``{"owner": "ana", "stale": None}`` (empty removes)."""
    out: dict[str, str | None] = {}
    for spec in specs:
        key, eq, value = spec.partition("=")
        key = key.strip()
        if not eq or not key:
            raise TagError(
                f"{spec!r} is not key=value", fix="write e.g. owner=ana (owner= removes)"
            )
        out[key] = value.strip() or None
    return out


def tag_runs(
    conn: duckdb.DuckDBPyConnection,
    lake: str,
    refs: Sequence[str],
    tags: Mapping[str, str | None],
    *,
    author: str | None = None,
    storage_options: dict[str, str] | None = None,
    now: dt.datetime | None = None,
) -> list[str]:
    """Set (or, with ``None``, remove) ``tags`` on the runs ``refs`` name; returns run ids."""
    ids = resolve_runs(conn, refs)
    namespaces = _namespaces(conn, ids)
    when = now or dt.datetime.now(dt.UTC)
    who = author or _author()
    rows = [
        {
            "run_id": rid,
            "namespace": namespaces[rid],
            "key": k,
            "value": v,
            "author": who,
            "created_at": when,
        }
        for rid in ids
        for k, v in tags.items()
    ]
    _append(lake, "tags", rows, storage_options)
    return ids


def note_runs(
    conn: duckdb.DuckDBPyConnection,
    lake: str,
    refs: Sequence[str],
    text: str,
    *,
    author: str | None = None,
    storage_options: dict[str, str] | None = None,
    now: dt.datetime | None = None,
) -> list[str]:
    """Add the note ``text`` to the runs ``refs`` name; returns their run ids."""
    if not text.strip():
        raise TagError("empty note", fix='write the note in quotes: loglake note RUN "text"')
    ids = resolve_runs(conn, refs)
    namespaces = _namespaces(conn, ids)
    when = now or dt.datetime.now(dt.UTC)
    who = author or _author()
    rows = [
        {
            "run_id": rid,
            "namespace": namespaces[rid],
            "text": text,
            "author": who,
            "created_at": when,
        }
        for rid in ids
    ]
    _append(lake, "notes", rows, storage_options)
    return ids


def _namespaces(conn: duckdb.DuckDBPyConnection, ids: Sequence[str]) -> dict[str, str | None]:
    rows = conn.execute(
        f"SELECT run_id, namespace FROM runs WHERE run_id IN ({', '.join(lit(i) for i in ids)})"
    ).fetchall()
    return dict(rows)


def _author() -> str:
    try:
        return os.environ.get("LOGLAKE_AUTHOR") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _append(
    lake: str, name: str, rows: list[dict[str, Any]], storage_options: dict[str, str] | None
) -> None:
    if not rows:
        return
    ensure_tables(lake, storage_options)
    table = conform(name, pa.Table.from_pylist(rows))
    try:
        write_deltalake(
            table_uri(lake, name), table, mode="append", storage_options=storage_options
        )
    except (DeltaError, OSError) as exc:
        raise LakeError(
            f"cannot append to lake table {table_uri(lake, name)}: {exc}",
            fix="check that the lake is writable and reachable",
        ) from exc
