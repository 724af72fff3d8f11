"""The generic metrics parser's walk over a batch whose line shapes repeat.

``GenericMetricsParser`` reads a line at a time: a traceback or a table, once opened, decides
how the next lines read, and a line's step/epoch comes from the last one that named them.
Here only the lines that need that are read one at a time, in order (``shape_columns.
ShapeColumns.slow``, and every line while a traceback or table is open); the lines of shapes
read at fixed places are read as columns, and get their step/epoch afterwards from the
running context, a forward fill over what the fast lines name and what the running context
was after each line read on its own. Their metric rows are merged with the others in line
order, so the rows are exactly the line-by-line walk's, and handed over as one Arrow chunk
(``Emitter.metric_arrays``): no Python object per value.
"""

from __future__ import annotations

import copy
from bisect import bisect_left
from collections.abc import Callable
from itertools import accumulate
from typing import Any

from loglake.parse.records import METRIC_COLUMNS, Emitter, MetricRows, chunk_schema
from loglake.parse.shape_columns import (
    ALWAYS,
    NOT_OWN,
    OWN,
    ShapeColumns,
    arange,
    context,
    shape_columns,
)

#: reads line ``i`` on its own: (batch, i, claimed, state, out, rows)
ReadLine = Callable[[Any, int, bool, dict[str, Any], Emitter, MetricRows], None]
#: reads line ``i`` by its shape's reading: (reading, text, offset, ts, claimed, state, rows);
#: False when the line must be read on its own after all
ReadFixed = Callable[[Any, str, int, Any, bool, dict[str, Any], MetricRows], bool]


class _Unfit(Exception):
    """A value the columns cannot hold (a step past int64): read the batch line by line."""


def walk_shapes(
    batch: Any,
    state: dict[str, Any],
    out: Emitter,
    rows: MetricRows,
    candidates: list[int],
    shapes: Any,
    read: ReadLine,
    read_fixed: ReadFixed,
    context_mask: Callable[[], Any],
) -> bool:
    """Read the batch; False (having changed nothing) when it must be read line by line.

    ``context_mask()``: per line of the batch (Arrow bool), whether a claimed line may set
    the context (``CONTEXT_CANDIDATES``' mask: on the candidates, the lines
    ``batch.matching(CANDIDATES, CONTEXT_CANDIDATES)`` gives, without listing them)."""
    import pyarrow as pa

    saved = copy.deepcopy(state)
    errors = out.errors.mark()
    try:
        _walk(batch, state, out, rows, candidates, shapes, read, read_fixed, context_mask)
    except (_Unfit, pa.ArrowException, OverflowError):  # a value Arrow cannot hold
        state.clear()
        state.update(saved)
        out.errors.truncate(errors)
        return False
    return True


def _walk(
    batch: Any,
    state: dict[str, Any],
    out: Emitter,
    rows: MetricRows,
    candidates: list[int],
    shapes: Any,
    read: ReadLine,
    read_fixed: ReadFixed,
    context_mask: Callable[[], Any],
) -> None:
    import pyarrow as pa
    import pyarrow.compute as pc

    texts, offsets = batch.texts, batch.offsets
    claimed = out.claimed
    m = len(candidates)
    mine_list = [offsets[i] in claimed for i in candidates]
    mine = pa.array(mine_list, pa.bool_())
    picks = pa.array(candidates, pa.int32())
    skip = pa.repeat(False, m)
    if any(mine_list):  # a claimed line outside CONTEXT_CANDIDATES cannot change anything
        in_context = pc.take(context_mask(), picks)
        skip = pc.and_not(mine, in_context)
    columns = shape_columns(batch, shapes, candidates, picks, mine, skip)
    start = (state["step"], state["epoch"])
    before = _fast_before(columns, m)

    # the lines read on their own, in order; their rows go to a side emitter, merged below
    side = Emitter()
    side_rows = MetricRows(side)
    syncs: dict[int, tuple[Any, Any]] = {}  # candidate -> running (step, epoch) right after it
    covered: list[tuple[int, int]] = []  # candidates read inside a traceback or table
    last = -1  # the last candidate read on its own (fast lines after it set the context)
    n = len(texts)
    i = 0
    slow, readings, stamps, tss = columns.slow, columns.readings, columns.stamps, batch.ts
    j = 0
    while True:
        if state["tb"] or state["cols"]:
            first = bisect_left(candidates, i)
            while i < n and (state["tb"] or state["cols"]):
                if state["tb"]:
                    i = traceback_end(texts, i, state)
                    continue
                read(batch, i, offsets[i] in claimed, state, out, side_rows)
                i += 1
            end = bisect_left(candidates, i)
            if end > first:
                covered.append((first, end))
            if end == 0:
                start = (state["step"], state["epoch"])
            else:
                last = end - 1
                syncs[last] = (state["step"], state["epoch"])
            if i >= n:
                break
            continue
        while j < len(slow) and candidates[slow[j]] < i:
            j += 1
        if j >= len(slow):
            break
        k = slow[j]
        step_at, step, epoch_at, epoch = before[j]
        if step_at is not None and step_at > last:
            state["step"] = step
        if epoch_at is not None and epoch_at > last:
            state["epoch"] = epoch
        i = candidates[k]
        reading = readings[j]
        if reading is None or not (
            (reading.stamp is None or stamps[j] is not None)
            and read_fixed(
                reading,
                texts[i],
                offsets[i],
                _ts(tss, i, stamps[j]),
                mine_list[k],
                state,
                side_rows,
            )
        ):
            read(batch, i, mine_list[k], state, out, side_rows)
        last = k
        syncs[k] = (state["step"], state["epoch"])
        i += 1
        j += 1

    fast = columns.fast
    if covered:
        inside = [False] * m
        for a, b in covered:
            inside[a:b] = [True] * (b - a)
        fast = pc.and_not(fast, pa.array(inside, pa.bool_()))
    try:
        at_step, at_epoch, end_step, end_epoch = context(
            columns, fast, sorted((k, *v) for k, v in syncs.items()), start
        )
    except (pa.ArrowException, OverflowError, TypeError) as e:
        raise _Unfit from e
    state["step"], state["epoch"] = end_step, end_epoch
    fast_rows = _fast_rows(batch, picks, columns, pc.and_not(fast, mine), at_step, at_epoch)
    _merge(rows, fast_rows, side.metrics.data)


