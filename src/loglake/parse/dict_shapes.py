"""A flat dict of numbers read at fixed places, once per line shape.

Training loops print one dict per step (``{"step": 24441, "epoch": 119, "loss": 0.528}``,
HF's ``{'loss': '2.014', 'epoch': '11.17'}``). When no key holds a digit, every line of the
dict's shape has the same keys at the same places and its numbers at the same places, with
the same types (an int, a float, a quoted number): the generic parser's ``_dict_line`` then
reads each line as ``DictPlan`` says, from ``float()`` of those places, without parsing it.

One thing ``parse_mapping`` sees in the digits themselves: an integer part with a leading
zero (``05``) is not JSON (and ``05`` is not Python either), so such a line is read the
plain way (``DictShape.zeros``).
"""

from __future__ import annotations

import re
from typing import NamedTuple

from loglake.parse.kv import Span
from loglake.parse.line_recipes import DictPlan, dict_plan
from loglake.parse.structured import parse_mapping

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


def dict_shape(msg: str) -> DictShape | None:
    """How every message of ``msg``'s shape reads as a dict (``msg`` is stripped), or None
    when it is not a flat dict of plain numbers under digit-free keys."""
    if not msg.startswith("{") or not msg.endswith("}"):
        return None
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
    zeros = [
        m.start("int") for m in items if not m.group("vq") and m.end("int") - m.start("int") > 1
    ]
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
    return DictShape(tuple(m.span("num") for m in items), tuple(zeros), plan)
