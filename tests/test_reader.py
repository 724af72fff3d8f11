from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from loglake.errors import LoglakeError, SourceError
from loglake.tail.gaps import LONG_LINE, NUL_RUN, PARTIAL_LINE, TRUNCATED_STREAM
from loglake.tail.reader import ReadBatch, read_lines


def collect(batches: list[ReadBatch] | object) -> tuple[list[bytes], list[int], int | None, list]:
    lines: list[bytes] = []
    offsets: list[int] = []
    gaps = []
    end = None
    for batch in batches:  # type: ignore[attr-defined]
        assert len(batch.lines) == len(batch.offsets)
        lines += batch.lines
        offsets += batch.offsets
        gaps += batch.gaps
        end = batch.end_offset
    return lines, offsets, end, gaps


def test_lines_offsets_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(b"epoch 1\r\nloss=0.5\n\n  indented\nlast\n")
    lines, offsets, end, gaps = collect(read_lines(path, chunk=3))
    assert lines == [b"epoch 1", b"loss=0.5", b"", b"  indented", b"last"]
    assert offsets == [0, 9, 18, 19, 30]
    assert end == path.stat().st_size
    assert gaps == []


def test_empty_file_yields_nothing(tmp_path: Path) -> None:
    path = tmp_path / "empty.log"
    path.write_bytes(b"")
    assert list(read_lines(path)) == []
    assert list(read_lines(path, final=True)) == []


