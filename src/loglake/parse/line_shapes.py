"""Running a prefilter pattern once per line *shape* instead of once per line.

A training log repeats a few hundred templates with different numbers in them: the first
214,000 lines of the benchmark's mixed log have 1,625 distinct shapes once every digit
``1``-``9`` reads as ``0``. An RE2 pass over a batch costs per line (~160 ns whatever the pattern), so
a batch's dozen prefilter passes cost more than everything but the parsers themselves.
Matched against the batch's distinct shapes and spread back to the lines with one ``take``,
the same passes cost ~5 % of that.

That keeps every line a pattern matches when the pattern cannot tell ``0`` from another
digit in the way that matters: whenever it matches a line it must match the line's shape.
``blind_to_digits`` makes a pattern so, from its text: an atom that accepts a digit
``1``-``9`` but not ``0`` (a literal ``5``, ``[1-9]``) is widened to accept ``0`` too, which
only selects a few more lines (a prefilter may, see ``loglake.parse.prefilter``); a pattern
it cannot read (``\\Q…\\E``) runs over the lines as before. Shapes keep every line's byte
length, so they reuse the batch's own Arrow offsets: computing them is one
``bytes.translate`` over the batch's data buffer and one ``dictionary_encode``. And since
a log's batches share most of their shapes, what a pattern said of a shape is remembered
across batches (``_Memo``): a pattern runs only over the shapes it has not seen.

Those are few (tens per 8 MB batch once a log is under way), and an Arrow pass compiles
its pattern anew every time: compiling costs ~70 % of a batch's passes over its new
shapes. With google-re2 installed, few new shapes are matched one by one against the
pattern compiled once per process (``_compiled``): the same RE2, with the options Arrow's
``match_substring_regex`` gives it (UTF-8, case-sensitive, unanchored search), so the same
answers (tests/test_shape_engines.py checks them against Arrow's, Unicode tables included).
"""

from __future__ import annotations

import threading
from functools import lru_cache
from operator import itemgetter
from typing import Any

#: ASCII digits 1-9 read as 0; UTF-8 never puts these bytes inside a multi-byte character
ZERO_DIGITS = bytes.maketrans(b"123456789", b"000000000")
#: use the shapes only while they repeat: beyond this share of distinct shapes a pass over
#: the lines costs less than the dictionary's pass plus the take
MAX_DISTINCT_SHARE = 0.5

_NONZERO = frozenset("123456789")
_HEX = frozenset("0123456789abcdefABCDEF")


class _Unsure(Exception):
    """The pattern has a construct ``blind_to_digits`` does not read."""


@lru_cache(maxsize=1024)
def blind_to_digits(pattern: str) -> str | None:
    """A pattern that matches every line ``pattern`` matches, and that line's shape too.

    Atom by atom: each literal or class that accepts some digit ``1``-``9`` must also accept
    ``0``; one that does not is widened to ``(?:atom|0)`` (a prefilter may select more lines
    than its parser needs, never fewer). ``\\d``, ``\\pN``, ``\\w``, ``.`` and ``[0-9]``
    accept every digit, ``\\D``, ``\\s``, ``[A-Z]`` none; anchors, ``\\b`` (digits are all
    word characters), groups and ``{m,n}`` do not look at digits. ``None`` for a construct
    not read here (``\\Q…\\E``, octal escapes): such a pattern runs over the lines.
    """
    try:
        return "".join(_atoms(pattern))
    except _Unsure:
        return None


def _atoms(p: str) -> list[str]:
    out: list[str] = []
    i, n = 0, len(p)
    while i < n:
        c = p[i]
        if c == "\\":
            ch, j = _escape(p, i)
            blind = ch is None or ch not in _NONZERO
        elif c == "[":
            j, blind = _class(p, i)
        elif c == "{":
            j, blind = _braces(p, i), True
        elif c == "(":
            j, blind = _group_open(p, i), True
        else:
            j, blind = i + 1, c not in _NONZERO
        out.append(p[i:j] if blind else f"(?:{p[i:j]}|0)")
        i = j
    return out


def _escape(p: str, i: int) -> tuple[str | None, int]:
    """The literal character an escape at ``p[i]`` stands for (``None`` for a class or an
    assertion that accepts every digit or none), and the index after it."""
    if i + 1 >= len(p):
        raise _Unsure
    e = p[i + 1]
    if e == "x":
        if i + 2 < len(p) and p[i + 2] == "{":
            end = p.find("}", i + 3)
            digits = p[i + 3 : end] if end > 0 else ""
            if not digits or not set(digits) <= _HEX:
                raise _Unsure
            return chr(int(digits, 16)), end + 1
        digits = p[i + 2 : i + 4]
        if len(digits) != 2 or not set(digits) <= _HEX:
            raise _Unsure
        return chr(int(digits, 16)), i + 4
    if e in "pP":
        if i + 2 < len(p) and p[i + 2] == "{":
            end = p.find("}", i + 3)
            if end < 0 or p[i + 3 : end] not in ("N", "Nd", "Z", "Zs", "L", "Lu", "Ll", "P", "S"):
                raise _Unsure
            return None, end + 1
        if i + 2 < len(p) and p[i + 2] in "NZLPS":
            return None, i + 3
        raise _Unsure
    if e in "dDsSwWbBAz":
        return None, i + 2
    if e.isalnum():  # \Q...\E, octal and back references, \C: not read here
        raise _Unsure
    return e, i + 2  # an escaped punctuation character


