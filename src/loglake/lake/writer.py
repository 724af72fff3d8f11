"""Exactly-once flushes into the lake, and checkpoints that move only after them.

One flush = rows for several tables + the checkpoint entries those rows complete. Its life:

1. it gets a sequence number ``seq``, larger than any this writer used before;
2. it is spooled to ``state_dir/spool/<seq>/`` (``checkpoint.json`` and each table's rows:
   on a local lake the table's finished Parquet files, else Arrow IPC), fsynced, and marked
   complete by renaming the directory from ``<seq>.tmp``;
3. each non-empty table is appended with ``seq`` recorded in the same Delta commit as an
   app transaction (``app_id = loglake:<writer_id>``): spooled Parquet files are moved into
   the table and committed (``lake/direct.py``), IPC rows written by delta-rs. A table whose
   recorded version is already ``>= seq`` got this flush before a crash and is skipped;
4. the checkpoint entries are saved, then the spool entry is deleted.

A crash anywhere leaves either an incomplete spool dir (the checkpoint never moved, so the
source is simply read again) or a complete one that ``recover`` replays with the same skip
rule — no row lands twice, none is lost. ``LOGLAKE_CRASH_AT`` kills the process at named
points so tests can prove this with real subprocesses (Dagster's ``debug_crash_flags``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import DeltaError
from pydantic_core import PydanticSerializationError, to_json

from loglake.errors import LakeError
from loglake.lake.checkpoint import CheckpointStore, StateDirError
from loglake.lake.direct import DirectTable
from loglake.lake.durable import fsync_dir, fsync_file
from loglake.lake.schema import PARTITIONS, SCHEMAS
from loglake.lake.tables import (
    ensure_tables,
    is_remote,
    normalize_lake,
    sort_rows,
    table_uri,
    writer_properties,
)

__all__ = ["CRASH_ENV", "LakeWriter", "conform", "ensure_tables"]

log = logging.getLogger(__name__)

CRASH_ENV = "LOGLAKE_CRASH_AT"
# 2: tables may be spooled as Parquet files ("files"); entries of version 1 still replay.
SPOOL_VERSION = 2
_READABLE_VERSIONS = (1, 2)
# A spool entry lives for one commit and is read back only after a crash: it is written
# uncompressed. LZ4 cost ~12 ms of CPU per 100 k-row metrics flush (~2 % of an index) to
# save ~10 MB of page cache that is deleted a moment later. The codec is recorded in each
# IPC file, so older LZ4 or zstd entries replay. No IPC thread pool: handing each buffer
# to Arrow's pool cost more CPU than the write (a 10 k-row table: ~10 ms threaded, <1 ms).
SPOOL_COMPRESSION: str | None = None
_MANIFEST = "checkpoint.json"
_warned_unknown: set[tuple[str, str]] = set()


def crash_point(name: str) -> None:
    """Die like ``kill -9`` here when ``LOGLAKE_CRASH_AT`` names this point (tests only)."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def conform(name: str, table: pa.Table | pa.RecordBatch) -> pa.Table:
    """Give ``table`` exactly the lake schema of ``name``: missing columns become nulls,
    types are cast, column order follows the schema and unknown columns are dropped.

    Empty strings in partition columns become null: Delta stores both as null, and a reader
    going by the directory names would otherwise see ``''`` where Delta sees null.
    """
    schema = SCHEMAS.get(name)
    if schema is None:
        raise LakeError(f"no lake table named {name!r}", fix=f"use one of {', '.join(SCHEMAS)}")
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    present = set(table.column_names)
    for extra in present.difference(schema.names):
        if (name, extra) not in _warned_unknown:
            _warned_unknown.add((name, extra))
            log.warning("dropping column %r: it is not in the schema of lake table %s", extra, name)
    partition_cols = PARTITIONS.get(name, [])
    columns: list[pa.ChunkedArray | pa.Array] = []
    for field in schema:
        if field.name not in present:
            columns.append(pa.nulls(table.num_rows, field.type))
            continue
        col = _cast(table.column(field.name), field, name)
        if field.name in partition_cols and pa.types.is_string(field.type):
            col = pc.if_else(pc.equal(col, ""), pa.scalar(None, field.type), col)
        columns.append(col)
    return pa.Table.from_arrays(columns, schema=schema)


