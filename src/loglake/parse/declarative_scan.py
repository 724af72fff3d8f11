"""Finding the lines any declarative parser may care about: one scan per batch for all of them.

Every rule of a declarative parser names literals a matching line must contain (``contains``
or the text its regex requires). Testing each parser's literals separately means one pass
over the batch per literal — about forty passes for the built-ins, the whole cost on logs
that are mostly not metrics. Instead the literals of every loaded declarative parser are
joined into one alternation that RE2 (pyarrow compute) runs over the batch as an Arrow
array, a single pass at hundreds of MB/s; each parser then checks its own literals on the
few lines that pass. The result is cached per thread for the batch being parsed, so the
parsers of one file share it.

Small batches (a daemon tailing a few new lines) skip Arrow: plain ``in`` tests are cheaper
than building an array.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from loglake.parse.line_shapes import blind_to_digits

ARROW_MIN_LINES = 64  # below this a Python scan beats building an Arrow array
NARROW_MIN_LINES = 4096  # picking a parser's lines among fewer: Python beats compiling RE2
# a batch Arrow cannot take (lone surrogates, a pattern past RE2's limits) is scanned in Python
_ARROW_ERRORS = (pa.ArrowException, UnicodeError, TypeError, ValueError)

Gate = Callable[[str], bool]
#: ``LineBatch.pattern_mask``: a pattern's matches over the batch, from its distinct shapes
Mask = Callable[[str], Any]


def literal_gate(literals: tuple[str, ...]) -> Gate:
    """A test ``line -> bool``: does the line contain one of ``literals``."""
    if len(literals) == 1:
        (only,) = literals
        return lambda text: only in text
    if len(literals) == 2:
        first, second = literals
        return lambda text: first in text or second in text

    def gate(text: str) -> bool:
        for lit in literals:
            if lit in text:
                return True
        return False

    return gate


def re2_literal(text: str) -> str:
    """``text`` as an RE2 pattern matching it literally (every non-alphanumeric escaped)."""
    return "".join(c if c.isascii() and c.isalnum() else f"\\x{{{ord(c):x}}}" for c in text)


class _Owners:
    """The literal sets of the live declarative parsers: what the shared scan looks for."""

    def __init__(self) -> None:
        self.sets: weakref.WeakKeyDictionary[Any, frozenset[str]] = weakref.WeakKeyDictionary()
        self.lock = threading.Lock()
        self.union: frozenset[str] = frozenset()
        self.stale = True

    def add(self, owner: Any, literals: Iterable[str]) -> None:
        with self.lock:
            self.sets[owner] = frozenset(literals)
            self.stale = True

    def literals(self) -> frozenset[str]:
        if self.stale:  # a collected parser leaves a superset behind: more candidates, still right
            with self.lock:
                self.union = frozenset().union(*self.sets.values())
                self.stale = False
        return self.union


_OWNERS = _Owners()
_PATTERNS: dict[frozenset[str], str] = {}


def register(owner: Any, literals: Iterable[str]) -> None:
    """Make ``literals`` part of the shared scan for as long as ``owner`` lives."""
    _OWNERS.add(owner, literals)


class _Cache(threading.local):
    """The scan of the batch being parsed on this thread, shared by its parsers."""

    def __init__(self) -> None:  # once per thread
        self.reset()

    def reset(self) -> None:
        self.texts: list[str] | None = None
        self.probe: tuple[int, ...] = ()
        self.union: frozenset[str] = frozenset()
        self.lines: list[int] = []  # lines holding any registered literal
        self.batch: Any = None  # the batch as an Arrow array (None: scanned in Python)
        self.held: Any = None  # the lines of ``lines`` as one (taken when first needed)
        self.where: Any = None  # their indices as an Arrow array
        self.mask: Mask | None = None  # the batch's pattern masks (``LineBatch.pattern_mask``)
        self.shapes: Any = None  # the batch's line shapes (``LineBatch.shapes``)
        self.held_shapes: Any = None  # the distinct shapes of ``lines``, and each line's one
        self.own: dict[frozenset[str], list[int]] = {}  # per parser literal set: its lines


_CACHE = _Cache()


def release() -> None:
    """Forget this thread's scan of the last batch once its parsers are done with it: the
    scan holds the batch's texts and Arrow arrays, which would otherwise stay alive while
    the next batch is read and decoded (one batch more of peak memory, ~6x its size)."""
    _CACHE.reset()


def candidate_lines(
    texts: list[str],
    literals: frozenset[str],
    arr: Any = None,
    mask: Mask | None = None,
    shapes: Any = None,
) -> list[int]:
    """Indices (ascending) of the lines holding one of ``literals`` (and, with ``mask``, a
    few more lines of the same shapes: the parsers test their own literals on each line).

    The batch is scanned once for the literals of every registered parser; each parser's
    own lines are then picked among those (again with RE2 when there are many). ``arr``:
    the batch as an Arrow array when the caller has one (``LineBatch.arrow``); ``mask``:
    its ``LineBatch.pattern_mask``, which matches a pattern once per distinct line shape;
    ``shapes``: its ``LineBatch.shapes()`` (a parser's own lines are then picked by its
    pattern over the shapes of the scan's lines only, the same answer as its mask).
    """
    union = _OWNERS.literals()
    if not literals <= union:  # an unregistered caller: scan for its own literals only
        return _scan_all(texts, literals, arr, mask)[0]
    c = _CACHE
    if not (c.texts is texts and c.probe == _probe(texts) and c.union == union):
        c.lines, c.batch, c.where = _scan_all(texts, union, arr, mask)
        c.held = None
        c.texts, c.probe, c.union, c.own, c.mask = texts, _probe(texts), union, {}, mask
        c.shapes, c.held_shapes = (shapes if mask is not None else None), None
    if c.shapes is None and c.mask is not None:
        c.shapes = shapes  # the first caller may not have given them
    if literals == union:
        return c.lines
    own = c.own.get(literals)
    if own is None:
        own = c.own[literals] = _narrow(texts, c, literals)
    return own


def _probe(texts: list[str]) -> tuple[int, ...]:
    """Length and the identity of a few lines, so that a list refilled in place reads as the
    other batch it is (the pipeline makes a new list per batch; other callers may not)."""
    n = len(texts)
    return (n, *(id(texts[i]) for i in {0, n // 3, n // 2, 2 * n // 3, n - 1} if n))


def _scan_all(
    texts: list[str], literals: frozenset[str], arr: Any = None, mask: Mask | None = None
) -> tuple[list[int], Any, Any]:
    """(lines holding a literal, the batch as an Arrow array, their indices as one)."""
    if not literals:
        return [], None, None
    if len(texts) >= ARROW_MIN_LINES:
        try:
            return _scan_arrow(texts, literals, arr, mask)
        except _ARROW_ERRORS:
            pass
    return scan_python(texts, tuple(literals)), None, None


def _narrow(texts: list[str], c: _Cache, literals: frozenset[str]) -> list[int]:
    if c.shapes is not None and c.where is not None:
        blind = blind_to_digits(_pattern(literals))
        if blind is not None:
            try:
                return _by_held_shapes(c, blind)
            except _ARROW_ERRORS:
                pass
    if c.mask is not None and c.where is not None:
        try:  # the parser's own pattern over the batch's shapes: a small pass and a take
            own = pc.array_take(c.mask(_pattern(literals)), c.where)
            return pc.filter(c.where, own).to_pylist()  # type: ignore[no-any-return]
        except _ARROW_ERRORS:
            pass
    if c.batch is not None and len(c.lines) >= NARROW_MIN_LINES:
        try:
            if c.held is None:
                c.held = c.batch if len(c.lines) == len(texts) else c.batch.take(c.where)
            mask = pc.match_substring_regex(c.held, _pattern(literals))
            return pc.take(c.where, pc.indices_nonzero(mask)).to_pylist()  # type: ignore[no-any-return]
        except _ARROW_ERRORS:
            pass
    gate = literal_gate(tuple(literals))
    return [i for i in c.lines if gate(texts[i])]


def _by_held_shapes(c: _Cache, blind: str) -> list[int]:
    """The scan's lines whose shape ``blind`` (a ``blind_to_digits`` pattern) matches: what
    ``pc.filter(where, take(mask(pattern), where))`` gives, asking only the few shapes of
    the scan's lines instead of every shape of the batch."""
    if c.held_shapes is None:
        enc = pc.dictionary_encode(pc.take(c.shapes.index, c.where))
        c.held_shapes = (c.shapes.distinct.take(enc.dictionary), enc.indices)
    distinct, index = c.held_shapes
    own = pc.take(pc.match_substring_regex(distinct, blind), index)
    return pc.filter(c.where, own).to_pylist()  # type: ignore[no-any-return]


def scan_python(texts: list[str], literals: tuple[str, ...]) -> list[int]:
    """The Python scan: one C substring search per literal over the joined batch."""
    blob = "\n".join(texts)
    if blob.count("\n") != len(texts) - 1:  # a line holding "\n" would skew line numbers
        gate = literal_gate(literals)
        return [i for i, text in enumerate(texts) if gate(text)]
    starts = candidate_starts(blob, literals)
    lines: list[int] = []
    i = pos = 0
    for start in starts:
        i += blob.count("\n", pos, start)
        pos = start
        lines.append(i)
    return lines


def candidate_starts(blob: str, literals: tuple[str, ...]) -> list[int]:
    """Start offsets (in ``blob``) of the lines holding any literal, ascending."""
    starts: set[int] = set()
    find, rfind = blob.find, blob.rfind
    for lit in literals:
        j = find(lit)
        while j != -1:
            starts.add(rfind("\n", 0, j) + 1)
            end = find("\n", j)
            if end == -1:
                break
            j = find(lit, end)
    return sorted(starts)


def _pattern(literals: frozenset[str]) -> str:
    pattern = _PATTERNS.get(literals)
    if pattern is None:
        if len(_PATTERNS) >= 64:  # parsers reloaded many times: keep the memory bounded
            _PATTERNS.clear()
        pattern = "|".join(re2_literal(lit) for lit in sorted(literals))
        _PATTERNS[literals] = pattern
    return pattern


def _scan_arrow(
    texts: list[str], literals: frozenset[str], arr: Any = None, mask: Mask | None = None
) -> tuple[list[int], Any, Any]:
    """RE2 over the lines as an Arrow array (over their shapes, given ``mask``)."""
    if arr is None:
        arr = pa.array(texts, type=pa.string())
    pattern = _pattern(literals)
    hits = mask(pattern) if mask is not None else pc.match_substring_regex(arr, pattern)
    where = pc.indices_nonzero(hits)
    lines = where.to_pylist()
    if not lines:
        return lines, None, None
    return lines, arr, where


def section_literals(end: tuple[str, ...] | None, rules: list[Any]) -> tuple[str, ...] | None:
    """Literals of the lines a section's rules and ``end`` can match; None if one has none."""
    if end is None or any(r.alts is None for r in rules):
        return None
    return tuple(sorted({*end, *(a for r in rules for a in r.alts or ())}))
