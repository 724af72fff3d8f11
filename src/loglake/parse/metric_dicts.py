"""Which dict lines of a batch are metrics records, decided once per line *shape*.

Most ``{...}`` lines of a training log are metrics (``{'loss': 0.5, 'epoch': 1.2}``), and
the params parser reads every one of them only to find that: a JSON parse per line, for
nothing. Lines of one shape (``loglake.parse.line_shapes``: every digit ``1``-``9`` read as
``0``) differ only in their digits, and what the parse makes of a digit is the same for
every digit but in one place: a number's integer part of two or more digits may not start
with ``0`` (``{"step": 05}`` is no JSON). So a shape is read once, as its own text with
those leading zeros made ``1``; when that reads as a metrics dict through a key with no
digit in it (and cannot be a command line), every line of the shape whose integer parts do
not start with a ``0`` reads so too (``quiet_shape`` has the exact conditions). One RE2
pass over the batch's dict lines finds the lines that might (``LEADING_ZERO``).
"""

from __future__ import annotations

import json
from typing import Any

from loglake.parse.base import LineBatch
from loglake.parse.structured import FLAT_DICT_RE, MAX_MAPPING_CHARS, number_of
from loglake.parse.vocabulary import is_metric_name, step_kind

#: every line with a number whose integer part starts with ``0`` and has more digits
#: matches (and some others: a ``05`` inside a string); RE2 syntax
LEADING_ZERO = r"(?:^|[^0-9.eE+\-])-?0[0-9]"
#: words without which a line is no command line (``params._command``)
COMMAND_WORDS = ("python", "run", "deepspeed")
#: an integer this long may not convert to a float (``number_of`` would raise)
MAX_INT_DIGITS = 300

_QUIET: dict[str, bool] = {}
_QUIET_SIZE = 4096
_QUIET_CHARS = 4096  # longer dict lines are read as before (and the cache stays small)


def quiet_shape(shape: str) -> bool:
    """Whether every line of ``shape`` with no ``LEADING_ZERO`` match is a one-line dict
    that ``parse_mapping`` reads and ``mapping_looks_like_metrics`` calls metrics, and that
    ``params._command`` cannot read as a command line. Cached per shape."""
    if len(shape) > _QUIET_CHARS:
        return False
    got = _QUIET.get(shape)
    if got is None:
        if len(_QUIET) >= _QUIET_SIZE:
            _QUIET.clear()
        got = _QUIET[shape] = _quiet(shape)
    return got


def _quiet(shape: str) -> bool:
    s = shape.rstrip()
    if len(s) < 2 or s[0] != "{" or s[-1] != "}" or len(s) > MAX_MAPPING_CHARS or "\\" in s:
        return False  # backslash: a string's escapes (\\u0031) could read digits as text
    if "/" in s and any(w in s for w in COMMAND_WORDS):
        return False  # a command line must start with its launcher or a path to it: "/"
    # parse_mapping's first two ways: plain JSON, or a flat Python dict read as JSON. A line
    # of the shape takes the way the shape takes (the tests look at non-digits only) and
    # reads as the shape does as long as its integer parts are valid: no LEADING_ZERO match.
    flat = not ('"' in s and "'" not in s)
    if flat and ("(" in s or "nan" in s or "inf" in s):
        return False
    starts = _integer_starts(s.replace("'", '"') if flat else s)
    if starts is None:
        return False
    chars = list(s)
    for p in starts:
        chars[p] = "1"
    example = "".join(chars)
    if flat:
        if not FLAT_DICT_RE.fullmatch(example):
            return False
        example = example.replace("'", '"')
    try:
        obj = json.loads(example)
    except (ValueError, RecursionError):
        return False
    return isinstance(obj, dict) and _stable_metric_leaf(obj)


def _integer_starts(text: str) -> list[int] | None:
    """Where the integer parts of two or more digits of the numbers of JSON ``text`` start
    (quoted strings skipped); None when a string is not closed or an integer is too long."""
    out: list[int] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            end = text.find('"', i + 1)
            if end < 0:
                return None
            i = end + 1
        elif c == "-" or "0" <= c <= "9":
            j = i + 1 if c == "-" else i
            k = j
            while k < n and "0" <= text[k] <= "9":
                k += 1
            if k - j > MAX_INT_DIGITS:
                return None
            if k - j >= 2:
                out.append(j)
            while k < n and text[k] in "0123456789.eE+-":
                k += 1
            i = k
        else:
            i += 1
    return out


def _stable_metric_leaf(obj: dict[Any, Any]) -> bool:
    """Whether a leaf makes ``mapping_looks_like_metrics`` true through keys with no ASCII
    digit: such keys, and the kind of their values, are the same in every line of the shape
    (``number_of`` of a string sees a digit only as a digit)."""
    for k, v in obj.items():
        if not isinstance(k, str) or any("0" <= c <= "9" for c in k):
            continue
        if isinstance(v, dict) and v:
            if _stable_metric_leaf(v):
                return True
        elif number_of(v) is not None:
            last = k.rsplit(".", 1)[-1]
            if step_kind(last) or is_metric_name(last):
                return True
    return False


def quiet_lines(batch: LineBatch, lines: list[int]) -> list[int]:
    """The lines (of ``lines``, indices into ``batch``) provably metrics dicts per
    ``quiet_shape``; empty when the batch has no shapes."""
    shapes = batch.shapes()
    if shapes is None or not lines:
        return []
    import pyarrow as pa
    import pyarrow.compute as pc

    among = pa.array(lines, pa.int32())
    ids = pc.take(shapes.index, among)
    quiet = [s for s in pc.unique(ids).to_pylist() if quiet_shape(shapes.distinct[s].as_py())]
    if not quiet:
        return []
    picked = pc.filter(among, pc.is_in(ids, value_set=pa.array(quiet, pa.int32())))
    if len(picked) == 0:
        return []
    zero = pc.match_substring_regex(pc.take(batch.arrow(), picked), LEADING_ZERO)
    return pc.filter(picked, pc.invert(zero)).to_pylist()  # type: ignore[no-any-return]