def traceback_end(texts: list[str], i: int, state: dict[str, Any]) -> int:
    """The line after an open traceback's last line, from line ``i`` (as the parser reads
    it: frames and source lines are indented, blank lines belong to it, the exception line
    ends it); closes the traceback in ``state`` when its end is in the batch."""
    n = len(texts)
    while i < n:
        text = texts[i]
        i += 1
        if text and text[0] not in " \t" and text.strip():
            state["tb"] = False
            break
    return i


def _ts(tss: list[float | None] | None, i: int, stamp: float | None) -> float | None:
    ts = tss[i] if tss is not None else None
    return stamp if ts is None else ts


def _fast_before(columns: ShapeColumns, m: int) -> list[tuple[Any, Any, Any, Any]]:
    """Per line read on its own: (candidate, step) of the last fast line before it that
    names a step, and likewise for the epoch (None: no such line)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    slow = pa.array(columns.slow, pa.int32())
    got = []
    for own in (columns.step, columns.epoch):
        named = pc.and_(columns.fast, pc.is_valid(own))
        at = pc.if_else(named, arange(m), pa.scalar(None, pa.int32()))
        filled = pc.fill_null_forward(at)
        prior = pa.concat_arrays([pa.nulls(1, pa.int32()), filled[:-1]]) if m else filled
        where = pc.take(prior, slow)
        got.append(where.to_pylist())
        got.append(pc.take(own, pc.fill_null(where, 0)).to_pylist() if m else [])
    return list(zip(*got, strict=True))


def _fast_rows(
    batch: Any,
    picks: Any,
    columns: ShapeColumns,
    emitting: Any,
    at_step: Any,
    at_epoch: Any,
) -> Any:
    """The metric rows of the fast lines, in line order (a line's metrics in its plan's
    order), as an Arrow table of ``chunk_schema`` (None: no rows)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    emits = [e for e in columns.emits if len(e[0])]  # run ends must rise
    if not emits:
        return None
    names = sorted({e[1] for e in emits})
    number = {key: n for n, key in enumerate(names)}
    k = pa.concat_arrays([e[0] for e in emits])
    ends = pa.array(list(accumulate(len(e[0]) for e in emits)), pa.int32())

    def repeated(values: list[int], kind: Any = None) -> Any:  # each emit's value per row
        return pc.run_end_decode(pa.RunEndEncodedArray.from_arrays(ends, pa.array(values, kind)))

    keep = pc.take(emitting, k)
    whens = {e[4] for e in emits}
    if whens != {ALWAYS}:  # OWN / NOT_OWN: whether the row's line names its own counters
        own = pc.or_(pc.is_valid(columns.step), pc.is_valid(columns.epoch))
        line_is = pc.if_else(pc.take(own, k), OWN, NOT_OWN).cast(pa.int8())
        when = repeated([e[4] for e in emits], pa.int8())
        keep = pc.and_(keep, pc.or_(pc.equal(when, ALWAYS), pc.equal(when, line_is)))

    table = pa.table(
        {
            "k": k,
            "q": repeated([e[3] for e in emits]),
            "key": repeated([number[e[1]] for e in emits]),
            "value": pa.concat_arrays([e[2] for e in emits]),
        }
    ).filter(keep)
    if not table.num_rows:
        return None
    table = table.sort_by([("k", "ascending"), ("q", "ascending")])
    k = table.column("k")
    lines = pc.take(picks, k)
    tss = batch.ts
    stamps = pc.take(columns.ts, k)
    if tss is not None and tss.count(None) < len(tss):  # the envelope's times come first
        stamps = pc.coalesce(pc.take(batch.ts_array(), lines), stamps)
    schema = chunk_schema()
    return pa.Table.from_arrays(
        [
            pa.nulls(table.num_rows, pa.string()),
            pc.take(pa.array(names, pa.string()), table.column("key")),
            table.column("value"),
            pc.take(at_step, k),
            pc.take(at_epoch, k),
            stamps,
            pc.take(batch.offsets_array(), lines),
        ],
        schema=schema,
    )


def _merge(rows: MetricRows, fast: Any, side: dict[str, list[Any]]) -> None:
    """Both sets of rows onto ``rows`` in line order (by offset: a line is read one way, and
    each set is in line order already, so a stable sort by offset merges them)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    names = METRIC_COLUMNS[:-1]
    if fast is None:
        if side["key"]:
            rows.extend([side[c] for c in names])
        return
    if side["key"]:
        schema = chunk_schema()
        listed = pa.Table.from_arrays(
            [pa.array(side[f.name], f.type) for f in schema], schema=schema
        )
        both = pa.concat_tables([fast, listed])
        fast = both.take(pc.sort_indices(both.column("offset")))
    rows.extend_arrays(
        fast.column("key"),
        fast.column("value"),
        fast.column("offset"),
        step=fast.column("step"),
        epoch=fast.column("epoch"),
        ts=fast.column("ts"),
        sub=fast.column("sub"),
    )
