"""A pattern compiled once by google-re2 answers every shape as Arrow's RE2 pass does.

``Shapes.mask`` matches the few shapes new to a pattern with ``line_shapes._compiled``
instead of a fresh ``pc.match_substring_regex`` (which compiles the pattern every call).
The records stay the same only if both give the same answer on every shape: checked here
on the patterns the built-in parsers really ask, over real shapes and over shapes made to
hit the Unicode classes (digits, spaces, case folding), and on every code point for the
classes whose tables could differ between the two libraries' RE2 versions.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loglake.parse import line_shapes, prefilter
from loglake.parse.builtin import builtin_parsers
from loglake.parse.line_shapes import Shapes, blind_to_digits
from loglake.parse.pipeline import probe, run_file

from .conftest import CORPUS, corpus_cases
from .test_line_shapes import patterns

re2 = line_shapes._google_re2()
if re2 is None:
    pytest.skip("google-re2 is not installed: Arrow answers every shape", allow_module_level=True)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import mixlog

#: characters where Unicode-aware and ASCII-only readings part: digits and spaces of other
#: scripts, the case-folding oddities (Kelvin sign, long s, dotted I, sharp s), a combining
#: mark, characters 2-4 bytes long in UTF-8, the controls Python counts as whitespace
ODD = (
    "\u0663\uff15\u00b2\u00bd\u2167\u00a0\u2003\u3000\u2028\u0085\x0b\x1c\x1f\t"
    "\u212a\u017f\u0130\u0131\u00df\u1e9e\u03c2\u0301\u00e9\u2022\u2588\u2502\U0001f600"
)
TEXT = st.text(alphabet=st.sampled_from(list(ODD) + list("0 aeEkKsS:=./-_|()[]{}'\"xX#*")))


def _arrow(shapes: list[str], blind: str) -> list[bool]:
    return pc.match_substring_regex(pa.array(shapes, pa.string()), blind).to_pylist()


def _compiled(shapes: list[str], blind: str) -> list[bool]:
    search = line_shapes._compiled(blind)
    assert search is not None, blind
    return [search(s.encode()) is not None for s in shapes]


@pytest.fixture(scope="module")
def asked(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """Each blind pattern the built-in parsers ask of line shapes over the corpus and a
    mixed log, with the distinct shapes of the batches it was asked about."""
    mixed = tmp_path_factory.mktemp("mix") / "mix.log"
    mixlog.write_log(mixed, 300_000, seed=3)
    got: dict[str, set[str]] = {}
    mask = Shapes.mask

    def spy(self: Shapes, blind: str) -> Any:
        got.setdefault(blind, set()).update(self.distinct.to_pylist())
        return mask(self, blind)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(prefilter, "ARROW_MIN_LINES", 1)
        mp.setattr(Shapes, "mask", spy)
        for path in [*(CORPUS / c / "stdout.log" for c in corpus_cases()), mixed]:
            info, _ = probe(str(path))
            run_file(str(path), [p for p in builtin_parsers() if p.detect(info)])
    assert len(got) >= 10
    return {blind: sorted(shapes) for blind, shapes in got.items()}


def test_the_parsers_patterns_answer_their_real_shapes_alike(asked: dict[str, list[str]]) -> None:
    for blind, shapes in asked.items():
        assert _compiled(shapes, blind) == _arrow(shapes, blind), blind


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_the_parsers_patterns_answer_odd_shapes_alike(
    asked: dict[str, list[str]], data: st.DataObject
) -> None:
    """Real shapes with odd characters spliced in, and odd text alone."""
    blind = data.draw(st.sampled_from(sorted(asked)))
    shapes = []
    for _ in range(data.draw(st.integers(1, 12))):
        base = data.draw(st.sampled_from(asked[blind]) | st.just(""))
        at = data.draw(st.integers(0, len(base)))
        shapes.append(base[:at] + data.draw(TEXT) + base[at:])
    assert _compiled(shapes, blind) == _arrow(shapes, blind), (blind, shapes)


@settings(max_examples=200, deadline=None)
@given(patterns(), st.lists(TEXT, min_size=1, max_size=12))
def test_generated_patterns_answer_odd_text_alike(pattern: str, texts: list[str]) -> None:
    blind = blind_to_digits(pattern)
    assert blind is not None
    assert _compiled(texts, blind) == _arrow(texts, blind), (blind, texts)


#: classes whose Unicode tables the two RE2 builds could disagree on, and the ASCII ones;
#: with the complement of those matching most code points (fewer matches to list in Python)
CLASSES: list[tuple[str, str | None]] = [
    (r"\pN", None), (r"\p{Nd}", None), (r"\pZ", None), (r"\p{Zs}", None), (r"\pL", None),
    (r"\p{Lu}", None), (r"\p{Ll}", None), (r"\pP", None), (r"\pS", None), (r"\d", None),
    (r"\s", None), (r"\w", None), ("[[:space:]]", None), ("[[:alpha:]]", None),
    (r"[\s\x0b\x1c-\x1f\x85\pZ]", None), ("(?i:[a-z])", None),
    (".", r"\n"), (r"\PN", r"\pN"), ("(?i:[^a-z])", "(?i:[a-z])"),
]  # fmt: skip


def test_classes_and_case_folding_agree_on_every_code_point() -> None:
    """Each code point alone, through Arrow; all of them in one text, through google-re2
    (a one-character class matches exactly the characters it accepts, wherever they are)."""
    chars = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    arr = pa.array(chars, pa.string())
    joined = "".join(chars)  # character i of the text is chars[i]
    folded: list[str] = []
    for cls, complement in CLASSES:
        hits = pc.match_substring_regex(arr, cls)
        by_arrow = set(pc.indices_nonzero(pc.invert(hits) if complement else hits).to_pylist())
        found = {m.start() for m in re2.compile(complement or cls).finditer(joined)}
        assert found == by_arrow, cls
        if cls == "(?i:[a-z])":
            folded = [chars[i] for i in sorted(by_arrow)]
    assert len(folded) > 52  # the Kelvin sign and the long s fold to ASCII letters
    for letter in "abcdefghijklmnopqrstuvwxyz":  # each letter's own fold orbit
        blind = f"(?i:{letter})"
        assert _compiled(folded, blind) == _arrow(folded, blind), letter


def test_a_pattern_rejected_by_arrow_is_never_compiled() -> None:
    assert line_shapes._compiled("a(b") is None
    shapes = Shapes.of(pa.array(["a(b 1", "x"] * 40))
    assert shapes is not None
    with pytest.raises(pa.ArrowInvalid):
        shapes.mask("a(b")


@settings(max_examples=100, deadline=None)
@given(st.lists(patterns(), min_size=1, max_size=3), st.lists(TEXT, min_size=1, max_size=30))
def test_masks_are_the_same_whichever_engine_answers_new_shapes(
    pats: list[str], texts: list[str]
) -> None:
    """The same batches asked twice, from fresh memos: Arrow passes only, then compiled
    patterns only (every shape new to a pattern at most ``COMPILED_MAX_SHAPES``)."""
    lines = texts * 2  # every shape repeats
    blinds = [b for b in map(blind_to_digits, pats) if b is not None]
    masks = []
    for limit in (-1, 1 << 20):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(line_shapes, "COMPILED_MAX_SHAPES", limit)
            mp.setattr(line_shapes, "_memo", line_shapes._Memo())
            shapes = Shapes.of(pa.array(lines, pa.string()))
            assert shapes is not None
            masks.append([shapes.mask(b).to_pylist() for b in blinds])
    assert masks[0] == masks[1]
