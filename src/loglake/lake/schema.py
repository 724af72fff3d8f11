"""Arrow schemas of the lake's tables.

Every parsed row carries provenance: ``source_fp`` (the fingerprint of the source file)
and ``offset`` (the byte offset of the line), plus the ``parser`` (``name@version``)
that produced it, so a parser's rows can be found and replaced later.
Schema changes are additive only: old Parquet files must stay readable.
"""

from __future__ import annotations

import pyarrow as pa

TS = pa.timestamp("us", tz="UTC")

_PROVENANCE = [
    pa.field("source_fp", pa.string()),
    pa.field("offset", pa.int64()),
    pa.field("parser", pa.string()),
]

SCHEMAS: dict[str, pa.Schema] = {
    # One row per observation of a run (per source file and flush); the `runs` view keeps
    # the latest per source and combines a run's sources.
    "runs": pa.schema(
        [
            pa.field("run_id", pa.string()),
            pa.field("namespace", pa.string()),
            pa.field("experiment", pa.string()),
            pa.field("run", pa.string()),
            pa.field("parent_run_id", pa.string()),
            pa.field("rank", pa.string()),
            pa.field("status", pa.string()),
            pa.field("status_reason", pa.string()),
            pa.field("error", pa.string()),
            pa.field("start_time", TS),
            pa.field("end_time", TS),
            pa.field("framework", pa.string()),
            pa.field("command", pa.string()),
            pa.field("git_commit", pa.string()),
            pa.field("git_branch", pa.string()),
            pa.field("host", pa.string()),
            pa.field("user", pa.string()),
            pa.field("exit_code", pa.int64()),
            pa.field("env", pa.string()),  # JSON object of other facts
            pa.field("source_path", pa.string()),
            pa.field("lines", pa.int64()),
            pa.field("bytes", pa.int64()),
            pa.field("observed_at", TS),
            *_PROVENANCE,
        ]
    ),
    "params": pa.schema(
        [
            pa.field("run_id", pa.string()),
            pa.field("namespace", pa.string()),
            pa.field("key", pa.string()),
            pa.field("value", pa.string()),
            pa.field("value_num", pa.float64()),
            *_PROVENANCE,
        ]
    ),
    "metrics": pa.schema(
        [
            pa.field("run_id", pa.string()),
            pa.field("namespace", pa.string()),
            pa.field("key", pa.string()),
            pa.field("value", pa.float64()),
            pa.field("step", pa.int64()),
            pa.field("epoch", pa.float64()),
            pa.field("ts", TS),
            *_PROVENANCE,
        ]
    ),
    "packages": pa.schema(
        [
            pa.field("run_id", pa.string()),
            pa.field("namespace", pa.string()),
            pa.field("name", pa.string()),
            pa.field("version", pa.string()),
            *_PROVENANCE,
        ]
    ),
    "datasets": pa.schema(
        [
            pa.field("run_id", pa.string()),
            pa.field("namespace", pa.string()),
            pa.field("name", pa.string()),
            pa.field("path", pa.string()),
            pa.field("split", pa.string()),
            pa.field("rows", pa.int64()),
            pa.field("cols", pa.int64()),
            pa.field("fingerprint", pa.string()),
            *_PROVENANCE,
        ]
    ),
    "artifacts": pa.schema(
        [
            pa.field("run_id", pa.string()),
            pa.field("namespace", pa.string()),
            pa.field("path", pa.string()),
            pa.field("kind", pa.string()),
            *_PROVENANCE,
        ]
    ),
    "parse_errors": pa.schema(
        [
            pa.field("source_path", pa.string()),
            pa.field("message", pa.string()),
            pa.field("line", pa.string()),
            pa.field("observed_at", TS),
            *_PROVENANCE,
        ]
    ),
    # Losses and repairs in reading: long lines cut, invalid UTF-8, NUL runs, truncation.
    "gaps": pa.schema(
        [
            pa.field("source_path", pa.string()),
            pa.field("kind", pa.string()),
            pa.field("bytes", pa.int64()),
            pa.field("detail", pa.string()),
            pa.field("observed_at", TS),
            pa.field("source_fp", pa.string()),
            pa.field("offset", pa.int64()),
        ]
    ),
    # User-added, never parsed: one row per edit. The latest row per (run_id, key) is the
    # tag's value; a null value removes it (view `run_tags`).
    "tags": pa.schema(
        [
            pa.field("run_id", pa.string()),
            pa.field("namespace", pa.string()),
            pa.field("key", pa.string()),
            pa.field("value", pa.string()),
            pa.field("author", pa.string()),
            pa.field("created_at", TS),
        ]
    ),
    "notes": pa.schema(
        [
            pa.field("run_id", pa.string()),
            pa.field("namespace", pa.string()),
            pa.field("text", pa.string()),
            pa.field("author", pa.string()),
            pa.field("created_at", TS),
        ]
    ),
    # What was read of each source: one row per flush; the latest per source_fp is the
    # committed position (the checkpoint the lake itself vouches for).
    "files": pa.schema(
        [
            pa.field("source_fp", pa.string()),
            pa.field("source_path", pa.string()),
            pa.field("run_id", pa.string()),
            pa.field("size", pa.int64()),
            pa.field("end_offset", pa.int64()),
            pa.field("lines", pa.int64()),
            pa.field("mtime", TS),
            pa.field("indexed_at", TS),
        ]
    ),
    # The raw-log archive index (loglake/retain): one row per archived version of a source,
    # or per source lost before it could be archived; the latest per source_fp is current.
    "logs": pa.schema(
        [
            pa.field("source_fp", pa.string()),
            pa.field("source_path", pa.string()),
            pa.field("run_id", pa.string()),
            pa.field("namespace", pa.string()),
            pa.field("state", pa.string()),  # archived | lost
            pa.field("version", pa.int64()),  # 1, 2, ... as a grown file is archived again
            pa.field("archive_uri", pa.string()),
            pa.field("sha256", pa.string()),  # of the archive object's bytes
            pa.field("content_sha256", pa.string()),  # of the archived (redacted) text
            pa.field("bytes", pa.int64()),  # source bytes covered (lost: bytes never archived)
            pa.field("archive_bytes", pa.int64()),
            pa.field("compression", pa.string()),
            pa.field("redactions", pa.int64()),
            pa.field("mtime", TS),
            pa.field("expires_at", TS),
            pa.field("archived_at", TS),
            pa.field("detail", pa.string()),
        ]
    ),
}

# Partition columns: metrics are by far the largest table; namespace pruning also maps to
# per-team access control on object storage.
PARTITIONS: dict[str, list[str]] = {"metrics": ["namespace"]}

TABLES = tuple(SCHEMAS)


def empty_table(name: str) -> pa.Table:
    return SCHEMAS[name].empty_table()
