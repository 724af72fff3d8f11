"""Assembling one logical line from pieces with bounded memory.

A line can arrive in pieces: across read chunks, as CRI ``P`` parts, or as Docker 16 KiB
splits. Some lines are enormous (a 50 MB JSON dump, a tqdm bar redrawn with ``\\r`` for a
whole epoch without a newline), so the builder never holds more than ``max_line`` bytes of
head plus a small tail:

- the head (first ``max_line`` bytes) is what a plain long line is remembered by;
- the tail keeps the last ``tail_keep`` bytes seen. If the dropped part was a carriage-return
  redraw, the tail from its first ``\\r`` is appended to the head, so the line's final visible
  state (the 100% bar, the last metrics) survives the cut. A plain long line without ``\\r``
  keeps only its head.

NUL bytes are stripped as they arrive (they are copytruncate holes, never text).
"""

from __future__ import annotations

from typing import Any

from loglake.tail.gaps import LONG_LINE, NUL_RUN, Gap

TAIL_KEEP = 64 << 10


def utf8_trim(data: bytes) -> bytes:
    """Drop an incomplete UTF-8 sequence at the end of a cut, so it decodes cleanly."""
    i = len(data) - 1
    stop = max(-1, i - 4)
    while i > stop and (data[i] & 0xC0) == 0x80:
        i -= 1
    if i <= stop or data[i] < 0xC0:
        return data
    need = 2 if data[i] < 0xE0 else 3 if data[i] < 0xF0 else 4
    return data[:i] if len(data) - i < need else data


class LineBuilder:
    """One line under construction; ``offset`` is where its first byte sits in the source."""

    __slots__ = (
        "_content_len",
        "_head",
        "_head_len",
        "_nul_at",
        "_nuls",
        "_tail",
        "max_line",
        "offset",
        "raw_len",
        "tail_keep",
    )

    def __init__(self, max_line: int, offset: int = 0, tail_keep: int = TAIL_KEEP) -> None:
        self.max_line = max_line
        self.tail_keep = min(tail_keep, max_line)
        self.reset(offset)

    def reset(self, offset: int) -> None:
        self.offset = offset
        self.raw_len = 0  # source bytes consumed, NULs included
        self._head: list[bytes] = []
        self._head_len = 0
        self._tail = b""
        self._content_len = 0  # bytes after NUL stripping
        self._nuls = 0
        self._nul_at = -1

    def add(self, data: bytes, start: int = 0, end: int | None = None) -> None:
        """Append ``data[start:end]`` without copying more of it than will be kept."""
        if end is None:
            end = len(data)
        n = end - start
        if n <= 0:
            return
        consumed_before = self.raw_len
        self.raw_len += n
        first_nul = data.find(b"\x00", start, end)
        if first_nul != -1:
            if self._nul_at < 0:
                self._nul_at = self.offset + consumed_before + (first_nul - start)
            data = data[start:end].replace(b"\x00", b"")
            self._nuls += n - len(data)
            start, end = 0, len(data)
            if end == 0:
                return
        self._content_len += end - start
        room = self.max_line - self._head_len
        if room > 0:
            take = min(room, end - start)
            self._head.append(data[start : start + take])
            self._head_len += take
            start += take
            if start >= end:
                return
        keep = self.tail_keep
        if keep <= 0:
            return
        if end - start >= keep:
            self._tail = data[end - keep : end]
        else:
            self._tail = (self._tail + data[start:end])[-keep:]

    @property
    def empty(self) -> bool:
        return self.raw_len == 0

    def finish(self, gaps: list[Gap]) -> bytes:
        """The assembled line; appends a Gap for each loss. The builder must be reset after."""
        head = self._head
        line = head[0] if len(head) == 1 else b"".join(head)
        if self._nuls:
            gaps.append(Gap(NUL_RUN, self._nul_at, self._nuls, f"{self._nuls} NUL bytes stripped"))
        dropped = self._content_len - self._head_len
        if dropped > 0:
            tail = self._tail
            cr = tail.find(b"\r")
            kept = tail[cr:] if cr != -1 else b""
            dropped -= len(kept)
            line = utf8_trim(line) + kept
            detail = f"line of {self.raw_len} bytes cut to its first {self._head_len}"
            if len(kept) > 1:
                detail += f" plus its final {len(kept)}-byte carriage-return redraw"
            gaps.append(Gap(LONG_LINE, self.offset, dropped, detail))
        return line

    def to_state(self) -> dict[str, Any]:
        """JSON-serializable state (bytes as latin-1 text, which round-trips every byte)."""
        return {
            "offset": self.offset,
            "raw_len": self.raw_len,
            "content_len": self._content_len,
            "head": b"".join(self._head).decode("latin-1"),
            "tail": self._tail.decode("latin-1"),
            "nuls": self._nuls,
            "nul_at": self._nul_at,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], max_line: int) -> LineBuilder:
        builder = cls(max_line, int(state["offset"]))
        head = state["head"].encode("latin-1")
        builder.raw_len = int(state["raw_len"])
        builder._content_len = int(state["content_len"])
        builder._head = [head] if head else []
        builder._head_len = len(head)
        builder._tail = state["tail"].encode("latin-1")
        builder._nuls = int(state["nuls"])
        builder._nul_at = int(state["nul_at"])
        return builder