def _braces(p: str, i: int) -> int:
    """A ``{m,n}`` quantifier is skipped whole; any other ``{`` is a literal."""
    end = p.find("}", i)
    body = p[i + 1 : end] if end > 0 else ""
    if body and body[0].isdigit() and all(ch.isdigit() or ch == "," for ch in body):
        return end + 1
    return i + 1


def _group_open(p: str, i: int) -> int:
    """Skip ``(``, ``(?:``, flags ``(?i)``/``(?i:`` and a group's name (``(?P<n1>``)."""
    if p.startswith("(?P<", i):
        end = p.find(">", i)
        if end < 0:
            raise _Unsure
        return end + 1
    if p.startswith("(?", i):
        j = i + 2
        while j < len(p) and (p[j].isalpha() or p[j] == "-"):
            j += 1
        if j < len(p) and p[j] in ":)":
            return j + 1
        raise _Unsure
    return i + 1


def _class(p: str, i: int) -> tuple[int, bool]:
    """The end of a ``[...]`` class, and whether it accepts 0 if it accepts a digit 1-9."""
    j = i + 1
    negated = j < len(p) and p[j] == "^"
    if negated:
        j += 1
    chars: set[str] = set()  # digits the class names one by one or in a range
    first = True
    while True:
        if j >= len(p):
            raise _Unsure
        c = p[j]
        if c == "]" and not first:
            break
        first = False
        if p.startswith("[:", j):
            end = p.find(":]", j)
            if end < 0:
                raise _Unsure
            j = end + 2  # a named class accepts every digit or none: alike
            continue
        if c == "\\":
            ch, j = _escape(p, j)
            if ch is None:  # \d \D \s \w \pN...: every digit or none, alike
                continue
        else:
            ch, j = c, j + 1
        if j + 1 < len(p) and p[j] == "-" and p[j + 1] != "]":
            if p[j + 1] == "\\":
                hi, j = _escape(p, j + 1)
                if hi is None:
                    raise _Unsure
            else:
                hi, j = p[j + 1], j + 2
            chars.update(d for d in "0123456789" if ch <= d <= hi)
        elif ch in "0123456789":
            chars.add(ch)
    nonzero = chars & _NONZERO
    if negated:  # accepts the digits it does not name
        return j + 1, not (len(nonzero) < 9 and "0" in chars)
    return j + 1, not nonzero or "0" in chars


class _Memo:
    """What each pattern said of each line shape met so far, across batches: a training
    log's batches share most of their shapes (85 % from one 8 MB batch to the next on the
    benchmark log), and an RE2 pass over a batch's distinct shapes costs ~1 ms per pattern,
    so a pattern only runs over the shapes it has not seen yet. A shape's answer is its
    own (the pattern matched against the shape's text), so remembering it changes nothing."""

    __slots__ = ("answers", "ids", "size")

    def __init__(self) -> None:
        self.ids: dict[bytes, int] = {}  # shape -> its number here
        self.size = 0  # bytes of the shapes in ``ids``
        #: per pattern, per shape number: 0 no match, 1 match, 2 not asked yet
        self.answers: dict[str, bytearray] = {}


#: up to this many shapes new to a pattern are matched with the pattern compiled once
#: (``_compiled``: ~1 µs a shape); more, a fresh Arrow pass costs less (its compile, ~0.2 ms
#: a pattern and up to ~1.5 ms, then ~0.1 µs a shape)
COMPILED_MAX_SHAPES = 256


@lru_cache(maxsize=1)
def _google_re2() -> Any:
    """google-re2's ``re2`` module, or ``None``: other packages install a ``re2`` too."""
    from importlib import metadata

    try:
        metadata.distribution("google-re2")
        import re2
    except (metadata.PackageNotFoundError, ImportError):
        return None
    return re2


@lru_cache(maxsize=64)
def _compiled(blind: str) -> Any:
    """``blind``'s ``search`` as google-re2 compiles it: RE2 with the options Arrow's
    ``match_substring_regex`` uses (UTF-8, case-sensitive, not literal); ``None`` without
    google-re2, or for a pattern either RE2 rejects (their versions may differ: the Arrow
    pass then raises as it always did)."""
    re2 = _google_re2()
    if re2 is None:
        return None
    import pyarrow as pa
    import pyarrow.compute as pc

    options = re2.Options()
    options.log_errors = False
    try:
        pc.match_substring_regex(pa.array([""], pa.string()), blind)
        return re2.compile(blind.encode(), options).search
    except (pa.ArrowException, re2.error):
        return None


