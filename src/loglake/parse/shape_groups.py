"""What the generic metrics parser makes of a line, decided once per line shape.

Lines of one shape (``LineBatch.shapes``: ASCII digits ``1``-``9`` read as ``0``) have the
same length and the same non-digit characters at the same places. Every test the generic
parser makes of a line outside its numbers sees digits only as digits (``line_recipes``), so
what a candidate line is follows from its shape (``reading_of``): nothing to read (noise, a
quiet level, a line naming no metric and no counter: ``SKIP``), a line read at fixed places
(``Fixed``: its recipe's numbers and counters; ``DictFixed``: a flat dict of numbers), or
one the parser reads on its own (``SLOW``: tracebacks, table headers, a dict after a label,
``batch=N`` settings, a stamp without a year).

Two things do depend on the digits, and are checked per line where the lines are read
(``shape_columns``): a timestamp is a prefix only when it is a valid date
(``timestamps.split_log_prefix`` splits a line whose month reads ``13`` differently), so a
dated stamp's fields are read per line, with the arithmetic ``split_log_prefix`` does
(``stamps_of``); and a dict number with a leading zero is not JSON (``dict_shapes``).
Padding ``normalize_message`` removes is removed from every line of a shape alike, so a
recipe's positions in the normalized message are moved back to the line
(``_unnormalized``).

``timestamps``' own reading of a stamp (``split_shape``, ``minute_at``, ``zone_seconds``) is
used here so the columns compute exactly what ``split_log_prefix`` does.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from loglake.parse.dict_shapes import dict_shape
from loglake.parse.kv import ZEROS, Span, normalize_message
from loglake.parse.line_recipes import (
    QUIET_LEVELS,
    DictPlan,
    PairPlan,
    Recipe,
    is_dict_message,
    line_recipe,
    recipe_of,
    table_header,
)
from loglake.parse.timestamps import minute_at, split_shape, zone_seconds
from loglake.parse.values import shape_of


class Fixed(NamedTuple):
    """How every line of one shape is read by its recipe (positions are in the raw line).

    ``plan``: the pairs' plan (None when a name holds a digit: then only a claimed line,
    which sets the context alone, is read this way); ``counters``: the pairs naming a
    step/epoch; ``nums``: each pair's number; ``step_at``/``epoch_at``: the counters
    ``find_context`` reads; ``stamp``: the dated stamp's fields (``timestamps.StampFields``) or
    None; ``emits``: whether an unclaimed line can emit or set the context at all,
    ``claimed``: whether a claimed one can set the context.
    """

    plan: PairPlan | None
    counters: tuple[tuple[int, bool], ...]
    nums: tuple[Span, ...]
    step_at: Span | None
    epoch_at: Span | None
    stamp: Any
    emits: bool
    claimed: bool
    bytes_at: Any = None  # the same with byte positions, for Arrow (None: the line is ASCII)
    plain: tuple[bool, ...] = ()  # per number: only digits, sign, point, exponent (``plain``)
    epoch_plain: bool = True  # the same of the epoch counter


class DictFixed(NamedTuple):
    """How every line of one shape is read as a flat dict (``dict_shapes.DictShape``, its
    positions moved to the raw line), with its stamp's fields as in ``Fixed``."""

    nums: tuple[Span, ...]
    zeros: tuple[int, ...]
    plan: DictPlan
    stamp: Any
    bytes_at: Any = None  # as in Fixed
    plain: tuple[bool, ...] = ()  # as in Fixed


#: what a candidate line's shape says: read it line by line, or it gives nothing
SLOW = "slow"
SKIP = "skip"

_READINGS: dict[bytes, Fixed | str] = {}
_READINGS_SIZE = 4096


def reading_of(text: str) -> Fixed | DictFixed | str:
    """How lines of ``text``'s shape are read: ``SKIP``, ``SLOW`` or a ``Fixed`` reading.
    Cached per shape from a line whose stamp, if it has one, is a valid date."""
    got = shape_reading(shape_of(text), text)
    return got if got is not None else SLOW


