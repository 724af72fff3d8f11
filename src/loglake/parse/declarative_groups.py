"""Reading a run of planned lines in whole shape groups, as Arrow columns.

``declarative_shapes`` plans each line shape once (which rules match, where their groups
are); ``run_plan`` then still reads the lines one at a time. A run of consecutive
candidate lines that all have a plan (no section or table open, no redrawn line among
them) changes nothing of the parser's state but the step/epoch context and the framework
fact, so it can be read out of order: every shape with enough lines is read as columns
(its values sliced at their places and cast, as the generic parser's ``shape_columns``
does), the other lines one by one, and the rows are put back in line order with a sort
and handed over as Arrow columns (``MetricRows.extend_arrays``: no Python object per
value). The context a line leaves behind is the last step/epoch set by it or before it: a
forward fill over the run. Finding the run takes no step per line either (``Ahead``: the
candidates' shapes as an Arrow column, the run's end found by bisection).

The run is read this way only when every plan in it fits what this reader knows (no
``clear``, no context set after a metric of the same line, conversions that are ``int``/
``float`` of plain digits or fixed texts, keys fixed or one slice, maybe in a format). Otherwise
(or when Arrow refuses a cast) ``read_run`` returns None before touching any state and the
caller reads the run line by line; the records are the same either way
(tests/test_declarative_shapes.py checks that on generated lines).
"""

from __future__ import annotations

import itertools
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from loglake.parse.declarative_emit import line_ts
from loglake.parse.declarative_runs import BatchColumns
from loglake.parse.declarative_shapes import (
    _CONTEXT,
    _NONE,
    _TEMPLATE,
    CONST,
    FORMAT,
    SLICE,
    read,
    run_plan,
)
from loglake.parse.shape_columns import Scatter, arange, floats, ints
from loglake.parse.shape_groups import PLAIN_FORMS, slice_at
from loglake.parse.values import to_number

#: a shape with fewer lines in the run is read line by line (an Arrow call costs 5-30 µs)
MIN_GROUP = 64
#: a shorter run is read line by line by the caller (``run_plan``): a run read here costs
#: ~0.5 ms of Arrow calls, then ~0.4 µs per row instead of ~1 µs per line
MIN_RUN = 1024
#: a run with less of its lines in groups of MIN_GROUP is read line by line by the caller
MIN_GROUPED = 0.75
_STEP, _EPOCH = "step", "epoch"


class _Unfit(Exception):
    """A plan or a group this reader does not read: the run goes line by line."""


class _Rows:
    """The rows of a run in pieces (Arrow arrays or lists), put in line order at the end."""

    def __init__(self) -> None:
        self.keys: list[str] = []  # key table: rows hold indices into it
        self.key_ids: dict[str, int] = {}
        self.pieces: list[tuple[Any, ...]] = []  # (j, q, key id, value, step, s_ctx, epoch, e_ctx)
        self.marks: list[Any] = []  # run positions of lines whose rows name the framework
        self.stamped = False  # a row's line may carry its own stamp (not ``stampless``)
        self.start: dict[str, Any] = {}  # the context before the run

    def key_id(self, key: str) -> int:
        got = self.key_ids.get(key)
        if got is None:
            got = self.key_ids[key] = len(self.keys)
            self.keys.append(key)
        return got


def _supported(plan: tuple[Any, ...]) -> bool:
    """Whether every line of ``plan``'s shape can be read here (see the module doc)."""
    emitted = False
    uses: set[tuple[bool, bool]] = set()  # how its metrics use the context: one way
    for clear, setters, emit, _, _ in plan:
        if clear or (setters and emitted):
            return False
        for _, piece, conv in setters:
            if not (piece[0] == CONST or (piece[0] == SLICE and conv in (int, float))):
                return False
        if emit is None:
            continue
        emitted = True
        uses.add((emit[0] != _NONE, emit[1] != _NONE))
        for step_p, epoch_p, values in emit[3]:
            for piece, conv in (step_p, epoch_p):
                if not (piece[0] == CONST or (piece[0] == SLICE and conv in (int, float))):
                    return False
            for value_p, key_p, numeric in values:
                if value_p[0] == SLICE and not numeric:
                    return False
                if value_p[0] not in (CONST, SLICE) or key_p[0] not in (CONST, SLICE, FORMAT):
                    return False
    return len(uses) <= 1