def _cast(col: pa.ChunkedArray, field: pa.Field, name: str) -> pa.ChunkedArray:
    if col.type == field.type:
        return col
    # Sub-microsecond timestamps are truncated to the lake's microseconds, not refused.
    safe = not pa.types.is_timestamp(field.type)
    try:
        return col.cast(field.type, safe=safe)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise LakeError(
            f"column {field.name} of table {name} is {col.type}, which cannot become "
            f"{field.type}: {exc}",
            fix="emit values of the schema's type (see loglake/lake/schema.py)",
        ) from exc


class LakeWriter:
    """Appends flushes to the lake exactly once and then advances the checkpoints.

    One writer per state dir (hold ``StateLock``); several writers with distinct
    ``writer_id`` may share one lake, since each has its own app transaction id.
    """

    def __init__(
        self,
        lake_uri: str | Path,
        state_dir: Path,
        writer_id: str,
        storage_options: dict[str, str] | None = None,
        checkpoints: CheckpointStore | None = None,
    ) -> None:
        self.lake_uri = normalize_lake(lake_uri)
        self.state_dir = Path(state_dir)
        self.writer_id = writer_id
        self.app_id = f"loglake:{writer_id}"
        self.storage_options = storage_options
        self.checkpoints = checkpoints if checkpoints is not None else CheckpointStore(state_dir)
        self.spool_dir = self.state_dir / "spool"
        try:
            self.spool_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateDirError(
                f"cannot create the spool dir {self.spool_dir}: {exc.strerror or exc}",
                fix="make the state dir writable or pass another --state-dir",
            ) from exc
        self._tables = ensure_tables(self.lake_uri, storage_options)
        # Local tables are appended to directly (lake/direct.py); object stores via delta-rs.
        self._direct = (
            {}
            if is_remote(self.lake_uri)
            else {n: DirectTable(dt, n) for n, dt in self._tables.items()}
        )
        self._landed = self._versions(self.app_id)
        complete, _ = self._spool_entries()
        self._seq = max([0, *self._landed.values(), *complete])
        # Complete spool entries must land before any newer flush, or the skip rule would
        # later discard them as "already written".
        self._needs_recover = bool(complete)

    @property
    def last_seq(self) -> int:
        return self._seq

    def commit(self, tables: dict[str, pa.Table], checkpoint_update: dict[str, Any]) -> int:
        """Durably append one flush, then apply ``checkpoint_update``; returns its seq."""
        if self._needs_recover:
            self.recover()
        data = {n: conform(n, t) for n, t in tables.items() if t is not None and t.num_rows}
        self._seq += 1
        seq = self._seq
        # Each entry is serialized once, for the spool manifest and the checkpoint journal.
        texts = {k: None if e is None else _json_bytes(e) for k, e in checkpoint_update.items()}
        if not data:
            self.checkpoints.update(checkpoint_update, texts)
            return seq
        entry, spooled = self._spool(seq, data, texts)
        crash_point("after_spool")
        self._needs_recover = True  # until this flush fully lands
        self._land(seq, self.app_id, spooled, checkpoint_update, entry, texts=texts)
        self._needs_recover = False
        return seq

    def recover(self) -> int:
        """Replay complete spool entries left by a crash, in order; drop torn ones.

        Call before reading checkpoints: a replayed entry advances them.
        """
        complete, torn = self._spool_entries()
        for path in torn:
            log.info("removing incomplete spool entry %s (its sources will be re-read)", path)
            shutil.rmtree(path, ignore_errors=True)
        for seq in sorted(complete):
            entry = self.spool_dir / str(seq)
            manifest = _read_manifest(entry)
            app_id = manifest["app_id"]
            # Conformed again: a newer loglake may be replaying an older one's spool.
            data: dict[str, pa.Table | list[dict[str, Any]]] = {
                n: conform(n, pa.ipc.open_file(entry / f"{n}.arrow").read_all())
                for n in manifest["tables"]
            }
            data.update(manifest.get("files", {}))
            # Ask the lake, not memory: a commit that raised may still have landed.
            self._refresh()
            landed = self._versions(app_id)
            if app_id == self.app_id:
                self._landed = landed
            log.info("replaying spooled flush %s (%s)", seq, ", ".join(sorted(data)) or "no rows")
            self._land(seq, app_id, data, manifest["checkpoint"], entry, landed)
            self._seq = max(self._seq, seq)
        self._needs_recover = False
        return len(complete)

    # -- steps -------------------------------------------------------------------------

    def _spool(
        self, seq: int, data: dict[str, pa.Table], texts: dict[str, bytes | None]
    ) -> tuple[Path, dict[str, pa.Table | list[dict[str, Any]]]]:
        """The complete entry, and per table what ``_land`` takes: its rows, or the
        Parquet files written for it."""
        tmp = self.spool_dir / f"{seq}.tmp"
        final = self.spool_dir / str(seq)
        spooled: dict[str, pa.Table | list[dict[str, Any]]] = {}
        files: dict[str, list[dict[str, Any]]] = {}
        try:
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir()
            for name, table in data.items():
                direct = self._direct.get(name)
                # Spooling the table's own files spares writing the rows twice.
                written = direct and direct.spool(table, tmp, name)
                if written:
                    for file in written:
                        fsync_file(tmp / file["file"])
                    spooled[name] = files[name] = written
                    continue
                spooled[name] = table
                path = tmp / f"{name}.arrow"
                options = pa.ipc.IpcWriteOptions(compression=SPOOL_COMPRESSION, use_threads=False)
                with (
                    pa.OSFile(str(path), "wb") as sink,
                    pa.ipc.new_file(sink, table.schema, options=options) as ipc,
                ):
                    ipc.write_table(table)
                fsync_file(path)
            head = {"version": SPOOL_VERSION, "seq": seq, "app_id": self.app_id}
            ipc = sorted(n for n in data if n not in files)
            (tmp / _MANIFEST).write_bytes(_manifest_bytes(head, ipc, files, texts))
            fsync_file(tmp / _MANIFEST)
            fsync_dir(tmp)
            crash_point("before_spool_rename")
            os.replace(tmp, final)
            fsync_dir(self.spool_dir)
        except OSError as exc:
            raise StateDirError(
                f"cannot write the spool entry {final}: {exc.strerror or exc}",
                fix="free disk space or make the state dir writable",
            ) from exc
        return final, spooled

    def _land(
        self,
        seq: int,
        app_id: str,
        data: dict[str, pa.Table | list[dict[str, Any]]],
        update: dict[str, Any],
        entry: Path,
        landed: dict[str, int] | None = None,
        texts: dict[str, bytes | None] | None = None,
    ) -> None:
        landed = self._landed if landed is None else landed
        for name, table in data.items():
            if landed.get(name, 0) >= seq:
                log.info("flush %s already in table %s; skipping it", seq, name)
            else:
                self._append(name, table, seq, app_id, entry)
                landed[name] = seq
            crash_point(f"after_table:{name}")
        crash_point("after_commit")
        self.checkpoints.update(update, texts)
        crash_point("after_checkpoint")
        shutil.rmtree(entry, ignore_errors=True)

    def _append(
        self,
        name: str,
        rows: pa.Table | list[dict[str, Any]],
        seq: int,
        app_id: str,
        entry: Path,
    ) -> None:
        direct = self._direct.get(name)
        try:
            if not isinstance(rows, pa.Table):
                if direct is None:
                    raise LakeError(
                        f"spool entry {entry} holds Parquet files for table {name}, which "
                        f"only a local lake takes, not {self.lake_uri}",
                        fix="replay it with the lake it was written for, or move it aside",
                    )
                direct.land(entry, rows, app_id, seq)
                return
            dt: DeltaTable = self._tables[name] if direct is None else direct.fresh()
            write_deltalake(
                dt,
                # Sorted here, not when spooled, so a replayed spool is laid out alike. A
                # stream of small batches: the Rust writer holds far less at once
                # (measured ~3x faster and ~100 MB lower peak on a 1 M-row flush).
                sort_rows(name, rows).to_reader(max_chunksize=65536),
                mode="append",
                partition_by=PARTITIONS.get(name),
                commit_properties=CommitProperties(app_transactions=[Transaction(app_id, seq)]),
                writer_properties=writer_properties(name),
            )
        except (DeltaError, OSError) as exc:
            first = (str(exc).strip().splitlines() or [repr(exc)])[0]
            raise LakeError(
                f"cannot append to lake table {table_uri(self.lake_uri, name)}: {first}",
                fix="check that the lake is writable and reachable; the flush stays spooled "
                "and is retried on the next commit or restart",
            ) from exc

    def _refresh(self) -> None:
        for name, dt in self._tables.items():
            direct = self._direct.get(name)
            if direct is None:
                dt.update_incremental()
            else:
                direct.refresh()

    def _versions(self, app_id: str) -> dict[str, int]:
        """Per table, the last flush seq of ``app_id`` that the lake has (0 for none)."""
        return {n: dt.transaction_version(app_id) or 0 for n, dt in self._tables.items()}

    def _spool_entries(self) -> tuple[list[int], list[Path]]:
        """Complete entries' seqs, and torn (``.tmp``) entry dirs."""
        complete: list[int] = []
        torn: list[Path] = []
        for path in self.spool_dir.iterdir():
            if path.name.endswith(".tmp"):
                torn.append(path)
            elif path.name.isdigit() and (path / _MANIFEST).exists():
                complete.append(int(path.name))
            elif path.name.isdigit():
                torn.append(path)
        return complete, torn