def shape_reading(shape: bytes, text: str) -> Fixed | DictFixed | str | None:
    """``reading_of`` for ``text`` of a known ``shape`` (``shape_of(text)``); None when
    ``text`` cannot speak for its shape (its stamp is not a valid date: the line is read on
    its own, and another line of the shape may read otherwise)."""
    got = _READINGS.get(shape)
    if got is None:
        got = _read(text)
        if got is not None:
            if len(_READINGS) >= _READINGS_SIZE:
                _READINGS.clear()
            _READINGS[shape] = got
    return got


def _read(text: str) -> Fixed | DictFixed | str | None:
    """``reading_of`` for one line; None when this line cannot speak for its shape (its stamp
    is not a valid date)."""
    line = line_recipe(text)
    if not text or line is None or line.opens_traceback:
        return SLOW  # a line too long to cache, or one opening a traceback
    if not line.has_digit:  # a padded header opens a table, any other such line gives nothing
        return SLOW if "  " in text and table_header(text) is not None else SKIP
    (_, level, msg), how = split_shape(text)
    if how is None:
        return None
    if how.pattern is not None and how.fields is None:
        return SLOW  # a stamp without a year (glog, detectron2): its seconds are read per line
    if level in QUIET_LEVELS:
        return SKIP
    at = len(text) - len(msg.lstrip())  # where the stripped message starts in the line
    if is_dict_message(msg):
        shape = dict_shape(msg.strip())
        if shape is None:
            return SLOW
        nums = tuple((a + at, b + at) for a, b in shape.nums)
        zeros = tuple(z + at for z in shape.zeros)
        got = DictFixed(nums, zeros, shape.plan, how.fields, plain=plain(text, nums))
        return got if text.isascii() else got._replace(bytes_at=_in_bytes(got, text))
    recipe = recipe_of(msg)
    if recipe is None:
        return SLOW
    if recipe.noise:
        return SKIP
    if recipe.batch or recipe.counters is None:
        return SLOW
    if recipe.normalizes:  # its positions are in the normalized message: find them in it
        recipe = _unnormalized(recipe, msg.strip())
        if recipe is None:
            return SLOW
    fixed = _fixed(recipe, at, how.fields, text)
    if not (fixed.emits or fixed.claimed):
        return SKIP
    return fixed if text.isascii() else fixed._replace(bytes_at=_in_bytes(fixed, text))


#: a number spelled only with these is cast by Arrow as ``float()`` reads it
PLAIN_FORMS = frozenset("0123456789.-+eE")


def plain(text: str, nums: tuple[Span, ...]) -> tuple[bool, ...]:
    """Per number of ``text``, whether it is spelled in digits, sign, point and exponent
    only (Arrow's cast reads it as ``float()`` does; ``nan``, ``inf`` go through
    ``float()``): the same for every line of the shape, and of its family."""
    return tuple([PLAIN_FORMS.issuperset(text[a:b]) for a, b in nums])


def _in_bytes(reading: Any, text: str) -> Any:
    """``reading`` with its positions in ``text``'s UTF-8 bytes (Arrow slices bytes: a line
    of the same shape has the same bytes but its digits, so the same byte positions)."""

    def at(i: int) -> int:
        return len(text[:i].encode("utf-8", "surrogatepass"))

    def span(s: Span | None) -> Span | None:
        return None if s is None else (at(s[0]), at(s[1]))

    stamp = reading.stamp
    if stamp is not None:
        k0, k1, s0, s1, frac, zone, parts = stamp
        stamp = (at(k0), at(k1), at(s0), at(s1), span(frac), span(zone), tuple(map(span, parts)))
    nums = tuple(map(span, reading.nums))
    if isinstance(reading, DictFixed):
        return reading._replace(nums=nums, zeros=tuple(map(at, reading.zeros)), stamp=stamp)
    return reading._replace(
        nums=nums, step_at=span(reading.step_at), epoch_at=span(reading.epoch_at), stamp=stamp
    )


_RUN_RE = re.compile(r"[0-9]+")


