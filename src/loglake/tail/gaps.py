"""What reading a source lost or repaired, as data.

Every loss (a long line cut, NUL bytes stripped, a partial line emitted at the end, a
broken envelope or compressed stream) becomes a ``Gap``; the pipeline writes them to the
lake's ``gaps`` table, so nothing is ever dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass

LONG_LINE = "long_line"  # a line longer than max_line: head (and final redraw) kept
NUL_RUN = "nul_run"  # NUL bytes stripped (copytruncate leaves a hole of zeros)
PARTIAL_LINE = "partial_line"  # a last line without newline, emitted once at finalization
INVALID_UTF8 = "invalid_utf8"  # decoded with replacement characters (cleanup's FLAG_INVALID_UTF8)
BAD_ENVELOPE = "bad_envelope"  # a line that does not fit the file's CRI/docker envelope
CORRUPT_STREAM = "corrupt_stream"  # a compressed stream that cannot be decoded further
TRUNCATED_STREAM = "truncated_stream"  # a compressed stream that ends before its end marker

GAP_KINDS = (
    LONG_LINE,
    NUL_RUN,
    PARTIAL_LINE,
    INVALID_UTF8,
    BAD_ENVELOPE,
    CORRUPT_STREAM,
    TRUNCATED_STREAM,
)


@dataclass(frozen=True, slots=True)
class Gap:
    """One loss or repair: ``bytes`` counts what was dropped (or, for a partial line, its size).

    ``offset`` is the byte offset in the source (decompressed stream for .gz/.zst) of the
    line the gap belongs to.
    """

    kind: str
    offset: int
    bytes: int
    detail: str = ""