def read_run(
    lines: Any,
    plans: dict[int, Any],
    cols: BatchColumns,
    ok: Any,
    ctx: dict[str, Any],
    rows: Any,
    is_blocked: Any,
) -> int | None:
    """Read the planned lines ``lines`` (an Arrow array of batch indices, ascending) in
    shape groups; their rows go to ``rows`` (``MetricRows``) and the context after them to
    ``ctx``. ``ok``: per line, not blocked by an earlier parser's claim (None: none is).
    Returns the offset of the first line whose rows name the framework (-1: none), or None
    when the run must be read line by line (nothing done)."""
    start_step, start_epoch = ctx[_STEP], ctx[_EPOCH]
    if not (start_step is None or type(start_step) is int) or not (
        start_epoch is None or type(start_epoch) is float
    ):
        return None
    shape = cols.index.take(lines)
    order = pc.sort_indices(shape).cast(pa.int32())  # stable: a shape's lines in order
    ordered = shape.take(order)
    n = len(lines)
    starts = pc.indices_nonzero(pc.not_equal(ordered.slice(1), ordered.slice(0, n - 1)))
    bounds = [0, *(b + 1 for b in starts.to_pylist()), n]
    groups: list[tuple[Any, Any]] = []
    big = 0
    for a, b in itertools.pairwise(bounds):
        plan = plans[ordered[a].as_py()]
        if not _supported(plan):
            return None
        groups.append((plan, order.slice(a, b - a)))
        big += b - a if b - a >= MIN_GROUP else 0
    if big < MIN_GROUPED * n:
        return None  # shapes of a few lines each: read line by line, the cheaper here
    try:
        return _read(lines, groups, cols, ok, ctx, rows, is_blocked)
    except (_Unfit, pa.ArrowException, ValueError, OverflowError):
        return None


def _read(
    lines: Any,
    groups: list[tuple[Any, Any]],
    cols: BatchColumns,
    ok: Any,
    ctx: dict[str, Any],
    rows: Any,
    is_blocked: Any,
) -> int:
    n = len(lines)
    out = _Rows()
    out.start = {_STEP: ctx[_STEP], _EPOCH: ctx[_EPOCH]}
    own: dict[str, tuple[list[Any], list[Any]]] = {_STEP: ([], []), _EPOCH: ([], [])}
    slow: list[tuple[int, int, Any]] = []
    texts = cols.texts
    binary = cols.binary
    for plan, at in groups:
        first = texts[lines[at[0].as_py()].as_py()]
        if binary is None or len(at) < MIN_GROUP or not first.isascii():
            slow.extend(
                zip(at.to_pylist(), lines.take(at).to_pylist(), [plan] * len(at), strict=True)
            )
            continue
        group_ok = None if ok is None else ok.take(at)
        _group(plan, at, binary.take(lines.take(at)), group_ok, out, own)
    if slow:
        slow.sort(key=_first)
        _lines(slow, texts, is_blocked, out, own)
    after = {name: _filled(n, *own[name], ctx[name]) for name in (_STEP, _EPOCH)}
    _emit(out, lines, cols, after, rows)
    for name in (_STEP, _EPOCH):
        if after[name] is not None:
            ctx[name] = after[name][n].as_py()
    if not out.marks:
        return -1
    first = min(m if isinstance(m, int) else m[0].as_py() for m in out.marks)
    return cols.offsets[lines[first].as_py()]


def _first(item: tuple[int, int, Any]) -> int:
    return item[0]


