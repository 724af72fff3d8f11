"""Structured text inside log lines: one-line JSON objects and Python dict reprs,
``Name(k=v, ...)`` reprs, balanced brackets, flattening, and ``key: value`` settings text.

Shared by the params, metrics and hyperparameter-search parsers; the metric pairs of free-form
messages are in ``loglake.parse.kv``.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any

from loglake.parse.values import NUMBER

_NUM = rf"(?:{NUMBER})"
MAX_MAPPING_CHARS = 200_000


# -- structured text ------------------------------------------------------------------------

_OPEN = {"(": ")", "[": "]", "{": "}"}
_CLOSE = {")", "]", "}"}
_SCALAR_WRAP_RE = re.compile(
    r"\b(?:np\.|numpy\.)?(?:float|int|uint)(?:8|16|32|64|128)?\(([^()]*)\)|\btensor\(([^(),]*)(?:,[^()]*)?\)"
)
_BARE_NONFINITE_RE = re.compile(r"(?<=[:\s\[,])(-?(?:nan|inf))(?=\s*[,}\]])")


def find_closing(text: str, start: int) -> int:
    """Index of the bracket closing the one at ``start`` (quotes respected), or -1."""
    depth = 0
    quote = ""
    i = start
    n = len(text)
    while i < n:
        c = text[i]
        if quote:
            if c == "\\":
                i += 2
                continue
            if c == quote:
                quote = ""
        elif c in ("'", '"'):
            quote = c
        elif c in _OPEN:
            depth += 1
        elif c in _CLOSE:
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def _scan(text: str, depth: int, sep: str) -> tuple[int, list[int]]:
    """One pass over ``text`` outside quotes: the bracket depth after it (from ``depth``) and
    where ``sep`` stands at depth 0 (``sep=""``: nowhere)."""
    cuts: list[int] = []
    quote = ""
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if quote:
            if c == "\\":
                i += 2
                continue
            if c == quote:
                quote = ""
        elif c in ("'", '"'):
            quote = c
        elif c in _OPEN:
            depth += 1
        elif c in _CLOSE:
            depth -= 1
        elif c == sep and depth == 0:
            cuts.append(i)
        i += 1
    return depth, cuts


def bracket_depth(text: str, depth: int = 0) -> int:
    """Bracket depth after ``text`` starting from ``depth`` (for multi-line dumps)."""
    return _scan(text, depth, "")[0]


def split_top_level(text: str, sep: str = ",") -> list[str]:
    """Split on ``sep`` outside brackets and quotes."""
    parts: list[str] = []
    start = 0
    for cut in _scan(text, 0, sep)[1]:
        parts.append(text[start:cut])
        start = cut + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


# The params and metrics parsers both read every dict line of a batch: the second parse of
# a line is a lookup. Short lines only, so the cache stays small.
_MAPPINGS: dict[str, dict[str, Any] | None] = {}
_MAPPING_CACHE_CHARS = 4096
_MAPPING_CACHE_SIZE = 8192
_UNPARSED: Any = object()


def parse_mapping(text: str) -> dict[str, Any] | None:
    """A one-line JSON object or Python dict repr (numpy/torch scalars unwrapped), or None.

    The dict may be shared with other callers that parsed the same text: read it, never
    change it.
    """
    s = text.strip()
    if len(s) < 2 or s[0] != "{" or s[-1] != "}" or len(s) > MAX_MAPPING_CHARS:
        return None
    if len(s) > _MAPPING_CACHE_CHARS:
        return _parse_mapping(s)
    v = _MAPPINGS.get(s, _UNPARSED)
    if v is _UNPARSED:
        if len(_MAPPINGS) >= _MAPPING_CACHE_SIZE:
            _MAPPINGS.clear()
        v = _MAPPINGS[s] = _parse_mapping(s)
    return v


# A flat Python dict whose text is also JSON once its quotes are swapped (HF Trainer's
# ``{'loss': 0.5, 'learning_rate': 2.94e-05, 'epoch': '0.05'}``): plain quoted strings (no
# quote, backslash, control character or surrogate inside), JSON-form numbers ([0-9] only),
# single spaces. ``ast.literal_eval`` and ``json.loads`` read such text to the same dict,
# and json.loads is ~10x faster.
_FLAT_STR = r"'[^'\"\\\x00-\x1f\ud800-\udfff]*'"
_FLAT_ITEM = (
    rf"{_FLAT_STR} ?: ?(?:{_FLAT_STR}|-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)"
)
FLAT_DICT_RE = re.compile(rf"\{{ ?(?:{_FLAT_ITEM}(?: ?, ?{_FLAT_ITEM})*)? ?\}}")


def _parse_mapping(s: str) -> dict[str, Any] | None:
    if '"' in s and "'" not in s:
        try:
            v = json.loads(s)
            return v if isinstance(v, dict) else None
        except ValueError:
            pass
    if "(" not in s and "nan" not in s and "inf" not in s and FLAT_DICT_RE.fullmatch(s):
        try:
            return json.loads(s.replace("'", '"'))  # type: ignore[no-any-return]
        except ValueError:  # an int past Python's digit limit: literal_eval refuses it too
            return None
    if "(" in s:
        s = _SCALAR_WRAP_RE.sub(lambda m: m.group(1) if m.group(1) is not None else m.group(2), s)
    if "nan" in s or "inf" in s:
        s = _BARE_NONFINITE_RE.sub(r"'\1'", s)
    try:
        v = ast.literal_eval(s)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    return v if isinstance(v, dict) else None


def flatten(obj: dict[str, Any], sep: str, prefix: str = "") -> list[tuple[str, Any]]:
    """Leaves of nested mappings with joined keys (``optimizer.lr``, ``train/loss``)."""
    out: list[tuple[str, Any]] = []
    for k, v in obj.items():
        key = f"{prefix}{sep}{k}" if prefix else str(k)
        if isinstance(v, dict) and v:
            out.extend(flatten(v, sep, key))
        else:
            out.append((key, v))
    return out


def number_of(value: Any) -> float | None:
    """A metric number from a parsed value: numbers and numeric strings (``'3.762'``,
    ``'100%'``), never booleans."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        s = value.strip()
        s = s.removesuffix("%")
        m = _VALUE_ONLY_RE.fullmatch(s)
        if m:
            return float(s)
    return None


