"""Container runtime envelopes: unwrap CRI and Docker json-file lines into the program's lines.

- CRI (Kubernetes, containerd, CRI-O): ``<RFC3339Nano> <stdout|stderr> <P|F> <message>``.
  The runtime splits long output into ``P`` (partial) parts ended by an ``F`` part.
- Docker json-file: ``{"log": "text\\n", "stream": "stdout", "time": "…Z"}``; a ``log``
  without trailing newline is a partial (Docker splits at 16 KiB).

Partials are joined per stream (stdout and stderr interleave freely), capped like any long
line (``linebuilder``). A joined line takes the offset and timestamp of its first part and
is emitted when its last part arrives, so offsets within a batch are not always ascending
when streams interleave. The decoder carries unfinished partials across batches in
``state`` (JSON-serializable), so a restart resumes mid-line; ``pending_offset`` says from
where to re-read instead, if that state is lost.
"""

from __future__ import annotations

import calendar
import json
from dataclasses import dataclass, field
from typing import Any

from loglake.tail.gaps import BAD_ENVELOPE, PARTIAL_LINE, Gap
from loglake.tail.linebuilder import LineBuilder
from loglake.tail.reader import ReadBatch

PLAIN = "plain"
CRI = "cri"
DOCKER_JSON = "docker_json"
KINDS = (PLAIN, CRI, DOCKER_JSON)

_STREAMS = {b"stdout": "stdout", b"stderr": "stderr"}
_SAMPLE = 50


@dataclass(slots=True)
class DecodedBatch:
    """The program's own lines with their source offsets, envelope times and streams."""

    lines: list[bytes]
    offsets: list[int]
    ts: list[float | None]
    streams: list[str | None]
    gaps: list[Gap] = field(default_factory=list)
    end_offset: int | None = None
    #: the reader's ``ReadBatch.controls`` when lines pass through unchanged (plain logs)
    controls: list[int] | None = None

    def __len__(self) -> int:
        return len(self.lines)


_sec_cache: dict[bytes, int] = {}


def parse_rfc3339(ts: bytes) -> float | None:
    """Epoch seconds of an RFC 3339 timestamp (``Z`` or ``±hh:mm``, up to ns digits).

    Hand-rolled because it runs once per line: the whole-second prefix is cached (lines
    share it), and the usual UTC ``…ss.fffffffffZ`` form takes a short path.
    """
    sec = _sec_cache.get(ts[:19])
    if sec is not None and ts[-1:] == b"Z":
        body = ts[19:-1]
        if not body:
            return float(sec)
        if body[:1] == b"." and body[1:].isdigit():
            return sec + float(body)
    return _parse_rfc3339_full(ts)


def _parse_rfc3339_full(ts: bytes) -> float | None:
    if len(ts) < 20 or ts[4] != 45 or ts[7] != 45 or ts[10] not in (84, 116, 32):
        return None
    base = ts[:19]
    sec = _sec_cache.get(base)
    if sec is None:
        if not (
            base[:4] + base[5:7] + base[8:10] + base[11:13] + base[14:16] + base[17:]
        ).isdigit():
            return None
        fields = (int(ts[0:4]), int(ts[5:7]), int(ts[8:10]))
        clock = (int(ts[11:13]), int(ts[14:16]), int(ts[17:19]))
        if ts[13] != 58 or ts[16] != 58:
            return None
        valid = 1 <= fields[1] <= 12 and 1 <= fields[2] <= 31
        if not (valid and clock[0] < 24 and clock[1] < 60 and clock[2] <= 60):
            return None
        sec = calendar.timegm((*fields, *clock, 0, 0, 0))
        if len(_sec_cache) > 4096:
            _sec_cache.clear()
        _sec_cache[base] = sec
    rest = ts[19:]
    if rest[-1:] in (b"Z", b"z"):
        shift, body = 0, rest[:-1]
    elif len(rest) >= 6 and rest[-6] in (43, 45) and rest[-3] == 58 and rest[-5:-3].isdigit():
        if not rest[-2:].isdigit():
            return None
        shift = int(rest[-5:-3]) * 3600 + int(rest[-2:]) * 60
        shift = shift if rest[-6] == 43 else -shift
        body = rest[:-6]
    else:
        return None
    if not body:
        return float(sec - shift)
    if body[:1] != b"." or not body[1:].isdigit():
        return None
    return sec - shift + float(body)


def _cri_fields(line: bytes) -> tuple[float, str, bool, bytes] | None:
    parts = line.split(b" ", 3)
    if len(parts) < 3:
        return None
    stream = _STREAMS.get(parts[1])
    tag = parts[2]
    if stream is None or not tag or tag[0] not in (70, 80) or (len(tag) > 1 and tag[1] != 58):
        return None
    ts = parse_rfc3339(parts[0])
    if ts is None:
        return None
    return ts, stream, tag[0] == 80, parts[3] if len(parts) == 4 else b""


def _docker_fields(line: bytes) -> tuple[float | None, str | None, bool, bytes] | None:
    if not line.startswith(b"{"):
        return None
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    log = obj.get("log")
    if not isinstance(log, str):
        return None
    stream = obj.get("stream")
    when = obj.get("time")
    ts = parse_rfc3339(when.encode("ascii", "replace")) if isinstance(when, str) else None
    partial = not log.endswith("\n")
    if not partial:
        log = log[:-1]
    return (
        ts,
        stream if isinstance(stream, str) else None,
        partial,
        log.encode("utf-8", "surrogatepass"),
    )


