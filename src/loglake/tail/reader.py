"""The chunked line reader: the hot path from bytes on disk to lines with offsets.

Lines are found with ``bytes.split`` over big chunks and their offsets with C-level
``accumulate``; per-line Python only runs for the rare lines that need repair (too long,
NUL bytes, CRLF). Memory stays bounded by the chunk size plus ``max_line`` whatever the
file or line size.

Offsets are byte offsets in the file, except for compressed files (gzip by its magic bytes
``1f 8b``, zstd by ``28 b5 2f fd``), where they are offsets in the decompressed stream.
Compressed files are treated as finished and immutable: a stream that ends cleanly is
final (its last line is emitted even without a newline), and a compressed file whose
identity changed is re-read from 0 by the caller, never resumed.

A saved ``start`` is trusted as given; callers check it first with
``fingerprint.tail_hash`` (truncation, copytruncate).
"""

from __future__ import annotations

import os
import zlib
from bisect import bisect_right
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from itertools import accumulate
from typing import IO, Any

from loglake.errors import SourceError
from loglake.tail.gaps import CORRUPT_STREAM, PARTIAL_LINE, TRUNCATED_STREAM, Gap
from loglake.tail.linebuilder import LineBuilder

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_RAW_READ = 1 << 16
_INC = (1).__add__  # line length + its newline, for C-level offset accumulation
_CONTROL_BYTES = (b"\x1b", b"\r", b"\x08")  # what ``cleanup`` acts on
_SCAN_BLOCK = 256 << 10  # searched for every control byte while in the CPU cache
#: Lines a batch holds at most, whatever their length: a batch's memory is ~6x its bytes
#: plus ~150 bytes of Python objects per line (the line as bytes and str, its offset), so
#: 16 MB of 8-byte lines would hold ~2 M lines (~1 GB peak). A chunk with more lines is cut
#: after the cap's line and the rest starts the next batch; the next reads are sized from
#: the lines per byte seen, so a log of short lines is not cut chunk after chunk.
BATCH_LINES = 1 << 18
MIN_READ = 1 << 16

Source = str | os.PathLike[str] | IO[bytes]


@dataclass(slots=True)
class ReadBatch:
    """Complete lines of one chunk (newline and a CRLF's ``\\r`` removed), in file order.

    ``end_offset`` is where the next read resumes: just after the last complete line.
    """

    lines: list[bytes]
    offsets: list[int]
    end_offset: int
    gaps: list[Gap] = field(default_factory=list)
    #: indices (ascending) of the lines that may hold a terminal control byte (ESC, CR,
    #: BS), found in the chunk the lines were split from; None: not looked for
    controls: list[int] | None = None

    def __len__(self) -> int:
        return len(self.lines)


