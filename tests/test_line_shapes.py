"""Prefilter patterns run once per line shape: never a line lost, against RE2 itself."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loglake.parse import line_shapes
from loglake.parse.base import LineBatch
from loglake.parse.line_shapes import ZERO_DIGITS, Shapes, blind_to_digits

ATOMS = [
    "a", "Z", "5", "0", "1", " ", ".", r"\d", r"\D", r"\pN", r"\PN", r"\s", r"\w", r"\W",
    r"\x{35}", r"\x{30}", r"\x35", "[0-9]", "[1-9]", "[3-7]", "[^0]", "[^5]", "[^0-9]",
    "[a-z5]", "[05]", r"[\d]", r"[^\d]", "[]5]", "[-5]", "[5-]", "[[:digit:]]", r"\b",
    "^", "$", r"\.", "(?i:e)", "(?P<n1>x)",
]  # fmt: skip


@st.composite
def patterns(draw: st.DrawFn) -> str:
    def piece() -> str:
        atom = draw(st.sampled_from(ATOMS))
        return atom + draw(st.sampled_from(["", "", "+", "*", "?", "{2}", "{1,3}"]))

    alts = [
        "".join(piece() for _ in range(draw(st.integers(1, 4))))
        for _ in range(draw(st.integers(1, 3)))
    ]
    body = "|".join(alts)
    return draw(st.sampled_from([body, f"(?:{body})x?", f"a(?:{body})"]))


LINES = st.lists(st.text(alphabet="0123456789aZx .-]", max_size=12), min_size=1, max_size=40)


def _shape(line: str) -> str:
    return line.encode().translate(ZERO_DIGITS).decode()


@settings(max_examples=400, deadline=None)
@given(patterns(), LINES)
def test_a_blinded_pattern_matches_the_shape_of_every_line_the_pattern_matches(
    pattern: str, lines: list[str]
) -> None:
    blind = blind_to_digits(pattern)
    assert blind is not None
    exact = pc.match_substring_regex(pa.array(lines), pattern).to_pylist()
    shaped = pc.match_substring_regex(pa.array([_shape(x) for x in lines]), blind).to_pylist()
    for line, hit, shape_hit in zip(lines, exact, shaped, strict=True):
        assert shape_hit or not hit, (pattern, blind, line)


def test_digit_blind_patterns_are_kept_as_written_and_others_widened() -> None:
    for same in [r"loss\pN+", "[0-9]+", r"\d{2,4}", "[^5]", r"epoch\x{20}\d", "x{3}", "[A-Z0]"]:
        assert blind_to_digits(same) == same
    assert blind_to_digits("md5") == "md(?:5|0)"
    assert blind_to_digits("[1-9]") == "(?:[1-9]|0)"
    assert blind_to_digits("[^0]") == "(?:[^0]|0)"
    assert blind_to_digits(r"\x{35}") == r"(?:\x{35}|0)"
    assert blind_to_digits(r"\Qa5\E") is None  # not read: runs over the lines as written


def test_a_batch_selects_every_line_the_pattern_matches_from_its_shapes() -> None:
    lines = [
        f"2026-01-0{d % 9 + 1} step {n} loss={n / 7:.4f} md5 f1={d}"
        for n, d in zip(range(500), range(7, 507), strict=True)
    ] + ["Traceback (most recent call last):"]
    batch = LineBatch(lines, list(range(len(lines))))
    for pattern in [r"step\x{20}\pN+", "f1=[1-3]", "md5", "loss=0\\.1", "Traceback", "9"]:
        exact = pc.indices_nonzero(pc.match_substring_regex(pa.array(lines), pattern))
        picked = batch.matching(pattern)
        assert set(exact.to_pylist()) <= set(picked), pattern
    assert batch.matching("Traceback") == [500]
    assert batch.matching(r"step\x{20}\pN+") == list(range(500))


def test_lines_that_do_not_repeat_are_matched_one_by_one() -> None:
    lines = [f"line {'x' * n}" for n in range(200)]  # no two share a shape
    assert Shapes.of(pa.array(lines)) is None
    batch = LineBatch(lines, list(range(len(lines))))
    assert batch.matching("x{150}") == list(range(150, 200))


def _fresh_mask(shapes: Shapes, blind: str) -> list[bool]:
    return pc.take(pc.match_substring_regex(shapes.distinct, blind), shapes.index).to_pylist()


REPEATING = st.lists(st.sampled_from(["a1", "a22", "Z 5.0", "x-9]", "0", "", "aZx 13"]), min_size=2)


@settings(max_examples=200, deadline=None)
@given(st.lists(patterns(), min_size=1, max_size=4), st.lists(REPEATING, min_size=1, max_size=4))
def test_answers_remembered_across_batches_are_the_answers(
    pats: list[str], batches: list[list[str]]
) -> None:
    """Batches sharing some shapes, patterns asked in turn: a mask built from what earlier
    batches' passes said of a shape equals a fresh pass over the batch's shapes."""
    blinds = [b for b in map(blind_to_digits, pats) if b is not None]
    for lines in batches:
        shapes = Shapes.of(pa.array(lines * 2))  # every shape repeats
        assert shapes is not None
        for blind in blinds:
            assert shapes.mask(blind).to_pylist() == _fresh_mask(shapes, blind), blind


def test_the_memo_starts_over_when_full(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(line_shapes, "MEMO_SHAPES", 3)
    monkeypatch.setattr(line_shapes, "_memo", line_shapes._Memo())
    first = Shapes.of(pa.array(["a1", "b2", "c3", "d4"] * 2))
    second = Shapes.of(pa.array(["a1", "e5"] * 2))
    assert first is not None and second is not None
    assert first.mask("[a-c]").to_pylist() == [True] * 3 + [False] + [True] * 3 + [False]
    memo = line_shapes._memo
    assert len(memo.ids) == 4  # a full memo is kept until the next batch asks
    assert second.mask("[a-c]").to_pylist() == [True, False] * 2
    assert line_shapes._memo is not memo and len(line_shapes._memo.ids) == 2
    # a batch numbered against the old memo is numbered again, and still right
    assert first.mask("[d]").to_pylist() == [False] * 3 + [True] + [False] * 3 + [True]
    assert first.mask("[a-c]").to_pylist() == [True] * 3 + [False] + [True] * 3 + [False]


def test_the_memo_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Many shape bytes or many patterns start the memo over too (a daemon runs for days)."""
    monkeypatch.setattr(line_shapes, "MEMO_BYTES", 10)
    monkeypatch.setattr(line_shapes, "MEMO_PATTERNS", 2)
    monkeypatch.setattr(line_shapes, "_memo", line_shapes._Memo())
    shapes = Shapes.of(pa.array(["a long line 1", "b2"] * 2))
    assert shapes is not None
    for k, pattern in enumerate(["a", "b", "c", "line", "2"]):
        want = _fresh_mask(shapes, pattern)
        assert shapes.mask(pattern).to_pylist() == want
        memo = line_shapes._memo
        assert memo.size <= 10 + len("a long line 0") + 2 and len(memo.answers) <= 2, k
