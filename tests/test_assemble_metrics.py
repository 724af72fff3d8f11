"""Assembly of metric rows: rows handed over as Arrow chunks become the same lake rows, in
the same order, as the same values emitted one ``Emitter.metric`` call at a time."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from loglake.index.assemble import RunResolver, record_tables
from loglake.parse.records import Columns, Emitter
from loglake.runs.identity import RunIdentity

_ROWS: list[tuple[Any, ...]] = [  # sub, key, value, step, epoch, ts, offset
    (None, "loss", 0.5, 1, None, 1_700_000_000.25, 10),
    ("trial-1", "loss", math.nan, 2, 0.5, None, 20),
    (None, "acc", math.inf, None, 1.0, math.nan, 30),
    ("trial-2", "acc", -1.0, 2**40, None, 1e20, 40),  # a stamp past datetime's range
    (None, "lr", 1e-4, 3, 2.0, -5.0, 50),
]


def _tables(out: Emitter) -> dict[str, pa.Table]:
    resolver = RunResolver(RunIdentity("ns", "exp", "run"), {"trial-1": {"experiment": "hp"}})
    at = datetime(2026, 1, 2, tzinfo=UTC)
    return record_tables(out, resolver, source_fp="fp", source_path="p.log", observed_at=at)


def _one_call_per_value(rows: list[tuple[Any, ...]], out: Emitter, parser: str) -> None:
    out.parser = parser
    for sub, key, value, step, epoch, ts, offset in rows:
        out.metric(key, value, offset, step=step, epoch=epoch, ts=ts, sub=sub)


def _as_chunk(rows: list[tuple[Any, ...]], out: Emitter, parser: str) -> None:
    out.parser = parser
    sub, key, value, step, epoch, ts, offset = (list(c) for c in zip(*rows, strict=True))
    out.metric_arrays(
        pa.array(key),
        pa.array(value, pa.float64()),
        pa.array(offset),
        step=pa.array(step, pa.int64()),
        epoch=pa.array(epoch, pa.float64()),
        ts=pa.array(ts, pa.float64()),
        sub=pa.array(sub, pa.string()),
    )


def _same(a: pa.Table, b: pa.Table) -> bool:
    """Equal schemas and rows in the same order (NaN equal to NaN)."""

    def rows(t: pa.Table) -> list[tuple[Any, ...]]:
        return [
            tuple("nan" if isinstance(v, float) and math.isnan(v) else v for v in r.values())
            for r in t.to_pylist()
        ]

    return a.schema == b.schema and rows(a) == rows(b)


def test_chunks_between_listed_rows_give_the_listed_rows_table() -> None:
    listed, chunked = Emitter(), Emitter()
    for n, part in enumerate((_ROWS[:2], _ROWS[2:3], _ROWS[3:], _ROWS)):
        parser = f"p{n}@1"
        _one_call_per_value(part, listed, parser)
        (_as_chunk if n % 2 else _one_call_per_value)(part, chunked, parser)
    assert chunked.metrics.chunks
    a, b = _tables(listed)["metrics"], _tables(chunked)["metrics"]
    assert a.num_rows == 2 * len(_ROWS) and _same(a, b)
    ts = b.column("ts").to_pylist()
    assert ts[0] == datetime(2023, 11, 14, 22, 13, 20, 250000, tzinfo=UTC)
    assert ts[1:4] == [None, None, None]  # none, NaN, out of range
    assert len(set(b.column("run_id").to_pylist())) == 3


def test_only_chunks_and_one_run() -> None:
    rows = [r for r in _ROWS if r[0] is None]
    listed, chunked = Emitter(), Emitter()
    _one_call_per_value(rows, listed, "g@1")
    _as_chunk(rows, chunked, "g@1")
    _as_chunk(rows, chunked, "g@1")
    _one_call_per_value(rows, listed, "g@1")
    assert not chunked.metrics.lists["key"]
    assert _same(_tables(listed)["metrics"], _tables(chunked)["metrics"])


def test_plain_column_lists_still_assemble() -> None:
    out = Emitter()
    out.metrics = Columns(out.metrics.names)
    _one_call_per_value(_ROWS, out, "g@1")
    reference = Emitter()
    _one_call_per_value(_ROWS, reference, "g@1")
    assert _same(_tables(out)["metrics"], _tables(reference)["metrics"])
    assert "metrics" not in _tables(Emitter())