def test_partial_last_line_held_then_emitted_once_when_final(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(b"one\ntwo\nthr")
    lines, _, end, _ = collect(read_lines(path))
    assert lines == [b"one", b"two"]
    assert end == 8

    # the writer finishes the line: resuming from end_offset gives it whole
    with path.open("ab") as f:
        f.write(b"ee\nfou")
    lines, offsets, end, _ = collect(read_lines(path, start=8))
    assert (lines, offsets, end) == ([b"three"], [8], 14)

    # the job ends without a newline: the partial is emitted once, flagged
    lines, offsets, end, gaps = collect(read_lines(path, start=14, final=True))
    assert (lines, offsets, end) == ([b"fou"], [14], 17)
    assert [(g.kind, g.offset, g.bytes) for g in gaps] == [(PARTIAL_LINE, 14, 3)]
    assert list(read_lines(path, start=end, final=True)) == []


def test_resume_mid_file_gives_same_lines(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    body = b"".join(b"line %d\n" % i for i in range(1000))
    path.write_bytes(body)
    whole, whole_offs, _, _ = collect(read_lines(path, chunk=100))
    start = whole_offs[500]
    rest, rest_offs, _, _ = collect(read_lines(path, start=start, chunk=77))
    assert rest == whole[500:]
    assert rest_offs == whole_offs[500:]


def test_long_line_keeps_head_and_records_gap(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(b"short\n" + b"x" * 5000 + b"\nafter\n")
    lines, offsets, _, gaps = collect(read_lines(path, max_line=1000, chunk=256))
    assert lines == [b"short", b"x" * 1000, b"after"]
    assert offsets == [0, 6, 5007]
    assert [(g.kind, g.offset, g.bytes) for g in gaps] == [(LONG_LINE, 6, 4000)]


def test_long_line_within_one_chunk(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(b"a\n" + b"y" * 300 + b"\nb\n")
    lines, _, _, gaps = collect(read_lines(path, max_line=100))
    assert lines == [b"a", b"y" * 100, b"b"]
    assert gaps[0].kind == LONG_LINE
    assert gaps[0].bytes == 200


def test_long_carriage_return_redraw_keeps_its_final_state(tmp_path: Path) -> None:
    """A tqdm bar redrawn for a whole epoch without newline must still end at 100%."""
    bars = b"".join(
        b"\rEpoch 3: %3d%%|bar| %d/5000 [loss=0.%04d]" % (i // 50, i, i) for i in range(5001)
    )
    path = tmp_path / "bar.log"
    path.write_bytes(bars + b"\nnext\n")
    lines, _, _, gaps = collect(read_lines(path, max_line=10_000, chunk=4096))
    assert len(lines) == 2
    assert lines[1] == b"next"
    assert lines[0].startswith(b"\rEpoch 3:   0%")
    assert lines[0].endswith(b"\rEpoch 3: 100%|bar| 5000/5000 [loss=0.5000]")
    assert len(lines[0]) < 10_000 + 64 * 1024
    assert gaps[0].kind == LONG_LINE
    assert "redraw" in gaps[0].detail


def test_fifty_megabyte_line_uses_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "huge.log"
    with path.open("wb") as f:
        f.write(b"before\n")
        block = b"z" * (1 << 20)
        for _ in range(50):
            f.write(block)
        f.write(b"\nafter\n")
    script = textwrap.dedent(
        f"""
        import json, tracemalloc
        from loglake.tail.reader import read_lines
        tracemalloc.start()
        lines, gaps = [], []
        for batch in read_lines({str(path)!r}, chunk=1 << 20, max_line=1 << 20):
            lines += [(len(x), x[:1]) for x in batch.lines]
            gaps += [(g.kind, g.bytes) for g in batch.gaps]
        peak = tracemalloc.get_traced_memory()[1]
        print(json.dumps({{"peak": peak, "lines": lines, "gaps": gaps}}, default=repr))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, check=True, text=True
    )
    result = json.loads(proc.stdout)
    assert [n for n, _ in result["lines"]] == [6, 1 << 20, 5]
    assert result["gaps"] == [[LONG_LINE, 49 << 20]]
    # one chunk, its split, the kept head: a few MiB, never the 50 MiB line
    assert result["peak"] < 8 << 20, result["peak"]


def test_nul_runs_from_copytruncate_are_stripped(tmp_path: Path) -> None:
    """copytruncate: the writer keeps its offset after the file is truncated -> a hole."""
    path = tmp_path / "a.log"
    with path.open("wb") as writer:
        writer.write(b"old line 1\nold line 2\n")
        writer.flush()
        os.truncate(path, 0)  # logrotate's copytruncate
        writer.write(b"step 7 loss=0.25\nstep 8 loss=0.20\n")  # lands at the old offset
    raw = path.read_bytes()
    assert raw.startswith(b"\x00" * 22)
    lines, offsets, _, gaps = collect(read_lines(path, chunk=8))
    assert lines == [b"step 7 loss=0.25", b"step 8 loss=0.20"]
    assert offsets == [0, 39]
    assert [(g.kind, g.offset, g.bytes) for g in gaps] == [(NUL_RUN, 0, 22)]


def test_nul_inside_a_line_in_one_chunk(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(b"ok\nab\x00\x00\x00cd\r\nend\n")
    lines, _, _, gaps = collect(read_lines(path))
    assert lines == [b"ok", b"abcd", b"end"]
    assert [(g.kind, g.offset, g.bytes) for g in gaps] == [(NUL_RUN, 5, 3)]


def test_invalid_utf8_passes_through_as_bytes(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(b"caf\xe9 loss=0.1\n\xff\xfe\n")
    lines, _, _, _ = collect(read_lines(path))
    assert lines == [b"caf\xe9 loss=0.1", b"\xff\xfe"]


def test_gzip_detected_by_magic_with_decompressed_offsets(tmp_path: Path) -> None:
    path = tmp_path / "rotated.log"  # no .gz suffix: the magic decides
    path.write_bytes(gzip.compress(b"one\ntwo\nthr") + gzip.compress(b"ee\nfour"))
    lines, offsets, end, gaps = collect(read_lines(path, chunk=2))
    # a cleanly ended stream is finished: its unterminated last line is emitted
    assert lines == [b"one", b"two", b"three", b"four"]
    assert offsets == [0, 4, 8, 14]
    assert end == 18
    assert [g.kind for g in gaps] == [PARTIAL_LINE]
    lines, offsets, _, _ = collect(read_lines(path, start=8))
    assert (lines, offsets) == ([b"three", b"four"], [8, 14])


def test_gzip_bomb_is_decompressed_in_bounded_pieces(tmp_path: Path) -> None:
    path = tmp_path / "a.gz"
    path.write_bytes(gzip.compress(b"0123456789\n" * 200_000))
    sizes = [sum(map(len, b.lines)) + len(b.lines) for b in read_lines(path, chunk=64 << 10)]
    assert max(sizes) <= (64 << 10) + 11  # one chunk plus the line carried into it
    assert sum(sizes) == 11 * 200_000


def test_truncated_gzip_keeps_what_was_decoded(tmp_path: Path) -> None:
    path = tmp_path / "cut.gz"
    full = gzip.compress(b"".join(b"metric %d\n" % i for i in range(5000)))
    path.write_bytes(full[: len(full) // 2])
    lines, _, _, gaps = collect(read_lines(path))
    assert lines[:3] == [b"metric 0", b"metric 1", b"metric 2"]
    assert 0 < len(lines) < 5000
    assert [g.kind for g in gaps] == [TRUNCATED_STREAM]


def test_corrupt_gzip_is_a_gap_not_an_exception(tmp_path: Path) -> None:
    path = tmp_path / "bad.gz"
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    good = comp.compress(b"a\nb\n" * 10) + comp.flush()
    path.write_bytes(good[:20] + b"\xff" * 40)
    batches = list(read_lines(path))
    assert batches[-1].gaps
    assert batches[-1].gaps[-1].kind == "corrupt_stream"


def test_zstd_without_module_names_the_fix(tmp_path: Path) -> None:
    try:
        import zstandard  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("zstandard is installed; the missing-module path cannot be hit")
    path = tmp_path / "a.log.zst"
    path.write_bytes(b"\x28\xb5\x2f\xfd" + b"\x00" * 20)
    with pytest.raises(SourceError) as info:
        list(read_lines(path))
    assert isinstance(info.value, LoglakeError)
    assert str(path) in info.value.message
    assert info.value.fix == "pip install zstandard"


def test_zstd_when_available(tmp_path: Path) -> None:
    zstandard = pytest.importorskip("zstandard")
    path = tmp_path / "a.zst"
    path.write_bytes(zstandard.ZstdCompressor().compress(b"alpha\nbeta\ngam"))
    lines, offsets, _, gaps = collect(read_lines(path, chunk=3))
    assert (lines, offsets) == ([b"alpha", b"beta", b"gam"], [0, 6, 11])
    assert [g.kind for g in gaps] == [PARTIAL_LINE]


def test_file_object_source() -> None:
    buf = io.BytesIO(b"a\nbb\nccc\n")
    lines, offsets, _, _ = collect(read_lines(buf, start=2))
    assert (lines, offsets) == ([b"bb", b"ccc"], [2, 5])


def test_missing_file_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="cannot read"):
        list(read_lines(tmp_path / "nope.log"))


def _looks_compressed(data: bytes) -> bool:
    """Random bytes may start with gzip/zstd magic (or a prefix of it, in a growing file)."""
    return data[:1] in (b"\x1f", b"\x28")


_line = st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"").replace(b"\x00", b""))


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    lines=st.lists(_line, max_size=30),
    tail=_line,
    chunk=st.integers(min_value=1, max_value=64),
    final=st.booleans(),
    cap=st.sampled_from([1 << 18, 1, 2, 3, 5]),
)
def test_property_any_lines_any_chunk(
    tmp_path: Path, lines: list[bytes], tail: bytes, chunk: int, final: bool, cap: int
) -> None:
    """Whatever was written and however it is chunked (and batches capped at ``cap`` lines):
    exactly the lines, right offsets."""
    from loglake.tail import reader

    saved, reader.BATCH_LINES = reader.BATCH_LINES, cap
    try:
        _check_any_lines(tmp_path, lines, tail, chunk, final)
    finally:
        reader.BATCH_LINES = saved


def _check_any_lines(
    tmp_path: Path, lines: list[bytes], tail: bytes, chunk: int, final: bool
) -> None:
    path = tmp_path / "prop.log"
    data = b"".join(line + b"\n" for line in lines) + tail
    assume(not _looks_compressed(data))
    path.write_bytes(data)
    expected_offsets = []
    pos = 0
    for line in lines:
        expected_offsets.append(pos)
        pos += len(line) + 1
    expected = [line[:-1] if line.endswith(b"\r") else line for line in lines]
    if final and tail:
        expected.append(tail[:-1] if tail.endswith(b"\r") else tail)
        expected_offsets.append(pos)
    got, offsets, end, _ = collect(read_lines(path, chunk=chunk, final=final))
    assert got == expected
    assert offsets == expected_offsets
    if got:
        assert end == (len(data) if final and tail else pos)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.binary(max_size=300).map(lambda b: b.replace(b"\x00", b"")),
    cut=st.integers(min_value=0, max_value=300),
    chunk=st.integers(min_value=1, max_value=50),
)
def test_property_resume_from_end_offset_while_file_grows(
    tmp_path: Path, data: bytes, cut: int, chunk: int
) -> None:
    """Reading a growing file in two sittings, resuming at end_offset, equals one read."""
    assume(not _looks_compressed(data))
    path = tmp_path / "grow.log"
    path.write_bytes(data[:cut])
    first, first_offs, end, _ = collect(read_lines(path, chunk=chunk))
    with path.open("ab") as f:
        f.write(data[cut:])
    second, second_offs, _, _ = collect(read_lines(path, start=end or 0, chunk=chunk))
    whole, whole_offs, _, _ = collect(read_lines(path, chunk=chunk))
    assert first + second == whole
    assert first_offs + second_offs == whole_offs


def test_crlf_after_many_redraw_returns_is_still_stripped(tmp_path: Path) -> None:
    # tqdm's bare ``\r`` redraws come first in the chunk; the one CRLF line is far after them.
    bars = b"".join(b"\rstep %d/100" % i for i in range(100)) + b"\n"
    body = bars * 50 + b"done\r\n" + b"tail\n"
    path = tmp_path / "bars.log"
    path.write_bytes(body)
    lines, _, _, _ = collect(read_lines(path))
    assert lines[-2:] == [b"done", b"tail"]
    assert lines[:50] == [bars[:-1]] * 50  # a bare \r inside a line is kept for cleanup


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(st.sampled_from([b"a", b"\r", b"\n", b"\r\n", b"xy"]), max_size=40), st.integers(1, 9)
)
def test_crlf_stripping_matches_a_line_by_line_reading(
    tmp_path: Path, parts: list[bytes], chunk: int
) -> None:
    data = b"".join(parts) + b"\n"
    path = tmp_path / "crlf.log"
    path.write_bytes(data)
    lines, _, _, _ = collect(read_lines(path, chunk=chunk))
    assert lines == [line.removesuffix(b"\r") for line in data.split(b"\n")[:-1]]


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.sampled_from(
            [b"a", b"bc", b"\r", b"\n", b"\r\n", b"\x1b[1m", b"\x08", b"\x00", b"\xe2\x94\x81"]
        ),
        max_size=60,
    ),
    st.integers(1, 12),
    st.integers(4, 9),
)
def test_control_lines_list_every_line_cleanup_must_read(
    tmp_path: Path, parts: list[bytes], chunk: int, max_line: int
) -> None:
    from loglake.tail.cleanup import clean_lines

    path = tmp_path / "ctl.log"
    path.write_bytes(b"".join(parts))
    for rb in read_lines(path, chunk=chunk, max_line=max_line, final=True):
        dirty = [i for i, line in enumerate(rb.lines) if any(c in line for c in b"\x1b\r\x08")]
        if rb.controls is not None:
            assert set(dirty) <= set(rb.controls)
            assert rb.controls == sorted(rb.controls)
        assert clean_lines(rb.lines, rb.controls) == clean_lines(rb.lines)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.sampled_from([b"a", b"bc", b"\r", b"\n", b"\x1b[1m", b"\x08", b"\xe2\x94\x81", b"\xff"]),
        max_size=80,
    ),
    st.integers(0, 1000),
    st.booleans(),
    st.integers(1, 16),
)
def test_control_lines_searched_by_block_match_a_line_by_line_search(
    parts: list[bytes], base: int, joined: bool, block: int
) -> None:
    """The block-at-a-time search finds exactly the lines a search of each line finds."""
    from loglake.tail.reader import _control_lines

    data = b"".join(parts) + b"\n"
    last = data.rfind(b"\n")
    pieces = data[:last].split(b"\n")
    offsets = []
    pos = base
    for piece in pieces:
        offsets.append(pos)
        pos += len(piece) + 1
    if joined:
        offsets[0] = max(0, base - 7)  # a first line begun in an earlier chunk
    want = {k for k, piece in enumerate(pieces) if any(c in piece for c in b"\x1b\r\x08")}
    returns = [k for k, piece in enumerate(pieces) if b"\r" in piece]
    got = _control_lines(data, last, offsets, base, joined, block)
    assert got == (sorted(want | ({0} if joined else set())), returns)
    assert got == _control_lines(data, last, offsets, base, joined)  # one block


def test_short_lines_make_batches_of_bounded_line_count(tmp_path: Path) -> None:
    """16 MB of 4-byte lines would be 4 M lines in one batch (~1 GB of Python objects): the
    reads are sized from the lines per byte so far, and nothing is lost or reordered."""
    from loglake.tail import reader

    body = b"".join(b"%03d\n" % (i % 1000) for i in range(3 * reader.BATCH_LINES))
    long_head = b"x" * 5000 + b"\n"  # a long line first: the estimate must adapt downwards
    p = tmp_path / "short.log"
    p.write_bytes(long_head * 300 + body)
    batches = list(read_lines(p))
    assert len(batches) > 3
    assert max(len(b.lines) for b in batches) <= reader.BATCH_LINES
    lines = [line for b in batches for line in b.lines]
    assert lines == (long_head * 300 + body).split(b"\n")[:-1]
    offsets = [o for b in batches for o in b.offsets]
    assert offsets[301] == len(long_head) * 300 + 4
