"""Fetching object bytes: ranged reads in bounded pieces, and whole chunks decompressed.

Everything is written into a local *staged* file at the byte offsets it has in the log, so
the local reader, fingerprints and tail hashes work on it unchanged. Staged files are sparse:
only the ranges needed are fetched (the 64 bytes before a saved offset that prove it still
holds, and everything after it).
"""

from __future__ import annotations

import os
import threading
import zlib
from typing import TYPE_CHECKING, Any

from loglake.objstore.filesystem import RETRY_FOR, call
from loglake.tail.gaps import CORRUPT_STREAM, TRUNCATED_STREAM

if TYPE_CHECKING:
    import fsspec

PIECE = 8 << 20
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class Fetcher:
    """Reads from one filesystem with the retry policy of ``filesystem.call``."""

    def __init__(
        self,
        fs: fsspec.AbstractFileSystem,
        storage_options: dict[str, Any] | None,
        stop: threading.Event | None = None,
        retry_for: float = RETRY_FOR,
    ) -> None:
        self.fs = fs
        self.storage_options = storage_options
        self.stop = stop
        self.retry_for = retry_for

    def range(self, url: str, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` of the object (fewer if it is shorter)."""
        if end <= start:
            return b""
        return call(
            lambda: self.fs.cat_file(url, start=start, end=end),
            url,
            self.storage_options,
            stop=self.stop,
            retry_for=self.retry_for,
        )

    def whole(self, url: str) -> bytes:
        return call(
            lambda: self.fs.cat_file(url),
            url,
            self.storage_options,
            stop=self.stop,
            retry_for=self.retry_for,
        )

    def copy_range(self, url: str, start: int, end: int, fd: int, at: int) -> int:
        """Write object bytes ``[start, end)`` into ``fd`` at ``at``; returns bytes written."""
        done = 0
        while start + done < end:
            piece = self.range(url, start + done, min(end, start + done + PIECE))
            if not piece:
                break
            os.pwrite(fd, piece, at + done)
            done += len(piece)
        return done


def _whole_lines(pieces: list[bytes]) -> bytes:
    """Text cut at the damage, less its last partial line: a line cut mid-number would give
    a wrong value, and run into the next chunk's first line."""
    text = b"".join(pieces)
    return text[: text.rfind(b"\n") + 1]


INFLATE_STEP = 1 << 12  # compressed bytes per inflate call: damage costs no more


def decompress(data: bytes, name: str) -> tuple[bytes, str | None]:
    """A chunk's text: gzip (all members) or zstd by magic, else as is; plus a problem."""
    if data.startswith(GZIP_MAGIC):
        out: list[bytes] = []
        rest = data
        while rest:
            d = zlib.decompressobj(31)
            # Inflated in steps: a member damaged in its middle keeps the text before it
            # (one call over the whole member would raise with nothing kept).
            pos = 0
            try:
                while not d.eof and pos < len(rest):
                    out.append(d.decompress(rest[pos : pos + INFLATE_STEP]))
                    pos += INFLATE_STEP
            except zlib.error as exc:
                return _whole_lines(out), f"{CORRUPT_STREAM}: gzip: {exc}"
            if not d.eof:
                problem = f"{TRUNCATED_STREAM}: gzip stream ends before its end marker"
                return _whole_lines(out), problem
            rest = (d.unused_data + rest[pos:]).lstrip(b"\x00")
        return b"".join(out), None
    if data.startswith(ZSTD_MAGIC):
        try:
            import zstandard
        except ImportError:
            return b"", f"{CORRUPT_STREAM}: {name} is zstd-compressed; pip install zstandard"
        try:
            reader = zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=True)
            return reader.read(), None
        except zstandard.ZstdError as exc:
            return b"", f"{CORRUPT_STREAM}: zstd: {exc}"
    return data, None
