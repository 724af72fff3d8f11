"""The status parser's per-shape shortcuts answer as the plain checks they replace.

``bar_hint`` and ``is_training`` remember answers per line shape (every ASCII digit read
as 0), ``chained`` and ``_message`` test substrings before a regex, and ``TrainingLines``
reads the shared prefilter's mask as bytes instead of a set of indices. Each is checked
here against the plain reading on lines built to share shapes while differing where it
could matter: digits inside names, Unicode digits and spaces, stamps whose date is not
valid, rank prefixes, warnings.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loglake.parse import loop_lines, prefilter
from loglake.parse.base import LineBatch
from loglake.parse.builtins.generic_metrics import CANDIDATES
from loglake.parse.traceback_runs import CHAIN_RE, chained

# Pieces that make lines of one shape read differently if a shortcut were wrong.
PIECES = [
    "Epoch ",
    "epoch ",
    "step ",
    "/",
    "%|",
    "━",
    "╸",
    " ",
    "\u2003",
    "\t",
    "[",
    "-",
    " - ",
    "loss",
    "acc",
    "top1",
    "top2",
    "map50",
    "lr=",
    ": ",
    "=",
    "{'loss': ",
    "}",
    "'",
    "it/s",
    "Warning",
    "warnings.warn(",
    "  warn(",
    "[W",
    "tokens/s",
    "0",
    "7",
    "42",
    "٣",
    "0.5",
    "During handling of the above exception",
    "The above exception was the direct cause",
    "above exception",
    "Throughput: ",
    "Retry ",
    " succeeded",
    "█",
    "|",
]
PREFIXES = [
    "",
    "",
    "[rank1]: ",
    "3: ",
    "(pid=12, ip=10.0.0.1) ",
    "2026-01-01 10:00:01,000 - INFO - x - ",
    "2026-13-45 10:00:01,000 - INFO - x - ",
    "2026-02-30 25:61:01,000 - INFO - x - ",
    "[2026-01-01 10:00:01] ",
    "[2026-19-01 10:00:01] ",
    "I0101 10:00:01.000 12 x.py:3] ",
    "INFO: ",
    "2026-01-01T10:00:01Z ",
]


def _digits_varied(text: str, r: random.Random) -> str:
    """The same shape with other ASCII digits (1-9 all read as 0, and 0 stays 0 only when
    the shape says so: a varied digit is drawn from the same class)."""
    return "".join(r.choice("0123456789") if c.isascii() and c.isdigit() else c for c in text)


lines_st = st.lists(
    st.tuples(st.sampled_from(PREFIXES), st.lists(st.sampled_from(PIECES), max_size=12)),
    min_size=1,
    max_size=25,
)


def _texts(drawn: list[tuple[str, list[str]]], seed: int) -> list[str]:
    r = random.Random(seed)
    texts = []
    for prefix, parts in drawn:
        line = prefix + "".join(parts)
        texts += [line, _digits_varied(line, r), _digits_varied(line, r)]
    r.shuffle(texts)
    return texts


@settings(max_examples=200, deadline=None)
@given(drawn=lines_st, seed=st.integers(0, 2**16))
def test_bar_hint_by_shape_agrees_with_the_regex(
    drawn: list[tuple[str, list[str]]], seed: int
) -> None:
    loop_lines._BAR_SHAPES.clear()
    for text in _texts(drawn, seed):
        assert loop_lines.bar_hint(text) == (
            ("/" in text or "%|" in text) and loop_lines._BAR_HINT_RE.search(text) is not None
        ), text


@settings(max_examples=200, deadline=None)
@given(drawn=lines_st, seed=st.integers(0, 2**16))
def test_is_training_by_line_shape_agrees_with_classify(
    drawn: list[tuple[str, list[str]]], seed: int
) -> None:
    loop_lines._TRAINING_SHAPES.clear()
    loop_lines._LINE_SHAPES.clear()
    for text in _texts(drawn, seed):
        kind = loop_lines.classify(text, {})
        plain = kind is not None and kind[0] in ("loop", "metric")
        assert loop_lines.is_training(text, {}) == plain, text


def test_is_training_by_line_shape_rereads_a_line_whose_date_is_not_valid() -> None:
    loop_lines._TRAINING_SHAPES.clear()
    loop_lines._LINE_SHAPES.clear()
    valid = "2026-01-01 10:00:01,000 - INFO - x - epoch 3 step 40 loss=0.2"
    # Same shape; month 13 is no date, so the whole line is the message (which has no
    # digit-named key either): both read as training, but by their own split.
    invalid = "2026-13-01 10:00:01,000 - INFO - x - epoch 3 step 40 loss=0.2"
    assert loop_lines.is_training(valid, {})
    assert loop_lines._LINE_SHAPES  # remembered under the line's shape
    for text in (valid, invalid, "[rank0]: " + valid, "  warnings.warn(" + valid):
        kind = loop_lines.classify(text, {})
        assert loop_lines.is_training(text, {}) == (kind is not None and kind[0] == "loop")


@settings(max_examples=200, deadline=None)
@given(drawn=lines_st, seed=st.integers(0, 2**16))
def test_message_and_chained_agree_with_their_regexes(
    drawn: list[tuple[str, list[str]]], seed: int
) -> None:
    for text in _texts(drawn, seed):
        assert chained(text) == (CHAIN_RE.search(text) is not None), text
        _, body = loop_lines.split_rank_prefix(text)
        if text and not text.isspace() and loop_lines._NOISE_RE.search(body):
            assert loop_lines._message(text) is None, text
        elif text and not text.isspace():
            assert loop_lines._message(text) is not None, text


@pytest.mark.parametrize("min_lines", [1, 64, 10**6])
def test_training_lines_flags_are_the_shared_pass_and_keep_its_members(
    min_lines: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """flags() is matching(pattern) as bytes; ``in`` adds the bar hint, as before."""
    monkeypatch.setattr(prefilter, "ARROW_MIN_LINES", min_lines)
    r = random.Random(5)
    texts = _texts([(r.choice(PREFIXES), r.sample(PIECES, 6)) for _ in range(300)], 5)
    texts += ["2026-01-01 10:00:01,000 - INFO - trainer - epoch 1 step 2 loss=0.3"] * 40
    batch = LineBatch(texts, list(range(len(texts))))
    keep = loop_lines.TrainingLines(batch, CANDIDATES)
    flags = keep.flags()
    assert len(flags) == len(texts)
    assert [i for i, f in enumerate(flags) if f] == batch.matching(CANDIDATES)
    selected = set(batch.matching(CANDIDATES))
    for i, text in enumerate(texts):
        plain = i in selected or (
            ("/" in text or "%|" in text) and loop_lines._BAR_HINT_RE.search(text) is not None
        )
        assert (i in keep) == plain, text


def test_training_lines_read_every_line_for_a_pattern_re2_rejects(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(prefilter, "ARROW_MIN_LINES", 1)
    texts = ["a", "b", "c"] * 30
    batch = LineBatch(texts, list(range(len(texts))))
    keep = loop_lines.TrainingLines(batch, r"(?<=a)b")  # lookbehind: RE2 has none
    assert keep.flags() == b"\x01" * len(texts)
    assert len(batch.matching(r"(?<=a)b")) == len(texts)


RECORD_HEADS = (
    "2026-11-{d} 16:{m}:{s},196 - INFO - data.loader - ",
    "2026-{mo}-26 16:23:{s},196 - INFO - trainer - ",  # month 13-19: no date
    "[rank{r}]: 2026-11-{d} 16:{m}:{s},196 INFO ",  # the stamp after a rank prefix
    "{r}: 2026-11-{d} 16:{m}:{s} INFO ",  # srun --label
    "[2026-11-{d} 16:{m}:{s}] INFO ",
    "[INFO|trainer.py:{r}] 2026-11-{d} 16:{m}:{s},196 >> ",  # the stamp after the level
    "I11{d} 16:{m}:{s}.123456 12345 train.py:12] ",  # glog: no year
    "11/{d}/2026 16:{m}:{s} - INFO - ",
    "2026-11-{d}T16:{m}:{s}Z ",
    "٣ 2026-11-{d} 16:{m}:{s} ",
    "",
    "  ",
    "KeyError: 'x' at 2026-11-{d} 16:{m}:{s}",
)


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_record_starts_agrees_with_leading_timestamp(seed: int) -> None:
    """The line after an exception's message is a new record when a stamp starts it: by the
    line shape's split (filled from whichever line of a shape comes first), as
    ``leading_timestamp`` says, for days 32, seconds 60-99, rank prefixes, level-first and
    glog stamps."""
    from loglake.parse import timestamps
    from loglake.parse.traceback_runs import record_starts

    r = random.Random(seed)
    timestamps._SPLITS.clear()
    for _ in range(200):
        head = r.choice(RECORD_HEADS).format(
            d=f"{r.choice((1, 26, 31, 32, 39)):02d}", m=f"{r.randint(0, 59):02d}",
            s=f"{r.choice((0, 7, 59, 60, 61, 99)):02d}", mo=f"1{r.randint(0, 9)}",
            r=r.randint(0, 9),
        )  # fmt: skip
        line = head + r.choice(("Retry 4/5 succeeded", "", "loss 0.5", "x"))
        assert record_starts(line) == (timestamps.leading_timestamp(line)[0] is not None), line
