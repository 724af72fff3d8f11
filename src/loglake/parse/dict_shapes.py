"""A flat dict of numbers read at fixed places, once per line shape.

Training loops print one dict per step (``{"step": 24441, "epoch": 119, "loss": 0.528}``,
HF's ``{'loss': '2.014', 'epoch': '11.17'}``). When no key holds a digit, every line of the
dict's shape has the same keys at the same places and its numbers at the same places, with
the same types (an int, a float, a quoted number): the generic parser's ``_dict_line`` then
reads each line as ``DictPlan`` says, from ``float()`` of those places, without parsing it.

One thing ``parse_mapping`` sees in the digits themselves: an integer part with a leading
zero (``05``) is not JSON (and ``05`` is not Python either), so such a line is read the
plain way (``DictShape.zeros``).

A dict's numbers change width as training goes on, and each width is a new shape. Dicts
whose text is the same once each run of digits is one digit (a *family*) match
``_ITEM_RE`` the same way, run for run (a number is whole runs of digits and the text
between them), and ``parse_mapping`` reads them alike: what it tests in a number outside
its digits is the same text, and its digits only by their width (an integer part's leading
zero, checked per line; an integer too long for ``int()``, and a text too long to parse,
checked here). So a dict of a known family is placed from the family's reading by the runs
of digits (``_DictFamily``), without matching or parsing it.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from typing import NamedTuple

from loglake.parse.kv import Span
from loglake.parse.line_recipes import DictPlan, dict_plan
from loglake.parse.structured import MAX_MAPPING_CHARS, parse_mapping

# One ``"key": number`` item (quotes of either kind, the number maybe quoted), then , or }.
_ITEM_RE = re.compile(
    r"\s*(?P<kq>[\"'])(?P<key>[^\"'\\\x00-\x1f0-9]*)(?P=kq)\s*:\s*"
    r"(?P<vq>[\"']?)(?P<num>-?(?P<int>[0-9]+)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)(?P=vq)"
    r"\s*(?P<end>[,}])"
)
_MAX_INT_DIGITS = 300  # float() of a longer integer overflows: such a line is an error


class DictShape(NamedTuple):
    """Where a flat dict's numbers are in the stripped message (``nums``), where an
    unquoted integer part of two digits or more starts (``zeros``: the line is read the
    plain way when one is ``0``), and what its keys mean (``plan``)."""

    nums: tuple[Span, ...]
    zeros: tuple[int, ...]
    plan: DictPlan


class _DictFamily(NamedTuple):
    """A family's reading by runs of digits: each number's span as (runs wholly before its
    start, characters after the last of them), likewise its end; the run of each unquoted
    integer part (a place for ``zeros`` when it is two digits or more)."""

    nums: tuple[tuple[tuple[int, int], tuple[int, int]], ...]
    ints: tuple[int, ...]
    plan: DictPlan


_RUN_RE = re.compile(r"[0-9]+")
_FAMILIES: dict[str, _DictFamily] = {}
_FAMILIES_SIZE = 4096


def dict_shape(msg: str) -> DictShape | None:
    """How every message of ``msg``'s shape reads as a dict (``msg`` is stripped), or None
    when it is not a flat dict of plain numbers under digit-free keys."""
    if not msg.startswith("{") or not msg.endswith("}"):
        return None
    runs = [m.span() for m in _RUN_RE.finditer(msg)]
    key = _RUN_RE.sub("0", msg)
    family = _FAMILIES.get(key)
    if (
        family is not None
        and len(msg) <= MAX_MAPPING_CHARS
        and all(b - a <= _MAX_INT_DIGITS for a, b in runs)
    ):
        return _placed(family, runs)
    got = _read(msg)
    if got is None:
        return None
    if len(_FAMILIES) >= _FAMILIES_SIZE:
        _FAMILIES.clear()
    _FAMILIES[key] = _family(*got, runs)
    return got[0]


def _family(shape: DictShape, ints: list[int], runs: list[Span]) -> _DictFamily:
    ends = [b for _, b in runs]

    def by_runs(at: int) -> tuple[int, int]:
        k = bisect_right(ends, at)  # runs ending at or before ``at``
        return k, at - (ends[k - 1] if k else 0)

    starts = [a for a, _ in runs]
    return _DictFamily(
        tuple((by_runs(a), by_runs(b)) for a, b in shape.nums),
        tuple(bisect_left(starts, a) for a in ints),
        shape.plan,
    )


def _placed(family: _DictFamily, runs: list[Span]) -> DictShape:
    def at(place: tuple[int, int]) -> int:
        k, d = place
        return (runs[k - 1][1] if k else 0) + d

    zeros = tuple(runs[k][0] for k in family.ints if runs[k][1] - runs[k][0] > 1)
    return DictShape(tuple((at(a), at(b)) for a, b in family.nums), zeros, family.plan)


def read_dict_shape(msg: str) -> DictShape | None:
    """``dict_shape`` read from ``msg`` itself, not placed by its family's reading (the
    reference the placing is tested against)."""
    if not msg.startswith("{") or not msg.endswith("}"):
        return None
    got = _read(msg)
    return None if got is None else got[0]


def _read(msg: str) -> tuple[DictShape, list[int]] | None:
    """The reading of a dict message, and where its unquoted integer parts start."""
    pos, end = 1, ""
    items: list[re.Match[str]] = []
    while end != "}":
        m = _ITEM_RE.match(msg, pos)
        if m is None or m.end("int") - m.start("int") > _MAX_INT_DIGITS:
            return None
        items.append(m)
        pos, end = m.end(), m.group("end")
    if pos != len(msg):
        return None
    unquoted = [m for m in items if not m.group("vq")]
    ints = [m.start("int") for m in unquoted]
    zeros = [m.start("int") for m in unquoted if m.end("int") - m.start("int") > 1]
    # the shape's reading, from a line of it without a leading zero (this one may have one)
    chars = list(msg)
    for at in zeros:
        chars[at] = "1"
    plain = "".join(chars)
    expected: list[object] = []
    for m in items:
        text = plain[m.start("num") : m.end("num")]
        if m.group("vq"):
            expected.append(text)
        else:
            expected.append(int(text) if text.lstrip("-").isdigit() else float(text))
    keys = [m.group("key") for m in items]
    obj = parse_mapping(plain)  # the reading must be the parser's own
    if obj is None or list(obj) != keys or list(obj.values()) != expected:
        return None
    if any(type(v) is not type(e) for v, e in zip(obj.values(), expected, strict=True)):
        return None
    plan = dict_plan(tuple(keys), (float,) * len(keys))
    assert plan is not None
    return DictShape(tuple(m.span("num") for m in items), tuple(zeros), plan), ints