_VALUE_ONLY_RE = re.compile(_NUM)

_REPR_HEAD_RE = re.compile(r"(?P<name>[A-Za-z_][\w.]*)\s*\(")
_KWARG_RE = re.compile(r"(?P<k>[A-Za-z_]\w*)\s*=(?!=)\s*(?P<v>.*)", re.DOTALL)


def parse_kwargs_repr(text: str) -> tuple[str, list[tuple[str, str]]] | None:
    """``Name(k=v, k2=v2)`` → ``('Name', [('k', 'v'), ...])`` when every argument is a keyword
    argument (dataclass and argparse ``Namespace`` reprs); else ``None``."""
    s = text.strip()
    m = _REPR_HEAD_RE.match(s)
    if not m or not s.endswith(")"):
        return None
    open_at = m.end() - 1
    if find_closing(s, open_at) != len(s) - 1:
        return None
    items = []
    for part in split_top_level(s[open_at + 1 : -1]):
        km = _KWARG_RE.fullmatch(part)
        if not km:
            return None
        items.append((km.group("k"), km.group("v").strip().rstrip(",").strip()))
    return m.group("name"), items


# -- settings text ----------------------------------------------------------------------------

_LEADER_SEP_RE = re.compile(r"[:=]|\s\.{3,}(?=\s)")
_SEP_RE = re.compile(r"[:=]")
_CALL_HEAD_RE = re.compile(r"[A-Za-z_][\w.]*\(")


def split_key_value(body: str, *, leader: bool) -> tuple[str, str] | None:
    """``key: value`` / ``key = value`` (/ ``key ..... value``) split at the first separator;
    None when the first ``:`` is not followed by a space (``http://``, ``binary:logistic``)."""
    m = (_LEADER_SEP_RE if leader else _SEP_RE).search(body)
    if m is None or m.start() == 0:
        return None
    sep = m.group(0)
    if sep == ":" and body[m.end() : m.end() + 1] not in ("", " ", "\t"):
        return None
    key = body[: m.start()].strip()
    return (key, body[m.end() :].strip()) if key else None


def is_scalar_text(value: str) -> bool:
    """Whether text reads as one setting value (a token, a quoted string, a bracketed list or
    dict, a ``Name(...)`` call) rather than prose (``True (cuda), used: True``)."""
    if len(value) > 300:
        return False
    if value[0] in "[{(\"'":
        end = find_closing(value, 0) if value[0] in "[{(" else value.find(value[0], 1)
        return end == len(value) - 1
    if " " not in value:
        return True
    m = _CALL_HEAD_RE.match(value)
    return bool(m) and find_closing(value, m.end() - 1) == len(value) - 1


def strip_comment(text: str) -> str:
    """``0.1  # peak lr`` → ``0.1`` (YAML and Python config comments)."""
    v = text.strip()
    if v[:1] not in ("'", '"') and " #" in v:
        v = v.split(" #", 1)[0].rstrip()
    return v


def clean_value(text: str) -> str:
    """A printed value without comments, trailing commas or surrounding quotes."""
    v = strip_comment(text).rstrip(",").strip()
    if len(v) >= 2 and v[0] == v[-1] and v[0] in ("'", '"'):
        try:
            inner = ast.literal_eval(v)
            if isinstance(inner, str):
                return inner
        except (ValueError, SyntaxError):
            return v[1:-1]
    return v
