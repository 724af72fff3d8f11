"""Reading sources: file identity, the chunked line reader, envelopes and line cleanup.

The stage turns bytes on disk into clean lines with offsets, timestamps and a record of
every loss (``Gap``): ``identify`` a file, ``read_lines`` from a checked offset, decode its
envelope with an ``EnvelopeDecoder``, then ``clean_lines`` for what the terminal showed.
"""

from __future__ import annotations

from loglake.tail.cleanup import (
    FLAG_ESCAPES,
    FLAG_INVALID_UTF8,
    FLAG_REDRAWN,
    clean_line,
    clean_lines,
    redraw_segments,
    strip_ansi,
)
from loglake.tail.envelope import (
    CRI,
    DOCKER_JSON,
    PLAIN,
    DecodedBatch,
    EnvelopeDecoder,
    decode,
    detect_envelope,
)
from loglake.tail.fingerprint import (
    FileIdentity,
    fingerprint,
    identify,
    matches,
    offset_still_valid,
    tail_hash,
)
from loglake.tail.gaps import Gap
from loglake.tail.reader import ReadBatch, read_lines

__all__ = [
    "CRI",
    "DOCKER_JSON",
    "FLAG_ESCAPES",
    "FLAG_INVALID_UTF8",
    "FLAG_REDRAWN",
    "PLAIN",
    "DecodedBatch",
    "EnvelopeDecoder",
    "FileIdentity",
    "Gap",
    "ReadBatch",
    "clean_line",
    "clean_lines",
    "decode",
    "detect_envelope",
    "fingerprint",
    "identify",
    "matches",
    "offset_still_valid",
    "read_lines",
    "redraw_segments",
    "strip_ansi",
    "tail_hash",
]
