"""How a parallel index's workers hand their chunks' rows to the coordinator.

A chunk's tables (a few MB per 5 MB of log) used to be pickled into the result queue: the
worker copied them into a pickle and into the pipe, the coordinator read the pipe in 64 KB
pieces, copied them into one bytes object and unpickled them into new Arrow buffers: ~14 ms
of CPU per chunk, ~2.5 CPU-s on 1 GB of logs. Instead the worker writes the tables as Arrow
IPC streams to a file in a spool directory in RAM (``/dev/shm`` where there is one) and
queues only the file's name and layout; the coordinator memory-maps the file (the tables'
buffers point into the mapping, no copy) and unlinks it at once, so the pages are freed with
the last table that uses them. ~3 ms per chunk in all.

Small chunks (a tail's few new lines) and a spool that cannot be written (full tmpfs) go
through the queue pickled, as before. Spool files are only transport: the coordinator commits
rows and checkpoints exactly as it did, so crash safety is unchanged. A coordinator killed
hard leaves its spool directory behind; the next parallel index removes spool directories
whose process is gone.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import pyarrow as pa

from loglake.index.job import ChunkResult
from loglake.lake.checkpoint import pid_alive

#: chunks whose tables hold fewer bytes than this are pickled into the queue
SPOOL_MIN_BYTES = 256 << 10

_PREFIX = "loglake-handoff-"


@dataclass(frozen=True)
class Spooled:
    """A chunk whose tables wait in ``path``: (table name, start, end) byte ranges."""

    path: str
    layout: tuple[tuple[str, int, int], ...]
    chunk: ChunkResult  # with no tables


def spool_root() -> Path:
    """RAM-backed when the system has it: spooled bytes are read back within moments."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK):
        return shm
    return Path(tempfile.gettempdir())


def make_spool() -> Path:
    """A fresh spool directory for this process, after removing those of dead processes."""
    root = spool_root()
    for old in root.glob(f"{_PREFIX}*"):
        pid = old.name[len(_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-", dir=root))


def pack(chunk: ChunkResult, spool: Path | None, seq: int) -> ChunkResult | Spooled:
    """What a worker queues for ``chunk``; ``seq`` is unique within the worker."""
    if spool is None or sum(t.nbytes for t in chunk.tables.values()) < SPOOL_MIN_BYTES:
        return chunk
    path = spool / f"{os.getpid()}-{seq}.arrows"
    layout = []
    try:
        with pa.OSFile(str(path), "wb") as f:
            for name, table in chunk.tables.items():
                start = f.tell()
                with pa.ipc.new_stream(f, table.schema) as w:
                    w.write_table(table)
                layout.append((name, start, f.tell()))
    except OSError:
        path.unlink(missing_ok=True)
        return chunk
    return Spooled(str(path), tuple(layout), replace(chunk, tables={}))


def unpack(item: ChunkResult | Spooled) -> ChunkResult:
    """The chunk a worker queued, its tables read without copying from the spool file."""
    if isinstance(item, ChunkResult):
        return item
    source = pa.memory_map(item.path)
    try:
        tables = {
            name: pa.ipc.open_stream(source.read_at(end - start, start)).read_all()
            for name, start, end in item.layout
        }
    finally:
        os.unlink(item.path)  # the mapping lives on with the tables' buffers
    return replace(item.chunk, tables=tables)
