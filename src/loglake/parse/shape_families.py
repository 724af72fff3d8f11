"""Shapes that differ only in how many digits their numbers have, read as one group.

A metric line's numbers change width as training goes on (``step 998`` then ``step 1002``,
``loss: 0.5`` then ``loss: 0.4375``): each width is its own shape, and a batch may hold a
few lines of each, too few to be worth a group each (``shape_columns.FAMILY_LINES``,
``MIN_GROUP``). Shapes whose
text is the same once each run of digits is one digit form a *family*. When each shape's
own reading (``shape_groups.reading_of``) is the same but for its positions, and puts every
number at the same runs of digits, one Arrow ``extract_regex`` (the family's text, each
run of digits ``[0-9]+``) reads the numbers of all its lines: the pattern matches a line of
any of those shapes in one way only, since runs of digits are separated by other text.

Shapes of a family share their stamp's fields (the same places: a stamp's digits keep
their width), read as for a shape (``stamps_of``). A dict number's integer part is
matched as JSON has it (no leading zero): a line with one does not match and is read on its
own, as ``dict_shapes`` requires.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from itertools import pairwise
from typing import Any, NamedTuple

from loglake.parse.kv import Span
from loglake.parse.shape_groups import DictFixed, Fixed

_RUN_RE = re.compile(r"[0-9]+")
_ESCAPE = str.maketrans({c: "\\" + c for c in "\\.^$|?*+()[]{}"})
_JSON_INT = "(?:0|[1-9][0-9]*)"


class Family(NamedTuple):
    """How a family's lines are read: its ``pattern`` (RE2, named groups ``n0``...), and per
    number of the reading (``nums``), step and epoch counter, the group that holds it."""

    pattern: str
    nums: tuple[str, ...]
    step_at: str | None
    epoch_at: str | None


def family_of(reading: Fixed | DictFixed, text: str) -> tuple[Any, Family] | None:
    """The family of ``text``'s shape (``reading`` its reading): a key equal for every shape
    of the family read the same way, and how to read it; None when its numbers cannot be
    told apart by runs of digits."""
    return _family(reading, text)


def _family(reading: Fixed | DictFixed, text: str) -> tuple[Any, Family] | None:
    runs = [m.span() for m in _RUN_RE.finditer(text)]
    spans: list[Span | None] = list(reading.nums)
    if isinstance(reading, Fixed):
        spans += [reading.step_at, reading.epoch_at]
    names: dict[Span, str] = {}
    for span in spans:
        if span is not None and span not in names:
            names[span] = f"n{len(names)}"
    ordered = sorted(names)
    for a, b in pairwise(ordered):
        if a[1] > b[0]:
            return None  # overlapping numbers
    run_end = dict(runs)
    starts = [r[0] for r in runs]
    for a, b in ordered:
        k = bisect_left(starts, a)  # the first run starting at a or after
        if k == len(starts) or starts[k] >= b:
            return None  # every number holds a digit (a run of digits places it)
        if k and run_end[starts[k - 1]] > a:
            return None  # a number begins inside a run of digits
        k = bisect_left(starts, b)
        if k and run_end[starts[k - 1]] > b:
            return None  # or ends inside one
    # what goes before the text at a place: a number's end, then a number's start
    marks: dict[int, str] = {}
    for _, b in ordered:
        marks[b] = ")"
    for a, b in ordered:
        marks[a] = marks.get(a, "") + f"(?P<{names[(a, b)]}>"
    json_ints = isinstance(reading, DictFixed)
    first_runs = {a if "0" <= text[a] <= "9" else a + 1 for a, _ in ordered}
    out: list[str] = []
    i = 0
    for at in sorted({*marks, *run_end, len(text)}):
        out.append(text[i:at].translate(_ESCAPE))
        out.append(marks.get(at, ""))
        i = at
        if at in run_end:
            out.append(_JSON_INT if json_ints and at in first_runs else "[0-9]+")
            i = run_end[at]
    pattern = "^" + "".join(out) + "$"
    family = Family(
        pattern,
        tuple(names[s] for s in reading.nums),
        names[reading.step_at] if isinstance(reading, Fixed) and reading.step_at else None,
        names[reading.epoch_at] if isinstance(reading, Fixed) and reading.epoch_at else None,
    )
    stamp = (reading.bytes_at or reading).stamp  # the columns read stamps at byte positions
    if isinstance(reading, Fixed):
        same = ("fixed", reading.plan, reading.counters, reading.stamp, stamp)
    else:
        same = ("dict", reading.plan, reading.stamp, stamp)
    return (same, family), family
