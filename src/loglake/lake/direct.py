"""Appends to a local Delta table without delta-rs's writer: the Parquet files by pyarrow,
the commit by an atomic put-if-absent of the table's next log file.

delta-rs costs far more CPU per append than the work itself: a 100 k-row metrics flush
took 35 ms in ``write_deltalake`` against 18 ms for pyarrow's Parquet writer, and every
commit of a small table ~6 ms (its query engine's plan, then reloading the table state)
against well under 1 ms for writing one JSON file.

The files are written into the lake writer's spool entry (``spool``) and moved into the
table when it commits them (``land``): the spool holds the flush's rows once, as the
finished files, instead of an Arrow IPC copy written, fsynced and deleted beside them.
A replay after a crash moves what is still in the entry and commits; the app transaction
in the commit keeps it exactly once, as for every append (``lake/writer.py``).

A direct append writes what delta-rs would: the same files (``tables.parquet_options``),
partition directories, add actions with per-file stats and the app transaction in the same
commit. It is used only where that is plainly a valid Delta write: a local table whose
protocol asks for no writer features (reader 1, writer 2), partitioned as the schema says,
without data-skipping settings, and partition values of plain characters. Anything else
goes through delta-rs. So does a commit whose version another writer took first: the
files already written are committed by ``create_write_transaction``, which resolves the
conflict as delta-rs does for its own appends.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import shutil
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import CommitProperties, Transaction
from deltalake.transaction import AddAction

from loglake.lake.schema import PARTITIONS
from loglake.lake.tables import parquet_options, sort_rows

if TYPE_CHECKING:
    from deltalake import DeltaTable

__all__ = ["DirectTable", "file_stats"]

# A partition value written as it is in directory names and add-action paths (no escaping).
_PLAIN = re.compile(r"[A-Za-z0-9_.\-]+")
# Settings that change what an append must write; a table having one is left to delta-rs.
_WRITE_SETTINGS = ("delta.dataSkippingNumIndexedCols", "delta.dataSkippingStatsColumns")
_STATS_COLUMNS = 32  # delta's default dataSkippingNumIndexedCols
# Longer strings get a prefix as their min and no max (a prefix sorts first, so both stay
# true bounds) instead of whole error lines copied into every add action.
_STATS_CHARS = 64


class DirectTable:
    """One local Delta table appended to directly while its state allows it."""

    def __init__(self, dt: DeltaTable, name: str) -> None:
        self.dt = dt
        self.name = name
        # The URI is percent-encoded ("my%20lake"); files go to the directory it names.
        self.path = unquote(urlparse(dt.table_uri).path).rstrip("/")
        self._stale = False
        self._lent = False
        self._can_link = True
        self._load()

    def spool(self, table: pa.Table, entry: Path, stem: str) -> list[dict[str, Any]] | None:
        """Write ``table`` as this table's Parquet files into the spool entry being built
        (``<stem>.<i>.parquet``); returns what ``land`` needs of them, or None when this
        table or these rows need delta-rs (nothing was written then)."""
        self._catch_up()
        if not self._direct:
            return None
        parts = self._partitions(table)
        if parts is None:
            return None
        files = []
        for i, (values, part) in enumerate(parts):
            # Sorted per partition: the same order as sorting first, without moving the
            # partition column that the file leaves out.
            rows = sort_rows(self.name, part)
            name = f"{stem}.{i}.parquet"
            written: list[pq.FileMetaData] = []  # the writer's own footer: no read-back
            pq.write_table(
                rows, entry / name, metadata_collector=written, **parquet_options(self.name)
            )
            meta = written[0]
            folder = "".join(f"{k}={v}/" for k, v in values.items())
            add = {
                "path": f"{folder}part-00000-{uuid.uuid4()}-c000.zstd.parquet",
                "partitionValues": values,
                "size": (entry / name).stat().st_size,
                "modificationTime": int(time.time() * 1000),
                "dataChange": True,
                "stats": file_stats(rows, meta),
            }
            files.append({"file": name, "add": add})
        return files

    def land(self, entry: Path, files: list[dict[str, Any]], app_id: str, seq: int) -> None:
        """Move spooled files into the table and commit them with ``(app_id, seq)``.

        Safe to repeat after a crash: a file already moved is found in the table.
        """
        for file in files:
            self._move(entry / file["file"], file["add"]["path"])
        adds = [file["add"] for file in files]
        self._catch_up()
        if self._direct:
            self._commit(adds, app_id, seq)
        else:
            self._commit_with_delta_rs(adds, app_id, seq)

    def fresh(self) -> DeltaTable:
        """The delta-rs table, brought up to the direct commits made since it was read,
        for a caller to commit through."""
        if self._stale:
            self.refresh()
        self._lent = True
        return self.dt

    def refresh(self) -> None:
        """Read the table's log again (after other writers, or before asking its state)."""
        self.dt.update_incremental()
        self._stale = False
        self._load()

    # -- steps -------------------------------------------------------------------------

    def _catch_up(self) -> None:
        if self._lent:
            self._lent = False
            self._load()  # delta-rs committed through the table since

    def _move(self, spooled: Path, rel: str) -> None:
        target = f"{self.path}/{rel}"
        if not spooled.exists() and os.path.exists(target):
            return  # moved before a crash
        os.makedirs(os.path.dirname(target), exist_ok=True)
        try:
            os.replace(spooled, target)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            # The state dir is on another filesystem: copy (the spool keeps its file until
            # the entry is removed, so a repeat copies it again, whole).
            shutil.copyfile(spooled, f"{target}.tmp")
            os.replace(f"{target}.tmp", target)

    def _load(self) -> None:
        protocol = self.dt.protocol()
        meta = self.dt.metadata()
        config = meta.configuration
        self._version = self.dt.version()
        self._partition_cols = list(meta.partition_columns)
        self._checkpoint_every = int(config.get("delta.checkpointInterval") or 100)
        self._cleanup_logs = (config.get("delta.enableExpiredLogCleanup") or "true") == "true"
        self._direct = (
            self._can_link
            and protocol.min_reader_version == 1
            and protocol.min_writer_version <= 2
            and not protocol.writer_features
            and self._partition_cols == PARTITIONS.get(self.name, [])
            and not any(key in config for key in _WRITE_SETTINGS)
        )

    def _partitions(self, table: pa.Table) -> list[tuple[dict[str, str], pa.Table]] | None:
        """The rows per partition, in their order, without the partition columns; None
        when a value needs escaping or is null (delta-rs writes those)."""
        if not self._partition_cols:
            return [({}, table)]
        if len(self._partition_cols) != 1:
            return None
        (column,) = self._partition_cols
        values = table.column(column)
        distinct = pc.unique(values).to_pylist()
        if not all(isinstance(v, str) and _PLAIN.fullmatch(v) for v in distinct):
            return None
        rows = table.drop_columns([column])
        if len(distinct) == 1:
            return [({column: distinct[0]}, rows)]
        return [({column: v}, rows.filter(pc.equal(values, v))) for v in distinct]

    def _commit(self, adds: list[dict[str, Any]], app_id: str, seq: int) -> None:
        now = int(time.time() * 1000)
        params = {"mode": "Append"}
        if self._partition_cols:
            params["partitionBy"] = json.dumps(self._partition_cols)
        info = {
            "timestamp": now,
            "operation": "WRITE",
            "operationParameters": params,
            "isBlindAppend": True,
            "engineInfo": "loglake",
        }
        lines = [{"commitInfo": info}]
        lines += [{"add": add} for add in adds]
        lines.append({"txn": {"appId": app_id, "version": seq}})
        text = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines)
        log_dir = f"{self.path}/_delta_log"
        if not os.path.exists(f"{log_dir}/{self._version:020d}.json"):
            # Our version's log file was removed as expired: others committed and
            # checkpointed far past it, and the next name may be free again, below the
            # checkpoint where no reader looks. delta-rs reads the table anew and commits.
            self._commit_with_delta_rs(adds, app_id, seq)
            return
        tmp = f"{log_dir}/_commit_{uuid.uuid4()}.json.tmp"
        target = f"{log_dir}/{self._version + 1:020d}.json"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
        try:
            # A hard link fails when the name exists: the commit is put-if-absent, like
            # delta-rs's own rename-without-replace on local storage.
            os.link(tmp, target)
        except OSError as exc:
            # Over NFS a link can fail when its reply was lost and the retried call found
            # the name taken, by this very link: it committed if the name is our file.
            if not _same_file(tmp, target):
                if not isinstance(exc, FileExistsError):
                    # A filesystem without hard links: delta-rs commits this table now on.
                    self._can_link = False
                self._commit_with_delta_rs(adds, app_id, seq)
                return
        finally:
            os.unlink(tmp)
        self._version += 1
        self._stale = True
        if self._version % self._checkpoint_every == 0:
            self._checkpoint()

    def _commit_with_delta_rs(self, adds: list[dict[str, Any]], app_id: str, seq: int) -> None:
        """Commit through delta-rs, which resolves conflicts with other writers."""
        self.refresh()
        actions = [
            AddAction(
                a["path"], a["size"], a["partitionValues"], a["modificationTime"], True, a["stats"]
            )
            for a in adds
        ]
        self.dt.create_write_transaction(
            actions,
            "append",
            self.dt.schema(),
            partition_by=self._partition_cols or None,
            commit_properties=CommitProperties(app_transactions=[Transaction(app_id, seq)]),
        )
        self.refresh()

    def _checkpoint(self) -> None:
        """What delta-rs's post-commit hook does every ``checkpointInterval`` versions."""
        self.refresh()
        self.dt.create_checkpoint()
        if self._cleanup_logs:
            self.dt.cleanup_metadata()


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def file_stats(rows: pa.Table, meta: pq.FileMetaData) -> str:
    """Delta's per-file stats JSON (row count, per-column min, max and null count) from
    the file's own Parquet statistics, as delta-rs makes them, so readers can skip the
    file: timestamps in milliseconds (min rounded down, max up), no min/max where a row
    group has none (all null, or values too long for Parquet to keep), where a bound is
    not finite, or where a float column holds NaN (unlike delta-rs: its bounds left NaN
    rows out of range queries, or read as the bound, in DataFusion)."""
    nulls = {name: rows.column(name).null_count for name in rows.column_names}
    mins: dict[str, Any] = {}
    maxs: dict[str, Any] = {}
    groups = [meta.row_group(i) for i in range(meta.num_row_groups)]
    for i, field in enumerate(rows.schema):
        if i == _STATS_COLUMNS:
            break
        if pa.types.is_floating(field.type) and pc.any(pc.is_nan(rows.column(i))).as_py():
            # Parquet leaves NaN out of min/max; readers order it past every number (a
            # negative NaN before, in DataFusion), and one takes min == max for a constant.
            continue
        lows, highs = [], []
        for group in groups:
            chunk = group.column(i)
            stats = chunk.statistics
            if stats is not None and stats.has_min_max:
                lows.append(stats.min_raw)
                highs.append(stats.max_raw)
            elif stats is None or stats.null_count != chunk.num_values:
                break  # values without bounds: none for the file
        else:
            if lows:
                unit = None
                if pa.types.is_timestamp(field.type):
                    logical = json.loads(meta.schema.column(i).logical_type.to_json())
                    unit = logical.get("timeUnit")
                _bounds(field, unit, min(lows), max(highs), mins, maxs)
    stats = {"numRecords": rows.num_rows, "minValues": mins, "maxValues": maxs, "nullCount": nulls}
    return json.dumps(stats, separators=(",", ":"))


