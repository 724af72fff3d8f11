"""The generic metrics parser's batch as columns: every line read at fixed places at once.

``shape_groups`` says per line shape how its lines read. Here each group of candidate lines
of one ``Fixed``/``DictFixed`` shape is read with Arrow: its numbers sliced at their places
and cast (Arrow's cast and ``float()`` both round correctly; a number spelled otherwise than
in digits goes through ``float()``), the step/epoch each line names itself, its stamp.
Shapes of a few lines are read together with the other widths of their numbers
(``shape_families``: a group costs a few dozen Arrow calls whatever its size, so one group
per family rather than per shape), or else one line at a time. What remains per line for Python
is what is truly sequential: lines read the plain way (tracebacks, tables, dicts after a
label, ``batch=N``...), which ``shape_walk`` walks in order, and the running step/epoch
context, which becomes two forward fills (``context``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from loglake.parse.shape_families import Family, family_of
from loglake.parse.shape_groups import SKIP, DictFixed, Fixed, shape_reading, slice_at, stamps_of

_INT64 = 2.0**63


#: a group of fewer lines is read line by line (its reading known, ``read_fixed``): an
#: Arrow call costs ~10 µs whatever its size, and a group takes a few dozen
MIN_GROUP = 24
#: a shape of fewer lines is read with the other shapes of its family when it has any
#: (one group: its pattern costs per line, a group per shape costs a few dozen calls)
FAMILY_LINES = 256

#: when a metric of a group's plan is emitted (``ShapeColumns.emits``): on every line the
#: columns read, only on one naming its own step/epoch, only on one naming neither
ALWAYS, OWN, NOT_OWN = 0, 1, 2


class _ShapePlan(NamedTuple):
    """What the columns make of a line shape, worked out once per shape across batches (a
    log's batches share most of their shapes): its ``Fixed``/``DictFixed`` reading (None:
    its lines are read on their own, or give nothing), whether its lines may give anything,
    its dated stamp's fields at byte positions (None: no stamp), its family."""

    reading: Fixed | DictFixed | None
    gives: bool
    stamp: Any
    family: tuple[Any, Family] | None


_PLANS: dict[bytes, _ShapePlan] = {}
_PLANS_SIZE = 4096
#: a line whose stamp is not a valid date: read on its own (not remembered for its shape)
_UNDATED = _ShapePlan(None, True, None, None)


def _plan_of(shape: bytes, text: str) -> _ShapePlan:
    """The plan of ``shape`` (``values.shape_of(text)``), from its line ``text``."""
    got = _PLANS.get(shape)
    if got is not None:
        return got
    reading = shape_reading(shape, text)
    if reading is None:
        return _UNDATED
    if not isinstance(reading, Fixed | DictFixed):
        got = _ShapePlan(None, reading is not SKIP, None, None)
    else:
        stamp = None if reading.stamp is None else (reading.bytes_at or reading).stamp
        got = _ShapePlan(reading, True, stamp, family_of(reading, text))
    if len(_PLANS) >= _PLANS_SIZE:
        _PLANS.clear()
    _PLANS[shape] = got
    return got


class ShapeColumns(NamedTuple):
    """A batch's candidate lines (``k``: index into the candidates) by what their shapes say.

    ``slow``: the candidates read one at a time, in order (ascending); ``readings[j]``: the
    ``Fixed``/``DictFixed`` reading of ``slow[j]`` when its shape has one (else None) and
    ``stamps[j]`` its stamp (None: the line has no dated stamp, or one not a valid date).
    The rest is about the lines read as columns: ``fast`` (Arrow bool per candidate: read
    here unless a traceback or table is open there), ``step``/``epoch``: the counters such a
    line names itself (null: none), in ``_context``'s terms; ``ts``: its stamp; ``emits``:
    (a group's candidates, metric key, values, order of the key on its line, which of the
    group's fast lines emit it: ``ALWAYS``, ``OWN`` or ``NOT_OWN``, by whether the line
    names its own step/epoch, i.e. ``step`` or ``epoch`` is valid there) per metric of a
    group's plan. The conditions are applied to all rows at once (``shape_walk``), not per
    group: a group costs Arrow calls, a batch holds dozens.
    """

    slow: list[int]
    readings: list[Any]
    stamps: list[float | None]
    fast: Any
    step: Any
    epoch: Any
    ts: Any
    emits: list[tuple[Any, str, Any, int, int]]


