from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from loglake.tail.envelope import (
    CRI,
    DOCKER_JSON,
    PLAIN,
    EnvelopeDecoder,
    decode,
    detect_envelope,
    parse_rfc3339,
)
from loglake.tail.gaps import BAD_ENVELOPE, LONG_LINE, PARTIAL_LINE
from loglake.tail.reader import read_lines

T0 = "2026-01-01T00:00:00"


def cri(second: int, stream: str, tag: str, msg: str) -> bytes:
    return f"{T0[:-2]}{second:02d}.123456789Z {stream} {tag} {msg}\n".encode()


def docker(log: str, stream: str = "stdout", second: int = 0) -> bytes:
    rec = {"log": log, "stream": stream, "time": f"{T0[:-2]}{second:02d}.5Z"}
    return json.dumps(rec).encode() + b"\n"


def epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


# -- detection ---------------------------------------------------------------------------


def test_detect_cri() -> None:
    lines = [cri(i, "stdout", "F", f"step {i}")[:-1] for i in range(10)]
    assert detect_envelope(lines) == CRI


def test_detect_cri_tolerates_one_odd_line_but_not_a_majority() -> None:
    lines = [cri(i, "stderr", "P" if i % 2 else "F", "x")[:-1] for i in range(9)]
    assert detect_envelope([*lines, b"garbage"]) == CRI
    assert detect_envelope([b"plain log", lines[0], b"more plain", b"and more"]) == PLAIN


def test_detect_cri_needs_exact_shape() -> None:
    # a plain log with ISO timestamps and a level is not CRI
    lines = [f"{T0}.123Z INFO F started step {i}".encode() for i in range(5)]
    assert detect_envelope(lines) == PLAIN
    lines = [f"{T0}Z stdout X message".encode() for i in range(5)]
    assert detect_envelope(lines) == PLAIN


def test_detect_docker_json() -> None:
    lines = [docker(f"line {i}\n")[:-1] for i in range(5)]
    assert detect_envelope(lines) == DOCKER_JSON


def test_json_logs_without_log_key_stay_plain() -> None:
    lines = [json.dumps({"loss": 0.5, "step": i, "time": "x"}).encode() for i in range(5)]
    assert detect_envelope(lines) == PLAIN
    # a "log" key alone (an app's own JSON) is not Docker's envelope either
    lines = [json.dumps({"log": "hello", "level": "info"}).encode() for _ in range(5)]
    assert detect_envelope(lines) == PLAIN


def test_detect_plain_and_empty() -> None:
    assert detect_envelope([]) == PLAIN
    assert detect_envelope([b"", b"   "]) == PLAIN
    assert detect_envelope([b"Epoch 1/8", b"loss: 0.5"]) == PLAIN


# -- timestamps --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "iso"),
    [
        ("2026-01-01T00:00:00.123456789Z", "2026-01-01T00:00:00.123456+00:00"),
        ("2026-03-05T10:20:30Z", "2026-03-05T10:20:30+00:00"),
        ("2026-03-05T10:20:30.5+02:00", "2026-03-05T10:20:30.5+02:00"),
        ("2026-03-05T10:20:30.25-05:30", "2026-03-05T10:20:30.25-05:30"),
    ],
)
def test_parse_rfc3339(text: str, iso: str) -> None:
    assert parse_rfc3339(text.encode()) == pytest.approx(epoch(iso), abs=1e-6)


@pytest.mark.parametrize(
    "text", ["2026-01-01", "2026-13-01T00:00:00Z", "2026-01-01T00:00:00", "x" * 30]
)
def test_parse_rfc3339_rejects(text: str) -> None:
    assert parse_rfc3339(text.encode()) is None


# -- CRI ---------------------------------------------------------------------------------


def test_cri_partials_across_batches_with_interleaved_streams(tmp_path: Path) -> None:
    rows = [
        cri(1, "stdout", "F", "epoch 1"),
        cri(2, "stdout", "P", "loss=0.5 "),
        cri(2, "stderr", "P", "Warning: "),
        cri(3, "stdout", "P", "acc=0.9 "),
        cri(3, "stderr", "F", "deprecated"),
        cri(4, "stdout", "F", "lr=1e-3"),
        cri(5, "stdout", "F", ""),
        cri(6, "stderr", "F", "done\r"),
    ]
    path = tmp_path / "0.log"
    path.write_bytes(b"".join(rows))
    starts = [sum(map(len, rows[:i])) for i in range(len(rows))]

    decoder = EnvelopeDecoder(CRI)
    out_lines, out_offs, out_ts, out_streams = [], [], [], []
    for batch in read_lines(path, chunk=40):  # many batches; partials straddle them
        dec = decoder.feed(batch)
        assert dec.end_offset == batch.end_offset
        out_lines += dec.lines
        out_offs += dec.offsets
        out_ts += dec.ts
        out_streams += dec.streams
    assert out_lines == [
        b"epoch 1",
        b"Warning: deprecated",
        b"loss=0.5 acc=0.9 lr=1e-3",
        b"",
        b"done",
    ]
    assert out_streams == ["stdout", "stderr", "stdout", "stdout", "stderr"]
    # a joined line carries the offset and time of its first part
    assert out_offs == [starts[0], starts[2], starts[1], starts[6], starts[7]]
    assert out_ts[2] == pytest.approx(epoch("2026-01-01T00:00:02.123457+00:00"), abs=1e-6)
    assert decoder.pending_offset is None