def _group(
    plan: tuple[Any, ...], at: Any, lines: Any, ok: Any, out: _Rows, own: dict[str, Any]
) -> None:
    """One shape's lines (``at``: their run positions; ``ok``: not blocked by a claim)."""
    for _, setters, emit, claiming, marks in plan:
        for name, piece, conv in setters:
            values = _column(piece, conv, lines)
            if values is not None:
                own[name][0].append(at)
                own[name][1].append(values)
        if emit is None:
            continue
        step_how, epoch_how, per_pair, entries, no_stamp = emit
        out.stamped |= not no_stamp
        keep = at if ok is None or not claiming else pc.filter(at, ok)
        if len(keep) == 0:
            continue
        sel = None if keep is at else ok
        step = epoch = None
        emitted = False
        for e, (step_p, epoch_p, values) in enumerate(entries):
            if e == 0 or per_pair:
                step = _counter(step_how, step_p, lines)
                epoch = _counter(epoch_how, epoch_p, lines)
            for value_p, key_p, numeric in values:
                value = _column(value_p, float if numeric else to_number, lines)
                if value is None or key_p[:2] == (CONST, ""):
                    continue
                cols = [_keys(key_p, lines, out), value, step[0], epoch[0]]
                if sel is not None:
                    cols = [pc.filter(c, sel) if isinstance(c, pa.Array) else c for c in cols]
                out.pieces.append((keep, cols[0], cols[1], (cols[2], step[1]), (cols[3], epoch[1])))
                emitted = True
        if emitted and marks:
            out.marks.append(keep)


def _column(piece: Any, conv: Any, lines: Any) -> Any:
    """The converted values of ``piece`` on each line (an Arrow array), a constant (a
    Python value), or None when no line has one."""
    if piece[0] == CONST:
        return conv(piece[1]) if piece[1] is not None else None
    texts = slice_at(lines, (piece[1], piece[2]))
    if conv is int:
        got = ints(texts)
        if got is None:
            raise _Unfit("a step too wide for int64")
        return got
    # a shape's lines share their non-digit characters: the first one tells them all
    return floats(texts, PLAIN_FORMS.issuperset(texts[0].as_py()))


def _counter(how: int, piece: Any, lines: Any) -> tuple[Any, bool]:
    """(a row's step or epoch of its own, whether the context stands in where it has none)."""
    if how == _CONTEXT:
        return None, True
    if how != _TEMPLATE:
        return None, False
    return _column(piece[0], piece[1], lines), True


def _keys(piece: Any, lines: Any, out: _Rows) -> Any:
    """Key ids per line (Arrow int32), or one key id for a fixed key."""
    if piece[0] == CONST:
        return out.key_id(piece[1])
    texts = slice_at(lines, (piece[1], piece[2]))
    enc = pc.dictionary_encode(texts)
    fmt = piece[3] if piece[0] == FORMAT else "%s"
    table = [out.key_id(fmt % t) for t in enc.dictionary.to_pylist()]
    return pa.array(table, pa.int32()).take(enc.indices)


def _lines(
    todo: list[tuple[int, int, Any]],
    texts: list[str],
    is_blocked: Any,
    out: _Rows,
    own: dict[str, Any],
) -> None:
    """Lines of small groups, read one at a time into pieces like a group's (``run_plan``'s
    reading, the context left to the fill): one piece per way of using the context, a
    line's rows all in one piece (a plan uses the context one way, see ``_supported``)."""
    buckets: dict[tuple[bool, bool], list[list[Any]]] = {}
    sets: dict[str, tuple[list[int], list[Any]]] = {_STEP: ([], []), _EPOCH: ([], [])}
    marked: list[int] = []
    key_id = out.key_id
    for j, i, plan in todo:  # run position, batch index, plan
        raw = texts[i]
        blocked = is_blocked is not None and is_blocked(i)
        for _, setters, emit, claiming, marks in plan:
            for name, piece, conv in setters:
                got = read(piece, raw)
                value = conv(got) if got is not None else None
                if value is not None:
                    sets[name][0].append(j)
                    sets[name][1].append(value)
            if emit is None:
                continue
            step_how, epoch_how, per_pair, entries, no_stamp = emit
            out.stamped |= not no_stamp
            if blocked and claiming:
                continue
            flags = (step_how != _NONE, epoch_how != _NONE)
            cols = buckets.get(flags)
            if cols is None:
                cols = buckets[flags] = [[], [], [], [], []]
            add_j, add_k, add_v, add_s, add_e = (c.append for c in cols)
            emitted = False
            step = epoch = None
            for e, (step_p, epoch_p, values) in enumerate(entries):
                if e == 0 or per_pair:
                    step = _own(step_how, step_p, raw)
                    epoch = _own(epoch_how, epoch_p, raw)
                for value_p, key_p, numeric in values:
                    got = read(value_p, raw)
                    value = None if got is None else float(got) if numeric else to_number(got)
                    key = key_p[1] if key_p[0] == CONST else read(key_p, raw)
                    if value is None or not key:
                        continue
                    add_j(j)
                    add_k(key_id(key))
                    add_v(value)
                    add_s(step)
                    add_e(epoch)
                    emitted = True
            if emitted and marks:
                marked.append(j)
    for name, (where, values) in sets.items():
        if where:
            own[name][0].append(pa.array(where, pa.int32()))
            own[name][1].append(pa.array(values, pa.int64() if name == _STEP else pa.float64()))
    for (step_ctx, epoch_ctx), cols in buckets.items():
        if cols[0]:
            out.pieces.append(
                (
                    pa.array(cols[0], pa.int32()),
                    pa.array(cols[1], pa.int32()),
                    pa.array(cols[2], pa.float64()),
                    (pa.array(cols[3], pa.int64()), step_ctx),
                    (pa.array(cols[4], pa.float64()), epoch_ctx),
                )
            )
    if marked:
        out.marks.append(marked[0])


