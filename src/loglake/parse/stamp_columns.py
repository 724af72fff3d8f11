"""Where the messages of many lines start, their stamps' dates checked as Arrow columns.

``LineBatch.message_starts`` serves a parser that reads a few thousand lines of a batch in
place (the artifacts parser: a checkpoint saved every few steps). Every line of one shape
splits as the shape's ``ShapeSplit`` says when its stamp is a valid date (``dated_as``), so
the split is looked up once per shape; what is left per line is that date check, and a
log's lines share a few layouts of stamp fields. Per layout, the lines' minute texts (from
year to minute) are sliced out as one column and each distinct minute is checked once
(``minute_at``, cached by that text as ``dated_as`` caches it), the seconds are one integer
cast; only a line whose date is no date, or whose shape gives no fields to check, is split
by ``message_at`` itself. The starts are exactly ``message_at``'s (tests/test_timestamps.py).
"""

from __future__ import annotations

from typing import Any

from loglake.parse.timestamps import ShapeSplit, StampFields, message_split, minute_at


def message_starts(batch: Any, lines: list[int], shape_ids: list[int]) -> list[int]:
    """``batch.message_at(i)`` for each of ``lines`` (``shape_ids``: their shapes' ids, equal
    ids for equal shapes); ``batch`` is a ``LineBatch`` with an Arrow array of its lines."""
    import pyarrow as pa
    import pyarrow.compute as pc

    texts = batch.texts
    first = dict(zip(reversed(shape_ids), reversed(lines), strict=True))  # shape -> 1st line
    n_ids = max(first) + 1
    fixed: list[int | None] = [None] * n_ids  # a shape's start: every line, or each dated one
    layout: list[int] = [-1] * n_ids  # which stamp layout its lines' dates are checked by
    layouts: dict[StampFields, int] = {}
    for shape, i in first.items():
        how: ShapeSplit | None = message_split(texts[i])
        if how is None:
            continue
        if how.pattern is None:  # no stamp: every line of the shape is split so
            fixed[shape] = how.message_at
        elif how.fields is not None and _checkable(how.fields):
            fixed[shape] = how.message_at
            layout[shape] = layouts.setdefault(how.fields, len(layouts))
    ids = pa.array(shape_ids, pa.int32())
    at = pc.take(pa.array(fixed, pa.int64()), ids)
    afresh = pc.indices_nonzero(pc.is_null(at)).to_pylist()  # lines split by message_at
    if layouts:
        row_layouts = pc.take(pa.array(layout, pa.int32()), ids)
        rows_text = batch.arrow().take(pa.array(lines, pa.int64()))
        for fields, number in layouts.items():
            rows = pc.indices_nonzero(pc.equal(row_layouts, number))
            dated = _dated(rows_text.take(rows), fields)
            afresh += (rows if dated is None else rows.filter(pc.invert(dated))).to_pylist()
    starts = at.to_pylist()
    for k in afresh:
        starts[k] = batch.message_at(lines[k])
    return starts  # type: ignore[return-value]


def _checkable(fields: StampFields) -> bool:
    """Whether the stamp's year-to-minute text holds its date parts (so one minute text
    checks them) and its seconds come after it."""
    k0, k1, s0, s1, _, _, parts = fields
    return all(k0 <= a <= b <= k1 for a, b in parts) and k1 <= s0 <= s1


def _dated(texts: Any, fields: StampFields) -> Any:
    """Per line of one stamp layout (an Arrow string array), ``dated_as``: its minute is a
    date and its seconds below 61; None when the seconds are no plain digits (``int``
    reads more forms than Arrow's cast: such lines are checked one by one)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    k0, k1, s0, s1, _, _, parts = fields
    minutes = pc.dictionary_encode(pc.utf8_slice_codeunits(texts, k0, k1))
    inside = tuple((a - k0, b - k0) for a, b in parts)
    known = [
        minute_at(text, 0, k1 - k0, inside) is not None for text in minutes.dictionary.to_pylist()
    ]
    try:
        seconds = pc.cast(pc.utf8_slice_codeunits(texts, s0, s1), pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    minute_ok = pa.array(known, pa.bool_()).take(minutes.indices)
    return pc.and_(minute_ok, pc.less(seconds, 61))
