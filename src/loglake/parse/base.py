"""The parser protocol: what a team implements to teach loglake a new log shape.

A parser sees a file as a stream of batches of decoded lines. Whatever it must remember
between batches lives in ``state``, a JSON-serializable dict the pipeline checkpoints,
so a restart resumes mid-file with the parser exactly where it was.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from loglake.parse import stamp_columns
from loglake.parse.prefilter import Scan
from loglake.parse.records import Emitter
from loglake.parse.timestamps import (
    message_at,
    split_log_prefix,
)


@dataclass(slots=True)
class LineBatch:
    """Decoded lines of one file, in order.

    ``texts`` are clean text (envelope removed, ANSI escapes stripped, carriage-return
    redraws collapsed to their final state); ``offsets`` are the byte offsets of each line
    in the source; ``ts`` holds the envelope's timestamps (epoch seconds) or ``None`` when
    the envelope has none (then parsers may read a timestamp printed in the line).
    ``redraws`` maps the index of a line that was redrawn with carriage returns to all its
    redraw states, for parsers whose values live in earlier redraws (Lightning keeps every
    epoch's bar on one physical line).

    Several parsers read the same few lines, so what they derive from a line is computed
    once per batch: the log prefix split (``prefix``) and the lines a prefilter pattern
    selects (``matching``).
    """

    texts: list[str]
    offsets: list[int]
    ts: list[float | None] | None = None
    redraws: Mapping[int, list[str]] | None = None
    _prefixes: dict[int, tuple[float | None, str | None, str]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _scan: Scan | None = field(default=None, init=False, repr=False, compare=False)
    _shape_ids: list[int] | None = field(default=None, init=False, repr=False, compare=False)
    _arrays: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.texts)

    def prefix(self, i: int) -> tuple[float | None, str | None, str]:
        """``split_log_prefix`` of line ``i``: (timestamp, level, message), computed once."""
        got = self._prefixes.get(i)
        if got is None:
            got = self._prefixes[i] = split_log_prefix(self.texts[i])
        return got

    def message(self, i: int) -> str:
        """``strip_log_prefix`` of line ``i``: ``prefix``'s split, its timestamp not computed."""
        text = self.texts[i]
        at = self.message_at(i)
        return text[at:] if at else text

    def message_at(self, i: int) -> int:
        """Where ``message(i)`` starts in line ``i``: ``prefix``'s split without its timestamp
        (only whether the stamp is a valid date decides the split), for a parser that reads
        the message in place."""
        text = self.texts[i]
        if not text:
            return 0
        c = text[0]
        if not (c.isdigit() or c == "[" or c.isupper()):
            return 0
        got = self._prefixes.get(i)
        if got is not None:
            return len(text) - len(got[2])
        return message_at(text)

    def message_starts(self, lines: list[int], shape_ids: list[int] | None) -> list[int]:
        """``message_at`` of each of ``lines``, the split looked up once per line shape
        (``shape_ids``: the lines' ids into the batch's distinct shapes, equal ids for equal
        shapes, or None to look each line's up): per line only whether its stamp is a date."""
        if shape_ids is None or not lines or self.arrow() is None:
            return [self.message_at(i) for i in lines]
        return stamp_columns.message_starts(self, lines, shape_ids)

    def _scan_of(self) -> Scan:
        scan = self._scan
        if scan is None:
            scan = self._scan = Scan(self.texts)
        return scan

    def arrow(self) -> Any:
        """The lines as an Arrow string array (built once), or None for a small batch."""
        return self._scan_of().arr

    def shapes(self) -> Any:
        """The batch's line ``Shapes`` (``loglake.parse.line_shapes``: its distinct shapes and
        each line's index into them), or ``None`` for a batch too small to scan or whose
        shapes hardly repeat: work that depends only on a line's shape is done once per shape."""
        return self._scan_of().shapes() if self.arrow() is not None else None

    def shape_ids(self) -> list[int] | None:
        """Per line, the index of its shape in ``shapes().distinct`` (equal ids, equal
        shapes) as a list made once for all parsers; None when there are no shapes."""
        if self._shape_ids is None:
            shapes = self.shapes()
            if shapes is None:
                return None
            self._shape_ids = shapes.index.to_pylist()
        return self._shape_ids

    def offsets_array(self) -> Any:
        """``offsets`` as an Arrow int64 array, built once for the parsers reading columns."""
        got = self._arrays.get("offsets")
        if got is None:
            import pyarrow as pa

            got = self._arrays["offsets"] = pa.array(self.offsets, pa.int64())
        return got

    def ts_array(self) -> Any:
        """``ts`` as an Arrow float64 array (built once); None when the envelope has none."""
        if not self.ts:
            return None
        got = self._arrays.get("ts")
        if got is None:
            import pyarrow as pa

            got = self._arrays["ts"] = pa.array(self.ts, pa.float64())
        return got

    def pattern_mask(self, pattern: str) -> Any:
        """Per line, as an Arrow boolean array, whether RE2 ``pattern`` may match it (every
        line it matches, and a few more: ``Scan.mask``); ``None`` for a batch too small to
        be worth a scan. For parsers that combine masks themselves (``declarative_scan``)."""
        return self._scan_of().mask(pattern) if self.arrow() is not None else None

    def matching(self, *patterns: str) -> list[int]:
        """Indices (ascending) of the lines every RE2 pattern in ``patterns`` matches: a
        parser's prefilter (see ``loglake.parse.prefilter``). Every line when the batch is
        too small to be worth a scan."""
        return self._scan_of().lines(patterns)


@dataclass(frozen=True, slots=True)
class FileInfo:
    """What a parser may know about the file it parses (for detection and context)."""

    path: str
    head: tuple[str, ...] = ()  # the first decoded lines, for detection rules


@runtime_checkable
class Parser(Protocol):
    """A log parser. ``name`` and ``version`` are recorded on every row it produces."""

    name: str
    version: str
    #: lower runs first; specific parsers claim their lines before the generic fallback
    priority: int

    def detect(self, info: FileInfo) -> bool:
        """Whether this parser applies to the file (path glob, first lines)."""
        ...

    def new_state(self) -> dict[str, Any]:
        """Fresh JSON-serializable state for a new file."""
        ...

    def parse(self, batch: LineBatch, state: dict[str, Any], out: Emitter) -> None:
        """Extract records from a batch of lines, updating ``state`` in place."""
        ...

    def finalize(self, state: dict[str, Any], out: Emitter, *, idle: bool) -> None:
        """Called at the current end of the file.

        ``idle`` is true when the file has not grown for longer than the job-end timeout
        (the job is over); a parser can then report a final status.
        """
        ...


class BaseParser:
    """Convenience base with no-op defaults; subclasses set name/version/priority."""

    name = "unnamed"
    version = "1"
    priority = 50

    def detect(self, info: FileInfo) -> bool:
        return True

    def new_state(self) -> dict[str, Any]:
        return {}

    def parse(self, batch: LineBatch, state: dict[str, Any], out: Emitter) -> None:
        raise NotImplementedError

    def finalize(self, state: dict[str, Any], out: Emitter, *, idle: bool) -> None:
        return None