def _json_bytes(obj: Any) -> bytes:
    """JSON that ``json.loads`` reads back as ``json.dumps`` would write it, ~5x faster
    (pydantic's Rust serializer): a manifest holds the parser states, megabytes on a long
    log. What pydantic cannot serialize gets ``json.dumps``'s own error."""
    try:
        return to_json(obj, inf_nan_mode="constants")
    except PydanticSerializationError:
        return json.dumps(obj).encode()


def _manifest_bytes(
    head: dict[str, Any],
    tables: list[str],
    files: dict[str, list[dict[str, Any]]],
    texts: dict[str, bytes | None],
) -> bytes:
    """The manifest ``{**head, "tables": ..., "files": ..., "checkpoint": {...}}`` around
    checkpoint entries already serialized (their text goes to the journal too)."""
    entries = b",".join(
        _json_bytes(key) + b":" + (b"null" if text is None else text) for key, text in texts.items()
    )
    return b"%s,%s,%s,%s}" % (
        _json_bytes(head)[:-1],
        b'"tables":' + _json_bytes(tables),
        b'"files":' + _json_bytes(files),
        b'"checkpoint":{' + entries + b"}",
    )


def _read_manifest(entry: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((entry / _MANIFEST).read_bytes())
    except (OSError, ValueError) as exc:
        raise StateDirError(
            f"spool entry {entry} is complete but unreadable: {exc}",
            fix="move it out of the spool dir and restart; its sources will be re-read only "
            "if you also remove their checkpoints",
        ) from exc
    if manifest.get("version") not in _READABLE_VERSIONS:
        raise StateDirError(
            f"spool entry {entry} has unknown version {manifest.get('version')!r}",
            fix="replay it with the loglake version that wrote it, or move it aside",
        )
    return manifest