#: the memo starts over past this many shapes, bytes of them or patterns (one byte per
#: shape and pattern besides): a batch adds at most its own size, so memory stays bounded
MEMO_SHAPES = 50_000
MEMO_BYTES = 16 << 20
MEMO_PATTERNS = 256
_UNASKED = 2
_memo = _Memo()
_MEMO_LOCK = threading.Lock()


def _current_memo() -> _Memo:
    global _memo
    memo = _memo
    full = len(memo.ids) >= MEMO_SHAPES or memo.size >= MEMO_BYTES
    if full or len(memo.answers) >= MEMO_PATTERNS:
        _memo = _Memo()
    return _memo


def _gather(data: bytearray, at: list[int]) -> bytearray:
    """``data``'s bytes at ``at``, in order, gathered in C (``itemgetter``: 1 µs per 60)."""
    if len(at) > 1:
        return bytearray(itemgetter(*at)(data))
    return bytearray(data[i] for i in at)


def _positions(data: bytearray, value: int) -> list[int]:
    """Where ``value`` is in ``data``, found in C (few: a batch's shapes new to a pattern)."""
    out = []
    i = data.find(value)
    while i >= 0:
        out.append(i)
        i = data.find(value, i + 1)
    return out


class Shapes:
    """A batch's lines as indices into its distinct shapes (built only when they repeat)."""

    __slots__ = ("_ids", "_keys", "_memo", "distinct", "index")

    def __init__(self, distinct: Any, index: Any) -> None:
        self.distinct = distinct  # Arrow string array of distinct shapes
        self.index = index  # Arrow int32 array: line -> its shape in ``distinct``
        self._memo: _Memo | None = None
        self._ids: list[int] = []  # each distinct shape's number in ``_memo``
        self._keys: list[bytes] = []  # the distinct shapes' UTF-8 bytes

    @classmethod
    def of(cls, arr: Any) -> Shapes | None:
        """The shapes of an Arrow string array, or ``None`` when they hardly repeat."""
        import pyarrow as pa
        import pyarrow.compute as pc

        validity, offsets, data = arr.buffers()
        shaped = pa.py_buffer(data.to_pybytes().translate(ZERO_DIGITS)) if data else data
        lines = pa.StringArray.from_buffers(
            len(arr), offsets, shaped, validity, arr.null_count, arr.offset
        )
        enc = pc.dictionary_encode(lines)
        if len(enc.dictionary) > MAX_DISTINCT_SHARE * len(arr):
            return None
        return cls(enc.dictionary, enc.indices)

    def mask(self, blind: str) -> Any:
        """Per line, whether its shape matches ``blind`` (a ``blind_to_digits`` pattern):
        true for every line the original pattern matches, and a few more.

        A batch asks for ~20 masks over its ~1,000 shapes: the memo's answers are gathered
        per shape in C, and a mask matching no shape (a third of them) is all-false bits
        rather than a ``take`` over the lines."""
        import pyarrow as pa
        import pyarrow.compute as pc

        with _MEMO_LOCK:  # the memo is shared: threads indexing at once must not mix numbers
            memo, ids = self._numbered()
            known = memo.answers.setdefault(blind, bytearray())
            if len(known) < len(memo.ids):
                known.extend(bytes([_UNASKED]) * (len(memo.ids) - len(known)))
            said = _gather(known, ids)  # per distinct shape: 0 no match, 1 match, 2 not asked
            unasked = _positions(said, _UNASKED)
            if unasked:
                for j, hit in zip(unasked, self._answers(blind, unasked), strict=True):
                    said[j] = known[ids[j]] = 1 if hit else 0
        if 1 not in said:
            n = len(self.index)
            return pa.BooleanArray.from_buffers(
                pa.bool_(), n, [None, pa.py_buffer(bytes(n // 8 + 1))]
            )
        per_shape = pc.equal(
            pa.UInt8Array.from_buffers(pa.uint8(), len(said), [None, pa.py_buffer(said)]), 1
        )
        return pc.take(per_shape, self.index)

    def _answers(self, blind: str, unasked: list[int]) -> list[bool]:
        """Whether ``blind`` matches each of the distinct shapes numbered ``unasked``."""
        search = _compiled(blind) if len(unasked) <= COMPILED_MAX_SHAPES else None
        if search is not None:
            keys = self._keys
            return [search(keys[j]) is not None for j in unasked]
        import pyarrow.compute as pc

        shapes = self.distinct if len(unasked) == len(self._ids) else self.distinct.take(unasked)
        return pc.match_substring_regex(shapes, blind).to_pylist()  # type: ignore[no-any-return]

    def _numbered(self) -> tuple[_Memo, list[int]]:
        """The memo in use and each distinct shape's number in it (numbered once per batch,
        again only if the memo started over since)."""
        memo = _current_memo()
        if self._memo is not memo:
            ids = memo.ids
            numbers: list[int] = []
            self._keys = self.distinct.cast("binary").to_pylist()
            for key in self._keys:
                g = ids.get(key)
                if g is None:
                    g = ids[key] = len(ids)
                    memo.size += len(key)
                numbers.append(g)
            self._ids = numbers
            self._memo = memo
        return memo, self._ids
