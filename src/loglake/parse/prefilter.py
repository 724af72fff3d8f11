"""Picking, in C, the few lines of a batch a Python parser has to read.

Most lines of a training log are noise to most parsers: the facts parser cares about a
``git commit`` line, the status parser about a traceback or a ``CANCELLED``, the metrics
parser about lines naming a metric or a step. Calling Python per line and per parser to
learn that costs more than everything else the indexer does. So a parser states, as one
RE2 pattern, a *necessary condition* for a line to matter to it; RE2 (pyarrow compute)
runs the pattern over the whole batch as an Arrow array at hundreds of MB/s, and the
parser's unchanged per-line code runs on the lines that pass.

The contract that keeps this correct: a pattern may select more lines than the parser
needs (they are read and found to be nothing, as before), never fewer. Patterns are
written against the parser's own regexes with Python's Unicode classes widened to RE2's
(``\\d`` → ``\\pN``, ``\\s`` → ``WS``); tests/test_prefilter.py checks on real and generated
logs that every line a parser acts on is selected.

A parser whose state makes every line matter for a while (inside a traceback, a config
dump, a table) reads every line until that state ends: see ``walk``.

Small batches (a daemon tailing a few new lines) are not scanned: every line is a
candidate, which is always right and cheaper than building an Arrow array. Large ones are
matched once per distinct line shape, not once per line (``loglake.parse.line_shapes``).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from loglake.parse.line_shapes import Shapes, blind_to_digits

ARROW_MIN_LINES = 64  # below this, reading every line beats building an Arrow array

#: Python's Unicode ``\s`` in RE2 terms (RE2's ``\s`` is ASCII ``[\t\n\f\r ]``)
WS = r"[\s\x0b\x1c-\x1f\x85\pZ]"
#: what a parser's normalization may delete between a name and its number: whitespace
#: and parenthesized annotations (``epoch (train) 3``), nested once
GAP = rf"(?:{WS}|\((?:[^()]|\([^()]*\))*\))*"


def literal(text: str) -> str:
    """``text`` as an RE2 pattern matching it literally."""
    return "".join(c if c.isascii() and c.isalnum() else f"\\x{{{ord(c):x}}}" for c in text)


def any_literal(texts: Iterable[str]) -> str:
    """An RE2 pattern matching a line that holds any of ``texts``."""
    return "|".join(literal(t) for t in sorted(set(texts)))


class Scan:
    """One batch as an Arrow array, with the lines each pattern selected (cached)."""

    __slots__ = ("_shapes", "arr", "hits", "masks", "n")

    def __init__(self, texts: list[str]) -> None:
        self.n = len(texts)
        self.arr: Any = None
        if self.n >= ARROW_MIN_LINES:
            import pyarrow as pa  # here: importing loglake.parse must stay light for plugins

            try:
                self.arr = pa.array(texts, type=pa.string())
            except (pa.ArrowException, UnicodeError, TypeError, ValueError):
                self.arr = None  # lone surrogates: read every line
        self.masks: dict[str, Any] = {}
        self.hits: dict[tuple[str, ...], list[int]] = {}
        self._shapes: Shapes | None | bool = False  # False: not computed yet

    def shapes(self) -> Shapes | None:
        """The batch's line shapes (computed on first use), ``None`` when they do not repeat."""
        if self._shapes is False:
            self._shapes = Shapes.of(self.arr)
        return self._shapes  # type: ignore[return-value]

    def mask(self, pattern: str) -> Any:
        """Per line (an Arrow boolean array), whether ``pattern`` may match it: true on every
        line it matches and, where a digit matters to it, on a few more (see
        ``loglake.parse.line_shapes``). Only for a scanned batch (``arr`` is set)."""
        return self._mask(pattern)

    def _mask(self, pattern: str) -> Any:
        mask = self.masks.get(pattern)
        if mask is None:
            import pyarrow.compute as pc

            blind = blind_to_digits(pattern)
            shapes = self.shapes() if blind is not None else None
            if shapes is not None:
                mask = shapes.mask(blind)  # type: ignore[arg-type]
            else:
                mask = pc.match_substring_regex(self.arr, pattern)
            self.masks[pattern] = mask
        return mask

    def _narrow(self, pattern: str, among: Any) -> Any:
        """The indices of ``among`` (an Arrow array) whose lines ``pattern`` matches.

        A later pattern of a ``lines`` call is run on the lines the earlier ones kept, not
        on the whole batch (an RE2 pass costs per line, and those lines are usually few),
        unless its mask over the batch is known already.
        """
        import pyarrow.compute as pc

        mask = self.masks.get(pattern)
        if mask is None and blind_to_digits(pattern) is not None and self.shapes() is not None:
            mask = self._mask(pattern)  # a pass over the distinct shapes costs less
        if mask is not None:
            return pc.filter(among, pc.array_take(mask, among))
        return pc.filter(among, pc.match_substring_regex(pc.array_take(self.arr, among), pattern))

    def lines(self, patterns: tuple[str, ...]) -> list[int]:
        """Indices (ascending) of the lines every one of ``patterns`` matches. Put the
        pattern other parsers share first: its pass over the batch is made once."""
        got = self.hits.get(patterns)
        if got is not None:
            return got
        if self.arr is None:
            got = list(range(self.n))
        else:
            import pyarrow as pa
            import pyarrow.compute as pc

            try:
                got = pc.indices_nonzero(self._mask(patterns[0]))
                for p in patterns[1:]:
                    got = self._narrow(p, got)
                got = got.to_pylist()
            except pa.ArrowException:  # a pattern RE2 rejects: read every line
                got = list(range(self.n))
        self.hits[patterns] = got
        return got


def walk(n: int, picks: Callable[[], list[int] | None]) -> Iterator[int]:
    """The indices (of ``n`` lines) a parser reads, in order.

    ``picks()`` is asked again after every line the parser read, since reading a line can
    change what the parser waits for: it returns the candidate lines for the parser's
    current state, or ``None`` while every line matters (an open traceback or block).
    """
    i = 0
    while i < n:
        cands = picks()
        if cands is not None:
            k = bisect_left(cands, i)
            if k == len(cands):
                return
            i = cands[k]
        yield i
        i += 1