def compression_of(head: bytes) -> str | None:
    """``"gzip"``, ``"zstd"`` or None, from a file's first bytes (names lie, magic does not)."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return None


class _GzipStream:
    """Streaming gzip decompression with an output cap per read (a small .gz can expand a lot).

    Handles concatenated members and zero padding as ``gzip`` does, but reports a truncated
    or corrupt stream instead of raising, so what was decoded before it is kept.
    """

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self._d = zlib.decompressobj(31)
        self.done = False
        self.complete = False
        self.problem: tuple[str, str] | None = None

    def _next_member(self, n: int) -> bytes:
        rest = self._d.unused_data.lstrip(b"\x00")
        while not rest:
            more = self._raw.read(_RAW_READ)
            if not more:
                self.done = self.complete = True
                return b""
            rest = more.lstrip(b"\x00")
        self._d = zlib.decompressobj(31)
        return self._d.decompress(rest, n)

    def read(self, n: int) -> bytes:
        parts: list[bytes] = []
        got = 0
        while got < n and not self.done:
            d = self._d
            try:
                if d.eof:
                    data = self._next_member(n - got)
                elif d.unconsumed_tail:
                    data = d.decompress(d.unconsumed_tail, n - got)
                else:
                    raw = self._raw.read(_RAW_READ)
                    if not raw:
                        self.done = True
                        self.problem = (TRUNCATED_STREAM, "gzip stream ends before its end marker")
                        break
                    data = d.decompress(raw, n - got)
            except zlib.error as exc:
                self.done = True
                self.problem = (CORRUPT_STREAM, f"gzip: {exc}")
                break
            if data:
                parts.append(data)
                got += len(data)
        return b"".join(parts)


class _ZstdStream:
    def __init__(self, raw: IO[bytes], name: str) -> None:
        try:
            import zstandard
        except ImportError as exc:
            raise SourceError(
                f"{name} is zstd-compressed but the 'zstandard' module is not installed",
                fix="pip install zstandard",
            ) from exc
        self._error = zstandard.ZstdError
        self._reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
        self.done = False
        self.complete = False
        self.problem: tuple[str, str] | None = None

    def read(self, n: int) -> bytes:
        if self.done:
            return b""
        try:
            data = self._reader.read(n)
        except self._error as exc:
            self.done = True
            self.problem = (CORRUPT_STREAM, f"zstd: {exc}")
            return b""
        if not data:
            self.done = self.complete = True
        return data


def _open(source: Source, stack: ExitStack) -> tuple[IO[bytes], str]:
    if hasattr(source, "read"):
        fh: IO[bytes] = source  # type: ignore[assignment]
        return fh, str(getattr(source, "name", "<stream>"))
    name = os.fspath(source)  # type: ignore[arg-type]
    try:
        fh = stack.enter_context(open(name, "rb", buffering=0))  # noqa: SIM115
    except OSError as exc:
        raise SourceError(f"cannot read {name}: {exc.strerror or exc}") from exc
    return fh, name


def read_lines(
    source: Source,
    start: int = 0,
    *,
    max_line: int = 1 << 20,
    chunk: int = 16 << 20,
    final: bool = False,
) -> Iterator[ReadBatch]:
    """Yield batches of complete lines from ``start`` (one batch per chunk holding a newline).

    A chunk is read ``chunk`` bytes at most, fewer where lines are short (``BATCH_LINES``).
    Big batches pay each parser's per-batch work less often (8 -> 16 MB cut the CPU of an
    index ~12 %); the line cap keeps their memory bounded on short lines.

    A last line without newline is held back (``end_offset`` stays before it) unless
    ``final``: then it is emitted once with a ``partial_line`` gap. Lines longer than
    ``max_line`` keep their head (see ``linebuilder``) and get a ``long_line`` gap.
    A file object is read from its current position after ``seek(start)``.
    """
    if chunk <= 0 or max_line <= 0:
        raise ValueError("chunk and max_line must be positive")
    with ExitStack() as stack:
        fh, name = _open(source, stack)
        fh.seek(0)
        kind = compression_of(fh.read(4))
        stream: _GzipStream | _ZstdStream | None = None
        if kind == "gzip":
            fh.seek(0)
            stream = _GzipStream(fh)
        elif kind == "zstd":
            fh.seek(0)
            stream = _ZstdStream(fh, name)
        if stream is None:
            fh.seek(start)
            read: Callable[[int], bytes] = fh.read
        else:
            _skip(stream.read, start, chunk)
            read = stream.read
        yield from _split(read, start, max_line, chunk, final, stream)


def _skip(read: Callable[[int], bytes], count: int, chunk: int) -> None:
    """Decompress and discard up to ``start``: compressed streams cannot seek."""
    while count > 0:
        data = read(min(chunk, count))
        if not data:
            return
        count -= len(data)


def _split(
    read: Callable[[int], bytes],
    pos: int,
    max_line: int,
    chunk: int,
    final: bool,
    stream: Any,
) -> Iterator[ReadBatch]:
    carry = LineBuilder(max_line, pos)
    size = chunk
    pending = b""  # read already, beyond the last batch's BATCH_LINES lines
    while True:
        data, pending = (pending, b"") if pending else (read(size), b"")
        if not data:
            break
        last = data.rfind(b"\n")
        if last == -1:
            carry.add(data)
            pos += len(data)
            continue
        gaps: list[Gap] = []
        lines = data.split(b"\n", BATCH_LINES)
        if len(lines) > BATCH_LINES:  # lines much shorter than the estimate: cap the batch
            pending = lines.pop()  # what follows the BATCH_LINES-th newline
            data = data[: len(data) - len(pending)]
            last = len(data) - 1
            lines.append(b"")
        size = min(chunk, max(MIN_READ, len(data) * BATCH_LINES // len(lines)))
        rest = lines.pop()
        offsets = list(accumulate(map(_INC, map(len, lines)), initial=pos))
        offsets.pop()
        first = 0
        if not carry.empty:
            first = len(lines[0]) + 1
            carry.add(lines[0])
            line = carry.finish(gaps)
            lines[0] = line[:-1] if line[-1:] == b"\r" else line
            offsets[0] = carry.offset
        controls, returns = _control_lines(data, last, offsets, pos, bool(first))
        if first <= last:
            k0 = 1 if first else 0
            _repair(data, first, last, lines, offsets, k0, max_line, gaps, returns)
        pos += len(data)
        carry.reset(pos - len(rest))
        carry.add(rest)
        yield ReadBatch(lines, offsets, pos - len(rest), gaps, controls)

    gaps = []
    if stream is not None and stream.problem:
        gaps.append(Gap(stream.problem[0], pos, 0, stream.problem[1]))
    if stream is not None and stream.complete:
        final = True
    if final and not carry.empty:
        size = carry.raw_len
        line = carry.finish(gaps)
        gaps.append(Gap(PARTIAL_LINE, carry.offset, size, "last line has no newline"))
        line = line[:-1] if line[-1:] == b"\r" else line
        yield ReadBatch([line], [carry.offset], carry.offset + size, gaps)
    elif gaps:
        yield ReadBatch([], [], carry.offset, gaps)


def _control_lines(
    data: bytes,
    last: int,
    offsets: list[int],
    base: int,
    joined_first: bool,
    block: int = _SCAN_BLOCK,
) -> tuple[list[int], list[int]]:
    """Indices of the lines of ``data[:last]`` holding ESC, CR or BS, and of those holding
    a CR (the chunk starts at file offset ``base``).

    One ``find`` per such line and byte, in the chunk the reader has anyway: cleanup then
    looks at these lines only instead of joining the batch again to search it, and only a
    line with a CR can end with one (CRLF). A first line joined from earlier chunks is
    always listed: its head is not in ``data``. The chunk is searched a block at a time,
    for each byte in turn while the block is in the CPU cache, not once per byte.
    """
    hits: tuple[list[int], ...] = tuple([] for _ in _CONTROL_BYTES)
    resume = [0] * len(_CONTROL_BYTES)  # where each byte's search goes on: after its last hit
    n = len(offsets)
    for lo in range(0, last, block):
        hi = min(lo + block, last)
        for b, byte in enumerate(_CONTROL_BYTES):
            j = data.find(byte, max(lo, resume[b]), hi)
            while j != -1:
                k = bisect_right(offsets, base + j) - 1
                hits[b].append(k)
                nxt = resume[b] = offsets[k + 1] - base if k + 1 < n else last
                j = data.find(byte, nxt, hi) if nxt < hi else -1
    found: set[int] = {0} if joined_first else set()
    for h in hits:
        found.update(h)
    return sorted(found), hits[_CONTROL_BYTES.index(b"\r")]


def _has_long_line(data: bytes, lo: int, hi: int, max_line: int) -> bool:
    """Whether ``data[lo:hi]`` holds a run of more than max_line bytes without newline.

    Jumps a window at a time (``rfind`` finds the window's last newline quickly), so the
    check costs a few calls per chunk instead of a pass over every line's length.
    """
    p = lo
    while hi - p > max_line:
        q = data.rfind(b"\n", p, p + max_line + 1)
        if q == -1:
            return True
        p = q + 1
    return False


def _repair(
    data: bytes,
    lo: int,
    hi: int,
    lines: list[bytes],
    offsets: list[int],
    k0: int,
    max_line: int,
    gaps: list[Gap],
    returns: list[int],
) -> None:
    """Fix ``lines[k0:]`` (they lie in ``data[lo:hi]``): long lines, NUL bytes, CRLF.

    ``returns`` lists the lines holding a CR: only those can end with one.
    """
    if data.find(b"\x00", lo, hi) != -1 or _has_long_line(data, lo, hi, max_line):
        builder = LineBuilder(max_line)
        for k in range(k0, len(lines)):
            line = lines[k]
            if len(line) > max_line or b"\x00" in line:
                builder.reset(offsets[k])
                builder.add(line)
                line = builder.finish(gaps)
            lines[k] = line[:-1] if line[-1:] == b"\r" else line
    else:
        for k in returns:
            if k >= k0 and lines[k][-1:] == b"\r":
                lines[k] = lines[k][:-1]
