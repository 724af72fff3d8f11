"""Indexing one file: from its checkpoint to the current end, in bounded-memory chunks.

Runs in a worker process; everything it returns is plain data (Arrow tables, JSON-able
checkpoint entries) so it can cross a process boundary. The checkpoint entry it returns is
applied by the lake writer only after the rows it covers are committed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import compress
from typing import Any

import pyarrow as pa

from loglake.errors import SourceError
from loglake.index.assemble import RunResolver, record_tables, run_rows
from loglake.index.sniff import looks_binary, read_head
from loglake.lake.schema import SCHEMAS
from loglake.parse.base import FileInfo, LineBatch
from loglake.parse.pipeline import FileParsers
from loglake.parse.records import Emitter
from loglake.parse.registry import Registry
from loglake.runs.identity import RunIdentity
from loglake.runs.summary import absorb
from loglake.tail import (
    FLAG_INVALID_UTF8,
    FLAG_REDRAWN,
    EnvelopeDecoder,
    ReadBatch,
    clean_lines,
    detect_envelope,
    read_lines,
    tail_hash,
)
from loglake.tail.cleanup import RedrawStates

HEAD_LINES = 200


@dataclass
class FileTask:
    """What the coordinator knows about a file before handing it to a worker."""

    path: str
    fp: str
    fp_len: int
    size: int
    mtime: float
    identity: RunIdentity
    routed: tuple[str, ...] = ()
    auto_detect: bool = True
    checkpoint: dict[str, Any] | None = None
    idle: bool = True
    max_line: int = 1 << 20
    flush_records: int = 1_000_000
    compressed: bool = False  # offsets are then in the decompressed stream
    #: where the bytes are read from when not ``path``: the daemon reads a file deleted or
    #: renamed while open through its descriptor (``/proc/self/fd/N``)
    source: str | None = None
    #: stop reading here (a committed offset): ``loglake reindex`` re-parses exactly what the
    #: lake holds, so a file that grew since is not read past its checkpoint
    stop_at: int | None = None

    @property
    def read_path(self) -> str:
        return self.source or self.path


@dataclass
class ChunkResult:
    fp: str
    path: str
    tables: dict[str, pa.Table]
    checkpoint: dict[str, Any]
    stats: dict[str, int] = field(default_factory=dict)
    final: bool = False


def _start_offset(task: FileTask) -> tuple[int, dict[str, Any] | None]:
    """Where to resume, trusting a saved offset only if the bytes before it still match."""
    cp = task.checkpoint
    if not cp:
        return 0, None
    off = int(cp.get("offset", 0))
    if task.compressed:
        # A compressed log is written once; one that changed is a new log: read it whole.
        return (off, cp) if cp.get("size") == task.size else (0, None)
    if off > task.size:
        return 0, None  # truncated since: re-read from the start
    if off and cp.get("tail") and tail_hash(task.read_path, off) != cp["tail"]:
        return 0, None
    return off, cp


def gap_table(
    path: str, fp: str, gaps: list[tuple[str, int, int, str]], now: datetime | None = None
) -> pa.Table:
    """Rows of the ``gaps`` table: ``(kind, offset, bytes, detail)`` per loss of one source."""
    now = now or datetime.now(tz=UTC)
    n = len(gaps)
    cols = {
        "source_path": [path] * n,
        "kind": [g[0] for g in gaps],
        "offset": [g[1] for g in gaps],
        "bytes": [g[2] for g in gaps],
        "detail": [g[3] for g in gaps],
        "observed_at": [now] * n,
        "source_fp": [fp] * n,
    }
    schema = SCHEMAS["gaps"]
    return pa.Table.from_arrays(
        [pa.array(cols[f.name], type=f.type) for f in schema], schema=schema
    )


def _concat(parts: dict[str, list[pa.Table]]) -> dict[str, pa.Table]:
    return {k: pa.concat_tables(v) if len(v) > 1 else v[0] for k, v in parts.items() if v}


def index_file(
    task: FileTask, registry: Registry, on_bytes: Callable[[int], None] | None = None
) -> Iterator[ChunkResult]:
    """Parse ``task.path`` from its checkpoint to its end, yielding chunks of lake rows.

    ``on_bytes(n)`` is told of every ``n`` bytes read, for a progress bar.
    """
    start, cp = _start_offset(task)
    if cp and cp.get("size") == task.size and (cp.get("idle_final") or not task.idle):
        return  # nothing new: re-running the indexer adds nothing
    envelope_kind = (cp or {}).get("envelope")
    head: list[str] = []
    if envelope_kind is None or cp is None:
        if looks_binary(read_head(task.read_path)):
            raise SourceError(
                f"{task.path}: binary data, not a text log",
                fix="exclude it (sources.exclude) or point loglake at the text logs",
            )
        first: list[bytes] = []
        for rb in read_lines(task.read_path, 0, max_line=task.max_line, chunk=1 << 16, final=True):
            first.extend(rb.lines)
            if len(first) >= HEAD_LINES:
                break
        envelope_kind = detect_envelope(first[:HEAD_LINES])
        dec = EnvelopeDecoder(envelope_kind)
        head = clean_lines(dec.decode_lines(first[:HEAD_LINES]))[0]
    info = FileInfo(path=task.path, head=tuple(head))
    if cp and cp.get("parser_names"):
        chosen = [registry.get(n) for n in cp["parser_names"] if n in registry.entries]
    else:
        chosen = registry.select(info, task.routed, auto_detect=task.auto_detect)
    parsers = FileParsers(chosen, (cp or {}).get("parsers"))
    summaries: dict[str, dict[str, Any]] = (cp or {}).get("summaries") or {}
    decoder = EnvelopeDecoder(envelope_kind, (cp or {}).get("envelope_state"))
    resolver = RunResolver(task.identity, summaries)
    out = Emitter()
    lines_total = int((cp or {}).get("lines", 0))
    parser_list = ",".join(f"{p.name}@{p.version}" for p in parsers.parsers)
    offset = start
    pending: dict[str, list[pa.Table]] = {}
    gaps: list[tuple[str, int, int, str]] = []

    def entry(idle_final: bool) -> dict[str, Any]:
        return {
            "path": task.path,
            "fp_len": task.fp_len,
            "offset": offset,
            "tail": tail_hash(task.read_path, offset) if offset and not task.compressed else None,
            "size": task.size,
            "mtime": task.mtime,
            "envelope": envelope_kind,
            "envelope_state": decoder.state,
            "parser_names": [p.name for p in parsers.parsers],
            "parsers": parsers.snapshot(),
            "summaries": summaries,
            "run": {
                "namespace": task.identity.namespace,
                "experiment": task.identity.experiment,
                "run": task.identity.run,
                "rank": task.identity.rank,
            },
            "lines": lines_total,
            "idle_final": idle_final,
        }

    def drain(final: bool, final_from: int | None = None) -> ChunkResult:
        now = datetime.now(tz=UTC)
        absorb(summaries, out, final_from=final_from)
        tables = record_tables(
            out, resolver, source_fp=task.fp, source_path=task.path, observed_at=now
        )
        for name, t in tables.items():
            pending.setdefault(name, []).append(t)
        if gaps:
            pending.setdefault("gaps", []).append(gap_table(task.path, task.fp, gaps, now))
        pending.setdefault("runs", []).append(
            run_rows(
                resolver,
                source_fp=task.fp,
                source_path=task.path,
                end_offset=offset,
                lines=lines_total,
                nbytes=offset,
                observed_at=now,
                parsers=parser_list,
            )
        )
        stats = {
            "metrics": len(out.metrics),
            "params": len(out.params),
            "errors": len(out.errors),
            "gaps": len(gaps),
        }
        result = ChunkResult(
            fp=task.fp,
            path=task.path,
            tables=_concat(pending),
            checkpoint=entry(final and task.idle),
            stats=stats,
            final=final,
        )
        out.clear()
        pending.clear()
        gaps.clear()
        return result

    def consume(decoded: Any) -> None:
        nonlocal lines_total
        raws: dict[int, str] = {}
        texts, flags = clean_lines(decoded.lines, decoded.controls, raws)
        for g in decoded.gaps:
            gaps.append((g.kind, g.offset, g.bytes, g.detail))
        redraws: RedrawStates | None = None
        # Few lines carry a flag: visit only those (C-level ``compress``), not every line.
        flagged = list(compress(range(len(flags)), flags))
        if flagged:
            redrawn: list[int] = []
            offsets = decoded.offsets
            for i in flagged:
                fl = flags[i]
                if fl & FLAG_INVALID_UTF8:
                    gaps.append(
                        ("invalid_utf8", offsets[i], 0, "decoded with replacement characters")
                    )
                if fl & FLAG_REDRAWN:
                    redrawn.append(i)
            if redrawn:
                redraws = RedrawStates(decoded.lines, redrawn, raws)
        batch = LineBatch(texts=texts, offsets=decoded.offsets, ts=decoded.ts, redraws=redraws)
        parsers.feed(batch, out)
        lines_total += len(texts)

    prev_offset = offset
    for rb in read_lines(task.read_path, start, max_line=task.max_line, final=task.idle):
        stop = task.stop_at is not None and rb.end_offset >= task.stop_at
        if stop:
            rb = _clip(rb, task.stop_at)  # type: ignore[arg-type]
        consume(decoder.feed(rb))
        if on_bytes is not None:
            on_bytes(rb.end_offset - offset)
        offset = rb.end_offset
        del rb  # its lines' bytes must not live on while the next chunk is read and split
        if out.count() >= task.flush_records:
            yield drain(final=False)
        if stop:
            break
    if task.idle:
        consume(decoder.flush())  # a last partial CRI/Docker line, emitted once
    # Reset the end-of-file verdicts: this finalize replaces any earlier one.
    for s in summaries.values():
        s["final"] = None
    final_from = len(out.statuses)
    parsers.finalize(out, idle=task.idle, offset=max(offset - 1, 0))
    stats_bytes = offset - prev_offset
    result = drain(final=True, final_from=final_from)
    result.stats["bytes"] = stats_bytes
    result.stats["lines"] = lines_total
    yield result


def _clip(rb: ReadBatch, stop_at: int) -> ReadBatch:
    keep = sum(1 for o in rb.offsets if o < stop_at)
    gaps = [g for g in rb.gaps if g.offset < stop_at]
    controls = None if rb.controls is None else [i for i in rb.controls if i < keep]
    return ReadBatch(rb.lines[:keep], rb.offsets[:keep], stop_at, gaps, controls)


def file_mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return time.time()