def test_cri_state_survives_a_restart(tmp_path: Path) -> None:
    first = cri(1, "stdout", "F", "a") + cri(2, "stdout", "P", "hel") + cri(2, "stderr", "P", "err")
    path = tmp_path / "0.log"
    path.write_bytes(first)
    decoder = EnvelopeDecoder(CRI)
    batches = list(read_lines(path))
    dec = decoder.feed(batches[-1])
    assert dec.lines == [b"a"]
    state = json.loads(json.dumps(decoder.state))  # checkpointed as JSON
    assert decoder.pending_offset == len(cri(1, "stdout", "F", "a"))
    end = batches[-1].end_offset

    with path.open("ab") as f:
        f.write(cri(3, "stdout", "F", "lo") + cri(3, "stderr", "F", "or"))
    resumed = EnvelopeDecoder(CRI, state=state)
    lines = []
    for batch in read_lines(path, start=end):
        lines += resumed.feed(batch).lines
    assert lines == [b"hello", b"error"]


def test_cri_join_is_capped_like_a_long_line() -> None:
    parts = [cri(1, "stdout", "P", "x" * 100)[:-1] for _ in range(50)]
    parts.append(cri(1, "stdout", "F", "end")[:-1])
    out = decode(CRI, parts, list(range(len(parts))), max_line=1000)
    assert len(out.lines) == 1
    assert out.lines[0] == b"x" * 1000
    assert [g.kind for g in out.gaps] == [LONG_LINE]
    assert out.gaps[0].bytes == 50 * 100 + 3 - 1000


def test_cri_flush_emits_unfinished_partial_once() -> None:
    decoder = EnvelopeDecoder(CRI)
    out = decoder.feed_lines([cri(1, "stdout", "P", "half a line")[:-1]], [0])
    assert out.lines == []
    done = decoder.flush()
    assert done.lines == [b"half a line"]
    assert [(g.kind, g.offset) for g in done.gaps] == [(PARTIAL_LINE, 0)]
    assert decoder.flush().lines == []


def test_cri_bad_line_is_kept_and_flagged() -> None:
    lines = [cri(1, "stdout", "F", "ok")[:-1], b"not cri at all", cri(2, "stdout", "F", "ok2")[:-1]]
    out = decode(CRI, lines, [0, 10, 30])
    assert out.lines == [b"ok", b"not cri at all", b"ok2"]
    assert out.ts[1] is None
    assert out.streams[1] is None
    assert [(g.kind, g.offset) for g in out.gaps] == [(BAD_ENVELOPE, 10)]


# -- Docker json-file --------------------------------------------------------------------


def test_docker_16k_splits_are_joined_per_stream(tmp_path: Path) -> None:
    big = "".join(f"{i:05d} " for i in range(7000))  # 42 KB: Docker writes 16 KiB pieces
    pieces = [big[i : i + 16384] for i in range(0, len(big), 16384)]
    rows = [docker("step 1\n")]
    rows.append(docker(pieces[0]))
    rows.append(docker("a warning\n", stream="stderr"))
    rows += [docker(p) for p in pieces[1:-1]]
    rows.append(docker(pieces[-1] + "\n"))
    rows.append(docker("caf\u00e9 \u2588 100%\r\n", second=9))
    path = tmp_path / "c-json.log"
    path.write_bytes(b"".join(rows))
    assert detect_envelope(path.read_bytes().splitlines()[:10]) == DOCKER_JSON

    decoder = EnvelopeDecoder(DOCKER_JSON)
    lines, offs, ts, streams = [], [], [], []
    for batch in read_lines(path, chunk=5000):
        dec = decoder.feed(batch)
        lines += dec.lines
        offs += dec.offsets
        ts += dec.ts
        streams += dec.streams
    assert lines == [b"step 1", b"a warning", big.encode(), "caf\u00e9 \u2588 100%".encode()]
    assert streams == ["stdout", "stderr", "stdout", "stdout"]
    assert offs[2] == len(rows[0])
    assert ts[3] == pytest.approx(epoch("2026-01-01T00:00:09.5+00:00"))
    assert not decoder.state["pending"]


def test_docker_bad_json_line_is_kept_and_flagged() -> None:
    lines = [docker("ok\n")[:-1], b'{"log": "trunc', docker("ok2\n")[:-1]]
    out = decode(DOCKER_JSON, lines, [0, 50, 80])
    assert out.lines == [b"ok", b'{"log": "trunc', b"ok2"]
    assert [g.kind for g in out.gaps] == [BAD_ENVELOPE]


def test_plain_is_passthrough() -> None:
    lines = [b"a", b"b"]
    out = EnvelopeDecoder(PLAIN).feed_lines(lines, [0, 2])
    assert out.lines == lines
    assert out.offsets == [0, 2]
    assert out.ts == [None, None]
    assert out.streams == [None, None]


def test_unknown_kind_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown envelope"):
        EnvelopeDecoder("syslog")


def test_decode_lines_for_a_file_head() -> None:
    head = [cri(1, "stdout", "F", "Epoch 1/8")[:-1], cri(2, "stderr", "F", "warning")[:-1]]
    decoder = EnvelopeDecoder(detect_envelope(head))
    assert decoder.decode_lines(head) == [b"Epoch 1/8", b"warning"]


def test_state_is_the_second_positional_argument() -> None:
    first = EnvelopeDecoder(CRI)
    first.feed_lines([cri(1, "stdout", "P", "par")[:-1]], [0])
    second = EnvelopeDecoder(CRI, json.loads(json.dumps(first.state)))
    assert second.feed_lines([cri(1, "stdout", "F", "tial")[:-1]], [60]).lines == [b"partial"]