def _own(how: int, piece: Any, raw: str) -> Any:
    if how != _TEMPLATE:
        return None
    got = read(piece[0], raw)
    return piece[1](got) if got is not None else None


def _filled(n: int, where: list[Any], values: list[Any], start: Any) -> Any:
    """The context after each line of the run (index 0: before the run); None when no line
    of the run sets it. A line set twice (two rules) keeps the value set last: pieces come
    in the order they were read, and the sort by line is stable."""
    if not where:
        return None
    parts = []
    kind = None
    for v, at in zip(values, where, strict=True):
        if not isinstance(v, pa.Array):  # a fixed value on every line of the group
            v = pa.array([v] * len(at))
        kind = kind or v.type
        parts.append(v if v.type == kind else v.cast(kind))
    at = pa.concat_arrays(where)
    order = pc.sort_indices(at)
    at, got = at.take(order), pa.concat_arrays(parts).take(order)
    m = len(at)
    if m > 1:
        last = pc.not_equal(at.slice(0, m - 1), at.slice(1))
        keep = pa.concat_arrays([last, pa.array([True])])
        at, got = at.filter(keep), got.filter(keep)
    rest = pc.filter(arange(n), pc.invert(pc.is_in(arange(n), value_set=at)))
    own = Scatter(n, [at.cast(pa.int32())], rest).values([got], kind)
    return pc.fill_null_forward(pa.concat_arrays([pa.array([start], kind), own]))


def _emit(out: _Rows, lines: Any, cols: BatchColumns, after: dict[str, Any], rows: Any) -> None:
    """The run's rows in line order onto ``rows`` as Arrow columns: a stable sort by line
    keeps a line's rows in their order (each line's rows are in one piece, in order). A
    row without a step/epoch of its own takes the context's where its piece uses it: one
    fill over all pieces, not one per piece."""
    if not out.pieces:
        return
    js, keys, values = [], [], []
    counters: dict[str, tuple[list[Any], list[Any]]] = {_STEP: ([], []), _EPOCH: ([], [])}
    kinds = {_STEP: pa.int64(), _EPOCH: pa.float64()}
    for j, key, value, step, epoch in out.pieces:
        m = len(j)
        js.append(j)
        keys.append(_full(key, m, pa.int32()))
        values.append(_full(value, m, pa.float64()))
        for name, (got, use_ctx) in ((_STEP, step), (_EPOCH, epoch)):
            counters[name][0].append(_full(got, m, kinds[name]))
            counters[name][1].append(use_ctx)
    j_all = pa.concat_arrays(js)
    order = pc.sort_indices(j_all)
    filled = {
        name: _with_context(j_all, js, *counters[name], after[name], out.start[name], kinds[name])
        for name in (_STEP, _EPOCH)
    }
    at = lines.take(j_all.take(order))  # each row's line in the batch
    rows.extend_arrays(
        pa.array(out.keys, pa.string()).take(pa.concat_arrays(keys).take(order)),
        pa.concat_arrays(values).take(order),
        cols.offsets_array().take(at),
        step=filled[_STEP].take(order),
        epoch=filled[_EPOCH].take(order),
        ts=_stamps(at, cols, out.stamped),
    )