def shape_columns(
    batch: Any, shapes: Any, candidates: list[int], picks: Any, mine: Any, skip: Any
) -> ShapeColumns:
    """Read the candidates' shape groups (``picks``: ``candidates`` as an Arrow int32
    array). ``mine`` (Arrow bool per candidate): a specific parser claimed the line (it only
    sets the context); ``skip``: a claimed line that cannot even do that
    (``CONTEXT_CANDIDATES``)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    m = len(candidates)
    sids = pc.take(shapes.index, picks)
    counted = pc.value_counts(sids)
    present = counted.field("values")
    firsts = pc.index_in(present, value_set=sids).to_pylist()  # each shape's first line
    count = len(shapes.distinct)
    size = [0] * count  # per shape: its candidates
    of: list[Any] = [None] * count  # per shape: its reading
    gives = [True] * count  # per shape: whether its lines may give anything
    layouts: dict[Any, int] = {}  # a dated stamp's fields -> its number
    layout_of = [-1] * count
    groups = []  # (its shapes, reading, family) of the column groups
    families: dict[Any, tuple[Family, list[tuple[int, Any]]]] = {}
    # the shapes' own texts (``Shapes.of`` reads digits as ``shape_of`` does)
    keys = shapes.distinct.take(present).view(pa.binary()).to_pylist()
    for sid, n, first, key in zip(
        present.to_pylist(), counted.field("counts").to_pylist(), firsts, keys, strict=True
    ):
        size[sid] = n
        plan = _PLANS.get(key) or _plan_of(key, batch.texts[candidates[first]])
        reading = of[sid] = plan.reading
        if reading is None:
            gives[sid] = plan.gives
            continue
        if plan.stamp is not None:  # byte positions: the columns slice bytes
            layout_of[sid] = layouts.setdefault(plan.stamp, len(layouts))
        got = plan.family if n < FAMILY_LINES else None
        if got is not None:
            families.setdefault(got[0], (got[1], []))[1].append((sid, reading))
        elif n >= MIN_GROUP:
            groups.append(([sid], reading, None))
    for family, members in families.values():
        if len(members) > 1 and sum(size[sid] for sid, _ in members) >= MIN_GROUP:
            groups.append(([sid for sid, _ in members], members[0][1], family))
            continue
        for sid, reading in members:  # alone after all
            if size[sid] >= MIN_GROUP:
                groups.append(([sid], reading, None))
    arr = batch.arrow().view(pa.binary())  # sliced at byte positions (``bytes_at``)
    pieces = []
    unstamped = None
    if layouts:
        laid = pc.take(pa.array(layout_of, pa.int32()), sids)
        for fields, n in layouts.items():
            at = pc.indices_nonzero(pc.equal(laid, n)).cast(pa.int32())
            pieces.append((at, stamps_of(pc.take(arr, pc.take(picks, at)), fields)))
        unstamped = pc.indices_nonzero(pc.equal(laid, -1)).cast(pa.int32())
    ts_all = Scatter(m, [at for at, _ in pieces], unstamped).values(
        [v for _, v in pieces], pa.float64()
    )
    # a line of a stamped shape whose stamp is not a valid date is read on its own
    undated = pc.and_(pc.greater_equal(laid, 0), pc.is_null(ts_all)) if layouts else None

    parts = []
    read_here: list[tuple[int, int]] = []  # the slices of ``order`` the groups read
    emits: list[tuple[Any, str, Any, int, int]] = []
    if groups:  # a group's lines next to each other (in their order): a slice of these
        rank = [len(groups)] * count
        bounds = [0]
        for g, (members, _, _) in enumerate(groups):
            for sid in members:
                rank[sid] = g
            bounds.append(bounds[-1] + sum(size[sid] for sid in members))
        order = pc.sort_indices(pc.take(pa.array(rank, pa.int32()), sids)).cast(pa.int32())
        all_lines = pc.take(arr, pc.take(picks, order))
        all_mine = pc.take(mine, order)
        every = pa.repeat(True, bounds[-1])  # a group whose lines all match: a slice of it
    for g, (_, reading, family) in enumerate(groups):
        a, b = bounds[g], bounds[g + 1]
        at = order[a:b]
        if family is None:
            texts = _sliced(reading.bytes_at or reading, all_lines[a:b], every[a:b])
        else:
            texts = _extracted(family, all_lines[a:b])
        read = _fixed_group if isinstance(reading, Fixed) else _dict_group
        got = read(reading, texts, all_mine[a:b])  # type: ignore[operator]
        if got is None:
            continue
        ok, step, epoch, found = got
        parts.append((at, ok, step, epoch))
        read_here.append((a, b))
        emits.extend((at, key, values, q, when) for key, values, q, when in found)
    rest = _joined(order, _gaps(read_here, m)) if parts else None
    spread = Scatter(m, [p[0] for p in parts], rest)
    fast = pc.and_not(pc.fill_null(spread.values([p[1] for p in parts], pa.bool_()), False), skip)
    if undated is not None:
        fast = pc.and_not(fast, undated)
    # the rest is read one line at a time (a line of a group the columns cannot read too)
    nothing = pc.invert(pc.take(pa.array(gives, pa.bool_()), sids))
    slow = pc.indices_nonzero(pc.invert(pc.or_(pc.or_(fast, skip), nothing))).cast(pa.int32())
    slow_sids = pc.take(sids, slow).to_pylist()
    return ShapeColumns(
        slow.to_pylist(),
        [of[sid] for sid in slow_sids],
        pc.take(ts_all, slow).to_pylist(),
        fast,
        spread.values([p[2] for p in parts], pa.int64()),
        spread.values([p[3] for p in parts], pa.float64()),
        ts_all,
        emits,
    )


def _joined(values: Any, slices: list[tuple[int, int]]) -> Any:
    """The parts of an Arrow array at ``slices``, as one array."""
    import pyarrow as pa

    if len(slices) == 1:
        return values[slices[0][0] : slices[0][1]]
    return pa.concat_arrays([values[a:b] for a, b in slices] or [values[:0]])


def _gaps(slices: list[tuple[int, int]], m: int) -> list[tuple[int, int]]:
    """The parts of 0 .. m-1 outside ``slices`` (disjoint), as slices."""
    gaps = []
    at = 0
    for a, b in sorted(slices):
        if a > at:
            gaps.append((at, a))
        at = b
    if at < m:
        gaps.append((at, m))
    return gaps


class Scatter:
    """Puts values given for some candidates (disjoint index arrays) at their places in one
    array of ``m`` (null elsewhere): a take by the inverse of the permutation the index
    arrays and the missing indices (``rest``, the caller knows them) make."""

    def __init__(self, m: int, where: list[Any], rest: Any) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        self.missing = m
        self.inverse = None
        if where:
            self.missing = len(rest)
            self.inverse = pc.sort_indices(pa.concat_arrays([*where, rest]))

    def values(self, parts: list[Any], kind: Any) -> Any:
        import pyarrow as pa
        import pyarrow.compute as pc

        if self.inverse is None:
            return pa.nulls(self.missing, kind)
        return pc.take(pa.concat_arrays([*parts, pa.nulls(self.missing, kind)]), self.inverse)


def arange(m: int) -> Any:
    """0 .. m-1 as an Arrow int32 array."""
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.indices_nonzero(pa.repeat(True, m)).cast(pa.int32())


def floats(texts: Any, plain: bool) -> Any:
    """float() of each text (an Arrow float64 array; texts of one number shape, ``plain``
    when spelled in digits, sign, point and exponent only: ``shape_groups.plain``)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if plain:
        return pc.cast(texts, pa.float64())
    return pa.array(  # nan, inf
        [None if t is None else float(t) for t in texts.to_pylist()], pa.float64()
    )