def detect_envelope(first_lines: list[bytes], *, share: float = 0.8) -> str:
    """``"cri"``, ``"docker_json"`` or ``"plain"`` from a file's first lines.

    An envelope is claimed only if ``share`` of the non-blank sampled lines have its exact
    shape; a JSON line counts as Docker only with a string ``log`` and a ``stream`` or
    ``time`` key, so a program that logs JSON stays plain.
    """
    sample = [line for line in first_lines[:_SAMPLE] if line.strip()]
    if not sample:
        return PLAIN
    need = max(1, int(share * len(sample) + 0.999))
    if sum(1 for line in sample if _cri_fields(line) is not None) >= need:
        return CRI
    docker = 0
    for line in sample:
        line = line.strip()
        if (b'"stream"' in line or b'"time"' in line) and _docker_fields(line) is not None:
            docker += 1
    return DOCKER_JSON if docker >= need else PLAIN


class EnvelopeDecoder:
    """Streaming decoder for one file; feed it every ReadBatch in order."""

    def __init__(
        self, kind: str, state: dict[str, Any] | None = None, *, max_line: int = 1 << 20
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown envelope {kind!r}; expected one of {KINDS}")
        self.kind = kind
        self.max_line = max_line
        self._pending: dict[str, tuple[LineBuilder, float | None]] = {}
        if state:
            for stream, item in state.get("pending", {}).items():
                builder = LineBuilder.from_state(item["line"], max_line)
                self._pending[stream] = (builder, item["ts"])

    @property
    def state(self) -> dict[str, Any]:
        """JSON-serializable; pass back as ``state=`` to resume after a restart."""
        pending = {
            stream: {"line": builder.to_state(), "ts": ts}
            for stream, (builder, ts) in self._pending.items()
        }
        return {"version": 1, "kind": self.kind, "pending": pending}

    @property
    def pending_offset(self) -> int | None:
        """Offset of the oldest unfinished partial line: re-read from here if state is lost."""
        if not self._pending:
            return None
        return min(builder.offset for builder, _ in self._pending.values())

    def feed(self, batch: ReadBatch) -> DecodedBatch:
        out = self.feed_lines(batch.lines, batch.offsets)
        if batch.gaps:
            out.gaps[:0] = batch.gaps
        out.end_offset = batch.end_offset
        if self.kind == PLAIN:
            out.controls = batch.controls
        return out

    def decode_lines(self, lines: list[bytes]) -> list[bytes]:
        """Just the unwrapped lines, for a file's head (detection, ``FileInfo.head``)."""
        return self.feed_lines(lines, list(range(len(lines)))).lines

    def feed_lines(self, lines: list[bytes], offsets: list[int]) -> DecodedBatch:
        n = len(lines)
        if self.kind == PLAIN:
            return DecodedBatch(lines, offsets, [None] * n, [None] * n)
        split = _cri_fields if self.kind == CRI else _docker_fields
        out = DecodedBatch([], [], [], [])
        o_lines, o_offs, o_ts, o_streams, gaps = (
            out.lines,
            out.offsets,
            out.ts,
            out.streams,
            out.gaps,
        )
        pending = self._pending
        for line, off in zip(lines, offsets, strict=True):
            fields = split(line)
            if fields is None:
                gaps.append(
                    Gap(BAD_ENVELOPE, off, len(line), f"not a {self.kind} line; kept as is")
                )
                o_lines.append(line)
                o_offs.append(off)
                o_ts.append(None)
                o_streams.append(None)
                continue
            ts, stream, partial, msg = fields
            key = stream or ""
            held = pending.get(key)
            if held is None and not partial:
                if msg[-1:] == b"\r":
                    msg = msg[:-1]
                o_lines.append(msg)
                o_offs.append(off)
                o_ts.append(ts)
                o_streams.append(stream)
                continue
            if held is None:
                held = (LineBuilder(self.max_line, off), ts)
                pending[key] = held
            builder = held[0]
            builder.add(msg)
            if partial:
                continue
            del pending[key]
            self._emit(out, builder, held[1], stream)
        return out

    def _emit(
        self, out: DecodedBatch, builder: LineBuilder, ts: float | None, stream: str | None
    ) -> None:
        line = builder.finish(out.gaps)
        out.lines.append(line[:-1] if line[-1:] == b"\r" else line)
        out.offsets.append(builder.offset)
        out.ts.append(ts)
        out.streams.append(stream)

    def flush(self) -> DecodedBatch:
        """Emit unfinished partials once, marked partial: the file is finalized."""
        out = DecodedBatch([], [], [], [])
        for key, (builder, ts) in sorted(self._pending.items(), key=lambda kv: kv[1][0].offset):
            size = builder.raw_len
            out.gaps.append(
                Gap(PARTIAL_LINE, builder.offset, size, f"{key or 'log'} partial never finished")
            )
            self._emit(out, builder, ts, key or None)
        self._pending.clear()
        return out


def decode(
    kind: str, lines: list[bytes], offsets: list[int], *, max_line: int = 1 << 20
) -> DecodedBatch:
    """One-shot decode of a complete list of lines (a finished file): partials are flushed."""
    decoder = EnvelopeDecoder(kind, max_line=max_line)
    out = decoder.feed_lines(lines, offsets)
    rest = decoder.flush()
    out.lines += rest.lines
    out.offsets += rest.offsets
    out.ts += rest.ts
    out.streams += rest.streams
    out.gaps += rest.gaps
    return out