def _with_context(
    j_all: Any, js: list[Any], own: list[Any], use: list[bool], after: Any, start: Any, kind: Any
) -> Any:
    """A step or epoch column of the rows (pieces' ``own`` values, concatenated), null
    ones filled from the context after the row's line (``after``: by run position + 1;
    None when the run sets none: the context before it, ``start``) in the pieces that
    ``use`` it."""
    got = pa.concat_arrays(own)
    if not any(use) or (after is None and start is None):
        return got
    ctx = after.take(pc.add(j_all, 1)).cast(kind) if after is not None else pa.scalar(start, kind)
    if not all(use):
        flags = pa.concat_arrays([pa.repeat(u, len(j)) for u, j in zip(use, js, strict=True)])
        ctx = pc.if_else(flags, ctx, pa.scalar(None, kind))
    return pc.coalesce(got, ctx)


def _full(value: Any, m: int, kind: Any) -> Any:
    if isinstance(value, pa.Array):
        return value if value.type == kind else value.cast(kind)
    return pa.nulls(m, kind) if value is None else pa.repeat(pa.scalar(value, kind), m)


def _stamps(at: Any, cols: BatchColumns, stamped: bool) -> Any:
    """Each row's time (``at``: its line; None: no row has one): the envelope's, else a
    stamp printed at the line start (``line_ts``), read once per line that lacks one."""
    ts = cols.ts_array()
    ts = None if ts is None else ts.take(at)
    if not stamped or (ts is not None and not ts.null_count):
        return ts
    need = at if ts is None else at.filter(pc.is_null(ts))
    texts = cols.texts
    seen = {i: line_ts(texts[i]) for i in pc.unique(need).to_pylist()}
    if not any(v is not None for v in seen.values()):
        return ts
    keys = pa.array(list(seen), pa.int32())
    got = pa.array(list(seen.values()), pa.float64()).take(pc.index_in(at, value_set=keys))
    return got if ts is None else pc.coalesce(ts, got)


def read_planned(
    run: list[Any],
    batch: Any,
    ids: list[int],
    plans: dict[int, Any],
    ctx: dict[str, Any],
    out: Any,
    rows: Any,
    skip_claimed: bool,
    name: str,
) -> int:
    """Read lines of planned shapes (no section or table open, none redrawn; ``run``:
    Arrow arrays of batch indices from ``Ahead.lines``, or the indices one by one): in shape
    groups (``read_run``) when there are enough of them and their plans fit, else one by
    one (``run_plan``; a line that fails is a parse_errors row). The offset of the first
    line whose rows name the framework; -1: none."""
    lines = pa.array(run, pa.int32()) if isinstance(run[0], int) else pa.concat_arrays(run)
    if not len(lines):
        return -1
    texts, offsets, tss = batch.texts, batch.offsets, batch.ts
    is_claimed = out.is_claimed

    def is_blocked(i: int) -> bool:
        return is_claimed(offsets[i])

    blocked = is_blocked if skip_claimed and out.claimed else None
    if len(lines) >= MIN_RUN:
        cols = BatchColumns(batch, batch.shapes().index)
        ok = None
        if blocked is not None:
            taken = pa.array(list(out.claimed), pa.int64())
            ok = pc.invert(pc.is_in(cols.offsets_array().take(lines), value_set=taken))
        mark = read_run(lines, plans, cols, ok, ctx, rows, blocked)
        if mark is not None:
            return mark
    first = -1
    for i in lines.to_pylist():
        raw, offset = texts[i], offsets[i]
        try:
            ts = tss[i] if tss else None
            claimed = blocked is not None and blocked(i)
            if run_plan(plans[ids[i]], raw, offset, ts, ctx, rows, claimed) and first < 0:
                first = offset
        except Exception as e:  # noqa: BLE001 - one bad line is a parse_errors row
            out.error(offset, f"{name}: {type(e).__name__}: {e}", raw)
    return first