def ints(texts: Any) -> Any:
    """int() of each text of digits; None when one may not fit an int64."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if (pc.max(pc.binary_length(texts)).as_py() or 0) > 18:
        return None
    return pc.cast(texts, pa.int64())


def _whole(values: Any) -> Any:
    """Where a float is an integer (``float.is_integer``); None when one is too large for an
    int64 (Python's int() would still read it: the group is read line by line)."""
    import pyarrow.compute as pc

    whole = pc.and_(pc.is_finite(values), pc.equal(pc.floor(values), values))
    if pc.any(pc.and_(whole, pc.greater_equal(pc.abs(values), _INT64))).as_py():
        return None
    return whole


def _as_int(values: Any) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.cast(values, pa.int64(), safe=False)  # only read where _whole says so


class _Texts(NamedTuple):
    """A group's texts of each number (``nums``), of its step and epoch counters (None: the
    reading has none), and which lines they were found in (``found``)."""

    nums: list[Any]
    step: Any
    epoch: Any
    found: Any


def _sliced(reading: Fixed | DictFixed, lines: Any, every: Any) -> _Texts:
    """The texts of a shape's lines at its reading's (byte) positions (``every``: true per
    line)."""
    import pyarrow.compute as pc

    found = every
    if isinstance(reading, DictFixed):
        for z in reading.zeros:  # a leading zero: not JSON, the line is read on its own
            found = pc.and_(found, pc.not_equal(slice_at(lines, (z, z + 1)), "0"))
        return _Texts([slice_at(lines, span) for span in reading.nums], None, None, found)
    return _Texts(
        [slice_at(lines, span) for span in reading.nums],
        slice_at(lines, reading.step_at) if reading.step_at else None,
        slice_at(lines, reading.epoch_at) if reading.epoch_at else None,
        found,
    )


def _extracted(family: Family, lines: Any) -> _Texts:
    """The texts of a family's lines, found by its pattern."""
    import pyarrow as pa
    import pyarrow.compute as pc

    got = pc.extract_regex(lines.view(pa.string()), family.pattern)
    return _Texts(
        [got.field(name) for name in family.nums],
        got.field(family.step_at) if family.step_at else None,
        got.field(family.epoch_at) if family.epoch_at else None,
        pc.is_valid(got),
    )


def _fixed_group(fixed: Fixed, texts: _Texts, mine: Any) -> Any:
    """``_line``'s recipe reading of a group: (which lines it reads but for their stamps,
    their own step and epoch, emits); None for a group read line by line."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(mine)
    values = [floats(t, p) for t, p in zip(texts.nums, fixed.plain, strict=True)]
    step = ints(texts.step) if texts.step is not None else pa.nulls(n, pa.int64())
    if step is None:
        return None
    if texts.epoch is not None:
        epoch = floats(texts.epoch, fixed.epoch_plain)
    else:
        epoch = pa.nulls(n, pa.float64())
    for k, is_step in fixed.counters:  # _counted: a step only when it is an integer
        if is_step:
            whole = _whole(values[k])
            if whole is None:
                return None
            step = pc.if_else(whole, _as_int(values[k]), step)
        else:
            epoch = values[k]
    ok = texts.found
    if fixed.plan is None:  # names holding digits: only a claimed line is read here
        return pc.and_(ok, mine), step, epoch, []
    found: list[tuple[str, Any, int, int]] = []
    for named, when in ((False, NOT_OWN), (True, OWN)):
        emits = fixed.plan.emits[named]
        found.extend((key, values[k], q, when) for q, (key, k) in enumerate(emits))
    return ok, step, epoch, found


def _dict_group(fixed: DictFixed, texts: _Texts, mine: Any) -> Any:
    """``_dict_line``'s reading of a group of flat dict lines (as ``_fixed_group``)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(mine)
    values = [floats(t, p) for t, p in zip(texts.nums, fixed.plain, strict=True)]
    step = pa.nulls(n, pa.int64())
    epoch = pa.nulls(n, pa.float64())
    plan = fixed.plan
    for k, is_step in plan.counters:  # to_int: an integer step, else none
        if is_step:
            whole = _whole(values[k])
            if whole is None:
                return None
            step = pc.if_else(whole, _as_int(values[k]), pa.scalar(None, pa.int64()))
        else:
            epoch = values[k]
    when = ALWAYS if plan.metric_named else OWN  # a settings dict: no metric, no context
    emits = [(key, values[k], q, when) for q, (key, k) in enumerate(plan.emits)]
    return texts.found, step, epoch, emits


def context(
    columns: ShapeColumns, fast: Any, syncs: list[tuple[int, Any, Any]], start: tuple[Any, Any]
) -> tuple[Any, Any, Any, Any]:
    """Per candidate, the step and epoch a fast line's values get (``_context``), and the
    running step and epoch after the batch.

    ``fast``: the lines finally read from the columns (``columns.fast`` minus those inside a
    traceback or table); ``syncs``: (candidate, step, epoch) of the running context right
    after a line read line by line; ``start``: the context before the batch. The running
    step after a line is the last step set (a fast line's own or a sync's), and likewise
    the epoch: two forward fills.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    m = len(fast)
    own_step = pc.if_else(fast, columns.step, pa.scalar(None, pa.int64()))
    own_epoch = pc.if_else(fast, columns.epoch, pa.scalar(None, pa.float64()))
    running = []
    if syncs:
        mask = [False] * m
        for s in syncs:
            mask[s[0]] = True
        synced = pa.array(mask, pa.bool_())
    for own, kind, k in ((own_step, pa.int64(), 1), (own_epoch, pa.float64(), 2)):
        if syncs:
            own = pc.replace_with_mask(own, synced, pa.array([s[k] for s in syncs], kind))
        filled = pc.fill_null_forward(pa.concat_arrays([pa.array([start[k - 1]], kind), own]))
        running.append(filled)
    step_before, epoch_before = running[0][:m], running[1][:m]
    at_step = pc.if_else(
        pc.is_valid(own_step),
        own_step,
        pc.if_else(pc.is_valid(own_epoch), pa.scalar(None, pa.int64()), step_before),
    )
    at_epoch = pc.coalesce(own_epoch, epoch_before)
    return at_step, at_epoch, running[0][m].as_py(), running[1][m].as_py()
