"""Prefilter patterns run once per line shape: never a line lost, against RE2 itself."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given, settings
from hypothesis import strategies as st

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
