"""Where the lake's Delta tables live, and the operations that act on a whole table.

A lake is a directory (local path or any object-store URL deltalake understands) holding
one Delta table per name in ``SCHEMAS``: ``<lake>/<name>/``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pyarrow as pa
from deltalake import DeltaTable, Schema, WriterProperties
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError

from loglake.errors import LakeError
from loglake.lake.schema import PARTITIONS, SCHEMAS

log = logging.getLogger(__name__)

DEFAULT_LAKE = "./lake"
# Readers hold a table's file list for as long as their connection lives; keep removed
# files a week so a long notebook session never finds a file gone under it.
DEFAULT_RETENTION_HOURS = 168


def is_remote(lake_uri: str) -> bool:
    """True for object-store URLs (``s3://``, ``gs://``, ...), False for local paths."""
    scheme = urlparse(str(lake_uri)).scheme
    return "://" in str(lake_uri) and scheme not in ("", "file")


def normalize_lake(lake_uri: str | Path) -> str:
    """An absolute local path, or the URL unchanged (minus a trailing slash)."""
    text = str(lake_uri)
    if is_remote(text):
        return text.rstrip("/")
    if text.startswith("file://"):
        text = urlparse(text).path
    return str(Path(text).expanduser().absolute())


def table_uri(lake_uri: str | Path, name: str) -> str:
    return f"{normalize_lake(lake_uri)}/{name}"


def open_table(
    lake_uri: str | Path, name: str, storage_options: dict[str, str] | None = None
) -> DeltaTable | None:
    """The table's current version, or ``None`` when it was never created."""
    uri = table_uri(lake_uri, name)
    try:
        return DeltaTable(uri, storage_options=storage_options)
    except TableNotFoundError:
        return None
    except (DeltaError, OSError) as exc:
        raise _lake_error(uri, "read", exc) from exc


def table_files(
    lake_uri: str | Path, name: str, storage_options: dict[str, str] | None = None
) -> list[str]:
    """The live Parquet files of the table's current version; ``[]`` if there is no table."""
    dt = open_table(lake_uri, name, storage_options)
    return [] if dt is None else dt.file_uris()


def ensure_tables(
    lake_uri: str | Path, storage_options: dict[str, str] | None = None
) -> dict[str, DeltaTable]:
    """Create every table in ``SCHEMAS`` that is missing; add columns a newer schema has.

    Empty tables are created up front so every view is queryable before any data lands.
    """
    lake = normalize_lake(lake_uri)
    if not is_remote(lake):
        _ensure_local_dir(Path(lake))
    tables: dict[str, DeltaTable] = {}
    for name, schema in SCHEMAS.items():
        dt = open_table(lake, name, storage_options)
        if dt is None:
            dt = _create(lake, name, schema, storage_options)
        _add_missing_columns(dt, name, schema)
        tables[name] = dt
    return tables


def optimize(
    lake_uri: str | Path,
    name: str,
    storage_options: dict[str, str] | None = None,
    *,
    target_size: int | None = None,
) -> dict[str, Any]:
    """Compact small files; readers keep seeing every row exactly once throughout."""
    dt = open_table(lake_uri, name, storage_options)
    if dt is None:
        return {}
    return dt.optimize.compact(
        target_size=target_size, writer_properties=WriterProperties(compression="ZSTD")
    )


def vacuum(
    lake_uri: str | Path,
    name: str,
    storage_options: dict[str, str] | None = None,
    *,
    retention_hours: int = DEFAULT_RETENTION_HOURS,
    dry_run: bool = False,
) -> list[str]:
    """Delete files no version newer than ``retention_hours`` needs; returns their paths."""
    dt = open_table(lake_uri, name, storage_options)
    if dt is None:
        return []
    return dt.vacuum(
        retention_hours=retention_hours, dry_run=dry_run, enforce_retention_duration=False
    )


def _create(
    lake: str, name: str, schema: pa.Schema, storage_options: dict[str, str] | None
) -> DeltaTable:
    uri = f"{lake}/{name}"
    try:
        return DeltaTable.create(
            uri,
            schema,
            mode="ignore",
            partition_by=PARTITIONS.get(name),
            storage_options=storage_options,
        )
    except CommitFailedError:
        # Another writer created it between our check and our create: use theirs.
        dt = open_table(lake, name, storage_options)
        if dt is None:
            raise
        return dt
    except (DeltaError, OSError) as exc:
        raise _lake_error(uri, "create", exc) from exc


def _add_missing_columns(dt: DeltaTable, name: str, schema: pa.Schema) -> None:
    present = set(dt.schema().to_arrow().names)
    missing = [f for f in schema if f.name not in present]
    if not missing:
        return
    log.info("adding columns %s to lake table %s", [f.name for f in missing], name)
    try:
        dt.alter.add_columns(Schema.from_arrow(pa.schema(missing)).fields)
    except (DeltaError, OSError) as exc:
        raise _lake_error(dt.table_uri, "alter", exc) from exc


def _ensure_local_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".loglake-write-probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise _lake_error(str(path), "write", exc) from exc


def _lake_error(where: str, action: str, exc: BaseException) -> LakeError:
    text = str(exc).strip()
    detail = getattr(exc, "strerror", None) or (text.splitlines()[0] if text else repr(exc))
    if action == "read":
        fix = "check that the lake path or URL and its credentials (storage options) are right"
    else:
        fix = (
            "make the directory writable (or create it), or point the lake setting / --lake "
            "at a writable location"
        )
    return LakeError(f"cannot {action} the lake at {where}: {detail}", fix=fix)