def _unnormalized(recipe: Recipe, msg: str) -> Recipe | None:
    """``recipe`` with its numbers' positions moved from the normalized message to ``msg``
    (stripped), or None when a number's place there is not certain.

    ``normalize_message`` sees a digit only as a digit, so it deletes the same characters
    from every message of a shape: a run of digits marked with ``1`` among ``0``s shows
    where it lands. A number is placed when its runs land at the same distances from each
    other as in the normalized text (nothing deleted inside it) and the characters around
    them match.
    """
    zeroed = msg.translate(ZEROS)
    norm = normalize_message(zeroed)
    moved: dict[int, int] = {}  # normalized start of a digit run -> its start in msg
    for m in _RUN_RE.finditer(zeroed):
        marked = normalize_message(
            f"{zeroed[: m.start()]}{'1' * len(m.group())}{zeroed[m.end() :]}"
        )
        if len(marked) != len(norm):
            return None
        at = marked.find("1")
        if at >= 0:
            moved[at] = m.start()

    def place(span: Span | None) -> Span | None:
        if span is None:
            return None
        a, b = span
        runs = [r for r in _RUN_RE.finditer(norm, a, b)]
        if not runs or runs[0].start() not in moved:
            raise _Uncertain
        start = moved[runs[0].start()] - (runs[0].start() - a)
        for r in runs:
            if moved.get(r.start()) != start + r.start() - a:
                raise _Uncertain
        if start < 0 or zeroed[start : start + b - a] != norm[a:b]:
            raise _Uncertain
        return start, start + b - a

    try:
        return recipe._replace(
            nums=tuple(place(span) for span in recipe.nums),
            step_at=place(recipe.step_at),
            epoch_at=place(recipe.epoch_at),
            normalizes=False,
        )
    except _Uncertain:
        return None


class _Uncertain(Exception):
    """A number whose place in the raw message is not certain."""


def _fixed(recipe: Recipe, at: int, stamp: Any, text: str) -> Fixed:
    plan = recipe.plan
    assert recipe.counters is not None

    def moved(span: Span | None) -> Span | None:
        return None if span is None else (span[0] + at, span[1] + at)

    context = recipe.step_at is not None or recipe.epoch_at is not None
    nums = tuple((a + at, b + at) for a, b in recipe.nums)
    epoch_at = moved(recipe.epoch_at)
    return Fixed(
        plan,
        recipe.counters,
        nums,
        moved(recipe.step_at),
        epoch_at,
        stamp,
        plan is None or bool(plan.emits[0] or plan.emits[1] or plan.counters or context),
        bool(recipe.counters or context),
        plain=plain(text, nums),
        epoch_plain=epoch_at is None or plain(text, (epoch_at,))[0],
    )


def slice_at(lines: Any, span: Span) -> Any:
    """The text at byte ``span`` of each line (``lines``: an Arrow binary array)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.binary_slice(lines, span[0], span[1]).view(pa.string())


def stamps_of(lines: Any, fields: Any) -> Any:
    """Epoch seconds of each line's dated stamp, computed as ``split_log_prefix`` does
    (``base + sec + float("0." + frac) - offset``), as an Arrow float64 array: null where
    the date is not valid. ``fields``: ``Fixed.stamp``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    k0, k1, s0, s1, frac, zone, parts = fields
    minutes = pc.dictionary_encode(slice_at(lines, (k0, k1)))
    rel = tuple((a - k0, b - k0) for a, b in parts)  # the fields within a minute's text
    bases = [minute_at(m, 0, len(m), rel) for m in minutes.dictionary.to_pylist()]
    base = pc.take(pa.array(bases, pa.int64()), minutes.indices)
    sec = pc.cast(slice_at(lines, (s0, s1)), pa.int64())
    whole = pc.if_else(pc.less(sec, 61), pc.add(base, sec), pa.scalar(None, pa.int64()))
    ts = pc.cast(whole, pa.float64())
    if frac:
        digits = pc.cast(pc.cast(slice_at(lines, frac), pa.int64()), pa.float64())
        ts = pc.add(ts, pc.divide(digits, float(10 ** (frac[1] - frac[0]))))
    else:
        ts = pc.add(ts, 0.0)
    if zone:
        zones = pc.dictionary_encode(slice_at(lines, zone))
        offs = [float(zone_seconds(z)) for z in zones.dictionary.to_pylist()]
        ts = pc.subtract(ts, pc.take(pa.array(offs, pa.float64()), zones.indices))
    return ts