def _bounds(field: pa.Field, unit: str | None, low: Any, high: Any, mins: dict, maxs: dict) -> None:
    """Put the JSON form of ``low`` and ``high`` (Parquet's raw values; ``unit``: the
    file's time unit) in the stats, where they bound every value."""
    kind, name = field.type, field.name
    if pa.types.is_timestamp(kind):
        mins[name] = _iso_ms(_to_ms(low, unit))
        maxs[name] = _iso_ms(-_to_ms(-high, unit))
    elif isinstance(low, float):
        if math.isfinite(low) and math.isfinite(high):
            mins[name], maxs[name] = low, high
    elif isinstance(low, bytes):
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            low, high = low.decode(), high.decode()
            mins[name] = low[:_STATS_CHARS]
            if len(high) <= _STATS_CHARS:
                maxs[name] = high
    elif isinstance(low, int) and (pa.types.is_integer(kind) or pa.types.is_boolean(kind)):
        mins[name], maxs[name] = low, high


def _to_ms(value: int, unit: str | None) -> int:
    """``value`` in Parquet's time ``unit`` as whole milliseconds, rounded down."""
    return value // {"milliseconds": 1, "microseconds": 1000, "nanoseconds": 1_000_000}[unit]


def _iso_ms(ms: int) -> str:
    """ISO 8601 as delta-rs writes it: four-digit years, signed outside 0-9999."""
    seconds, millis = divmod(ms, 1000)
    day = time.gmtime(seconds)
    year = f"{day.tm_year:04d}" if 0 <= day.tm_year <= 9999 else f"{day.tm_year:+05d}"
    text = year + time.strftime("-%m-%dT%H:%M:%S", day)
    return f"{text}.{millis:03d}Z" if millis else f"{text}Z"
