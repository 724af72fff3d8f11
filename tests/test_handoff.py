"""Chunks handed from a parallel index's workers to its coordinator through the spool."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa

from loglake.index.handoff import (
    _PREFIX,
    SPOOL_MIN_BYTES,
    Spooled,
    make_spool,
    pack,
    spool_root,
    unpack,
)
from loglake.index.job import ChunkResult


def _chunk(rows: int) -> ChunkResult:
    metrics = pa.table(
        {
            "run_id": pa.array([f"run-{i % 3}" for i in range(rows)]),
            "value": pa.array([i / 7 for i in range(rows)], pa.float64()),
            "step": pa.array([None if i % 5 == 0 else i for i in range(rows)], pa.int64()),
        }
    ).slice(1)  # a slice: offsets into its buffers must survive the trip
    runs = pa.table({"run_id": ["run-0"], "lines": pa.array([rows], pa.int64())})
    empty = pa.table({"key": pa.array([], pa.string())})
    return ChunkResult(
        fp="fp1",
        path="/logs/a.log",
        tables={"metrics": metrics, "params": empty, "runs": runs},
        checkpoint={"offset": 123, "states": {"generic": [1, 2]}},
        stats={"metrics": rows - 1, "bytes": 456},
        final=True,
    )


def test_large_chunk_is_spooled_and_comes_back_equal(tmp_path: Path) -> None:
    chunk = _chunk(40_000)
    assert sum(t.nbytes for t in chunk.tables.values()) >= SPOOL_MIN_BYTES
    item = pack(chunk, tmp_path, 1)
    assert isinstance(item, Spooled)
    assert item.chunk.tables == {}
    back = unpack(item)
    assert not Path(item.path).exists()  # unlinked once mapped: nothing left to clean
    assert list(back.tables) == list(chunk.tables)
    for name, table in chunk.tables.items():
        assert back.tables[name].equals(table), name
        assert back.tables[name].schema == table.schema
    assert (back.fp, back.path, back.checkpoint, back.stats, back.final) == (
        chunk.fp,
        chunk.path,
        chunk.checkpoint,
        chunk.stats,
        chunk.final,
    )


def test_small_chunk_or_no_spool_goes_through_the_queue(tmp_path: Path) -> None:
    small = _chunk(10)
    assert pack(small, tmp_path, 1) is small
    large = _chunk(40_000)
    assert pack(large, None, 1) is large
    assert unpack(large) is large
    assert list(tmp_path.iterdir()) == []


def test_unwritable_spool_falls_back_to_the_queue(tmp_path: Path) -> None:
    chunk = _chunk(40_000)
    assert pack(chunk, tmp_path / "gone", 1) is chunk


def test_spools_of_dead_processes_are_removed_live_ones_kept() -> None:
    root = spool_root()
    dead = root / f"{_PREFIX}{2**22 + 12345}-test"  # above any pid_max: no such process
    live = root / f"{_PREFIX}{os.getpid()}-test"
    for d in (dead, live):
        d.mkdir()
        (d / "x.arrows").write_bytes(b"left over")
    mine = make_spool()
    try:
        assert not dead.exists()
        assert live.exists()
        assert mine.is_dir() and mine.name.startswith(f"{_PREFIX}{os.getpid()}-")
    finally:
        for d in (dead, live, mine):
            if d.exists():
                for f in d.iterdir():
                    f.unlink()
                d.rmdir()
