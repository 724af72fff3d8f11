"""The generic parser's per-shape walk reads a batch exactly as the line-by-line reading does.

``loglake.parse.shape_walk`` reads the lines of a shape read at fixed places as Arrow columns
(``shape_columns``), the rest one at a time, and gives the columns their step/epoch from a
forward fill of the running context. ``GenericMetricsParser(recipes=False)`` reads every line
afresh. Both run here with every built-in parser alongside (claimed lines only set the
context) over generated logs: templates repeated with their digits redrawn (so shapes repeat
and valid and invalid dates share a shape), tracebacks, tables, dicts with leading zeros and
quoted numbers, normalized padding, huge numbers, ``nan``/``inf``/``+1``/``1e5``/``1_000``,
non-ASCII text before numbers, and batches that cut a traceback or table in two. Groups are
read as columns from two lines on (``MIN_GROUP``), so small examples take that path too, and
shapes of four lines or more alone (``FAMILY_LINES``), so both ways of reading a group are met.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Iterator
from functools import cache
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loglake.parse import shape_columns, shape_walk
from loglake.parse.base import LineBatch
from loglake.parse.builtin import builtin_parsers
from loglake.parse.builtins import generic_metrics
from loglake.parse.builtins.generic_metrics import GenericMetricsParser
from loglake.parse.dict_shapes import dict_shape, read_dict_shape
from loglake.parse.line_recipes import is_dict_message, recipe_of
from loglake.parse.pipeline import FileParsers, emitted_records
from loglake.parse.records import Emitter
from loglake.parse.shape_families import family_of
from loglake.parse.shape_groups import SKIP, SLOW, DictFixed, Fixed, reading_of, stamps_of
from loglake.parse.timestamps import split_log_prefix

FAST_LINES = [0]  # lines read as columns, to show the examples take that path


@pytest.fixture(autouse=True)
def _small_groups(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(shape_columns, "MIN_GROUP", 2)
    monkeypatch.setattr(shape_columns, "FAMILY_LINES", 4)  # larger shapes are read alone
    read = shape_walk.shape_columns

    def counted(*args: Any) -> Any:
        got = read(*args)
        FAST_LINES[0] += pc.sum(got.fast).as_py() or 0
        return got

    monkeypatch.setattr(shape_walk, "shape_columns", counted)
    yield


@cache
def _parsers(recipes: bool) -> list[Any]:
    return [
        GenericMetricsParser(recipes=recipes) if p.name == "generic" else p
        for p in builtin_parsers()
    ]


def _records(
    lines: list[str], recipes: bool, batch: int, ts: list[float | None] | None = None
) -> list[dict[str, Any]]:
    fp = FileParsers(_parsers(recipes))
    out = Emitter()
    for start in range(0, len(lines), batch):
        part = lines[start : start + batch]
        offsets = [(start + j) * 100 for j in range(len(part))]
        fp.feed(LineBatch(part, offsets, ts[start : start + batch] if ts else None), out)
    return [
        {k: ("nan" if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
        for r in emitted_records(out)
    ]


def _same(
    lines: list[str], batch: int, ts: list[float | None] | None = None
) -> list[dict[str, Any]]:
    fast = _records(lines, True, batch, ts)
    assert fast == _records(lines, False, batch, ts)
    return fast


_DIGITS = "0123456789"

TEMPLATES = [
    "2026-11-26 16:22:40,908 - INFO - trainer - epoch 12 step 1200 loss=1.8799 lr=8.350e-04",
    "2026-11-26T16:22:40.908+05:30 INFO epoch 3 step 120 loss=0.31 acc=91.5",
    "[2026-11-26 16:22:40,908] step: 1.0 top1: 90.5 val_loss: 0.25",
    "[11/26 16:22:40 d2.engine]: iter: 19 loss: 0.5",
    "11/26/2026 16:22:40 - INFO - __main__ - step 3 loss=0.5",
    "I1126 16:22:40.908000 123 train.py:12] step 40 loss 0.5",
    "epoch 1 step 64 loss=0.5 lr=1e-3",
    "Iteration 10526, loss = 1.46846094",
    "step 1.5 loss 0.2",
    "Epoch 3/10 | train loss 0.5 | val acc 91.0%",
    "[12]\ttrain-logloss:0.5\tvalid-auc:0.7",
    "[120]\tvalid_0's auc: 0.71\tvalid_0's binary_logloss: 0.3",
    "Throughput: 29736 tokens/s over the last 52 steps",
    "45%|████▌     | 45/100 [00:10<00:12, loss=0.31]",
    "epoch 2 (avg 0.5) loss = 0.25 ( 3 / 10 )",
    "métrique époque 3 loss=0.5 données 7",
    "hyper: lr=0.0003 batch=64 step 64",
    "epoch=1 batch=12 loss=0.3",
    '{"step": 24441, "epoch": 119, "loss": 0.528219, "tokens_seen": 100110336}',
    "{'loss': '2.014', 'grad_norm': '1.781', 'learning_rate': '0.0004569', 'epoch': '11.17'}",
    "{'loss': 1.517, 'grad_norm': 2.431, 'epoch': 10.51}",
    '{"lr": 0.1, "seed": 3}',
    '{"step": 3, "epoch": 1, "loss": 0.5, "big": 10000000000000000000000}',
    'eval: {"eval_loss": 0.2, "step": 30}',
    "step 99999999999999999999 loss 0.5",
    "step: 1e5 loss: 0.5",
    "loss=nan acc=inf step=+1",
    "loss=1_000 step 3",
    "WARNING: loss=0.5 is high",
    "RuntimeError: loss=0.7 broke",
    "  warnings.warn(",
]
BLOCKS = [
    [
        "Traceback (most recent call last):",
        '  File "train.py", line 10, in <module>',
        "    loss = step(3)",
        "",
        "ValueError: bad step 3",
    ],
    [
        "epoch  train_loss  valid_loss  accuracy  time",
        "0  0.52  0.48  0.81  00:12",
        "1  0.41  0.39",
    ],
    ['  File "x.py", line 3, in f', "    step 5 loss=0.2", "KeyError: 1"],
]


def _redraw(line: str, rng: random.Random) -> str:
    """``line`` with each digit drawn anew: the same shape."""
    return "".join(rng.choice(_DIGITS) if c in _DIGITS else c for c in line)


def _rewidth(line: str, rng: random.Random) -> str:
    """``line`` with some runs of digits drawn anew at another width: the same family."""

    def run(m: re.Match[str]) -> str:
        if rng.random() < 0.5:
            return m.group()
        return "".join(rng.choice(_DIGITS) for _ in range(rng.randint(1, len(m.group()) + 2)))

    return re.sub(r"[0-9]+", run, line)


_DATES = [  # where a stamp's month and day are, by layout
    re.compile(r"^(?P<y>\[?[0-9]{4}[-/])(?P<M>[0-9]{2})(?P<s>[-/])(?P<D>[0-9]{2})"),
    re.compile(r"^(?P<y>I)(?P<M>[0-9]{2})(?P<s>)(?P<D>[0-9]{2})(?= )"),
    re.compile(r"^(?P<y>\[?)(?P<M>[0-9]{2})(?P<s>/)(?P<D>[0-9]{2})"),
]
_TIME = re.compile(r"(?P<h>[0-9]{2}):(?P<m>[0-9]{2}):(?P<s>[0-9]{2})")


def _valid_stamp(line: str, rng: random.Random) -> str:
    """``line`` with a valid date and time where its template has a stamp (a redraw rarely
    is one)."""
    for rx in _DATES:
        m = rx.match(line)
        if m:
            date = f"{m['y']}{rng.randint(1, 12):02d}{m['s']}{rng.randint(1, 28):02d}"
            line = date + line[m.end() :]
            clock = f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 60):02d}"
            return _TIME.sub(clock, line, count=1)
    return line


@st.composite
def _log(draw: st.DrawFn) -> list[str]:
    rng = random.Random(draw(st.integers(0, 2**32)))
    templates = draw(st.lists(st.sampled_from(TEMPLATES), min_size=1, max_size=8))
    lines: list[str] = []
    for _ in range(draw(st.integers(40, 200))):
        if rng.random() < 0.05:
            lines.extend(_redraw(x, rng) for x in rng.choice(BLOCKS))
            continue
        line = _redraw(rng.choice(templates), rng)
        if rng.random() < 0.5:
            line = _rewidth(line, rng)
        lines.append(_valid_stamp(line, rng) if rng.random() < 0.8 else line)
    return lines


@settings(max_examples=60, deadline=None)
@given(lines=_log(), batch=st.sampled_from([64, 97, 10_000]))
def test_generated_logs_read_the_same_by_shape_and_line_by_line(
    lines: list[str], batch: int
) -> None:
    _same(lines, batch)


def test_generated_logs_read_the_same_by_shape_families(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every group too small alone: shapes are read together by family, or line by line."""
    monkeypatch.setattr(shape_columns, "MIN_GROUP", 10_000)
    FAST_LINES[0] = 0
    test_generated_logs_read_the_same_by_shape_and_line_by_line()
    assert FAST_LINES[0] == 0
    monkeypatch.setattr(shape_columns, "MIN_GROUP", 6)
    test_generated_logs_read_the_same_by_shape_and_line_by_line()
    assert FAST_LINES[0] > 50


def test_the_generated_logs_are_read_as_columns() -> None:
    FAST_LINES[0] = 0
    test_generated_logs_read_the_same_by_shape_and_line_by_line()
    assert FAST_LINES[0] > 100


def test_every_template_gives_rows_the_same_both_ways() -> None:
    rng = random.Random(5)
    lines = [_valid_stamp(_redraw(t, rng), rng) for _ in range(8) for t in TEMPLATES] + [
        _redraw(x, rng) for b in BLOCKS for x in b
    ]
    FAST_LINES[0] = 0
    recs = _same(lines, 10_000)
    assert sum(r["kind"] == "metric" and r["parser"].startswith("generic") for r in recs) > 100
    assert FAST_LINES[0] > len(lines) // 3


def test_envelope_times_win_over_printed_stamps() -> None:
    rng = random.Random(9)
    lines = [_valid_stamp(_redraw(TEMPLATES[0], rng), rng) for _ in range(100)]
    ts: list[float | None] = [None if i % 3 else 1_700_000_000.5 + i for i in range(100)]
    recs = _same(lines, 10_000, ts)
    stamps = {r["ts"] for r in recs if r["parser"].startswith("generic")}
    assert 1_700_000_000.5 in stamps and len(stamps) > 30


def test_context_flows_between_columns_and_lines_read_alone() -> None:
    """A dict after a label (read alone) sets the epoch for later column lines; a claimed
    xgboost line sets the step; a traceback between them changes nothing."""
    lines = []
    for i in range(40):
        lines.append(f"epoch {i}: {{'accuracy': 0.{i + 10}}}")
        lines.extend(BLOCKS[0] if i % 7 == 0 else [])
        lines.append(f"[{i * 10}]\ttrain-logloss:0.{i + 10}\tvalid-auc:0.7")
        lines.append(f"loss=0.{i + 11} lr=0.{i + 12}")
    recs = _same(lines, 10_000)
    got = [(r["key"], r["step"], r["epoch"]) for r in recs if r["parser"].startswith("generic")]
    assert ("loss", 390, 39.0) in got


def test_a_step_past_int64_sends_the_batch_line_by_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """Arrow holds no such step: the batch is read the plain way, from its state as it was."""
    walks: list[bool] = []
    walk = shape_walk.walk_shapes

    def counted(*args: Any) -> bool:
        walks.append(walk(*args))
        return walks[-1]

    monkeypatch.setattr(generic_metrics, "walk_shapes", counted)
    rng = random.Random(3)
    lines = [_redraw("epoch 3 step 120 loss=0.31 acc=91.5", rng) for _ in range(80)]
    lines[40] = "step 99999999999999999999 loss 0.5"
    recs = _same(lines, 10_000)
    assert walks == [False]
    assert any((r["step"] or 0) > 2**63 for r in recs)


def test_a_shape_says_what_its_lines_are() -> None:
    fixed = reading_of("2026-11-26 16:22:40,908 - INFO - trainer - epoch 12 step 1200 loss=1.8")
    assert isinstance(fixed, Fixed) and fixed.stamp is not None and fixed.step_at is not None
    assert isinstance(reading_of('{"step": 3, "loss": 0.5}'), DictFixed)
    assert reading_of("RuntimeError: loss=0.7 broke") is SKIP
    assert reading_of("WARNING: loss=0.5 is high") is SKIP
    assert reading_of("  warnings.warn(") is SKIP
    assert reading_of("epoch  train_loss  valid_loss  time") is SLOW  # opens a table
    assert reading_of("Traceback (most recent call last):") is SLOW
    assert reading_of("hyper: lr=0.0003 batch=64") is SLOW  # batch=64 may be a setting
    assert reading_of('eval: {"eval_loss": 0.2}') is SLOW  # a dict after a label
    assert reading_of("2026-13-45 10:00:00,123 - INFO - loss=0.5") is SLOW  # not a date
    assert reading_of("I1126 16:22:40.908000 123 train.py:12] step 40 loss 0.5") is SLOW


def test_normalized_numbers_are_found_in_the_raw_line() -> None:
    for text in ("Iteration 10526, loss = 1.46846094", "epoch 2 (avg 0.5) loss = 0.25"):
        fixed = reading_of(text)
        assert isinstance(fixed, Fixed)
        assert [text[a:b] for a, b in fixed.nums][-1] in ("1.46846094", "0.25")


def test_dict_shapes_keep_parse_mappings_reading() -> None:
    shape = dict_shape('{"step": 07, "loss": 0.5}')
    assert shape is not None and shape.zeros  # a leading zero is checked per line
    assert dict_shape("{'a': 1, 'a': 2}") is None  # a repeated key
    assert dict_shape('{"top1": 0.5}') is None  # a key holding a digit
    assert dict_shape('{"ok": true, "loss": 0.5}') is None


_DICT_VALUES = st.sampled_from(
    ["{i}", "-{i}", "{i}.{f}", "{i}.{f}e-{f}", "{i}E+{f}", "'{i}.{f}'", '"{i}"', "0.{f}", "true"]
)


@st.composite
def _dict_family(draw: st.DrawFn) -> tuple[str, str]:
    """Two dicts of one family: the same text but for how wide each run of digits is
    (leading zeros, one digit, integers too long to read, now and then)."""
    quote = draw(st.sampled_from(["'", '"']))
    keys = draw(st.lists(st.from_regex(r"\A[a-z_/]{1,8}\Z"), min_size=1, max_size=5))
    forms = [draw(_DICT_VALUES) for _ in keys]
    space = draw(st.sampled_from(["", " "]))
    body = f",{space}".join(f"{quote}{k}{quote}:{space}{v}" for k, v in zip(keys, forms))
    template = "{" + body + "}"
    widths = st.one_of(st.integers(1, 6), st.sampled_from([1, 2, 300, 301]))

    def drawn() -> str:
        def digits(_: re.Match[str]) -> str:
            return draw(st.from_regex(rf"\A[0-9]{{{draw(widths)}}}\Z"))

        return re.sub(r"\{[if]\}", digits, template)

    return drawn(), drawn()


@settings(max_examples=300, deadline=None)
@given(pair=_dict_family())
def test_a_dict_placed_by_its_familys_reading_reads_as_itself(pair: tuple[str, str]) -> None:
    first, second = pair
    assert dict_shape(first) == read_dict_shape(first)
    assert dict_shape(second) == read_dict_shape(second)


def test_a_dict_message_is_known_without_its_pairs() -> None:
    for line in [*TEMPLATES, "Warning: {'loss': 0.5}", "  {'a': 1}  ", "{x}", "a}{"]:
        recipe = recipe_of(line)
        assert is_dict_message(line) == (recipe is not None and recipe.dict and not recipe.noise)


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32), template=st.sampled_from(TEMPLATES))
def test_a_familys_pattern_finds_each_number_where_the_reading_does(
    seed: int, template: str
) -> None:
    rng = random.Random(seed)
    text = _valid_stamp(_rewidth(_redraw(template, rng), rng), rng)
    reading = reading_of(text)
    if not isinstance(reading, Fixed | DictFixed):
        return
    got = family_of(reading, text)
    if got is None:
        return
    family = got[1]
    found = pc.extract_regex(pa.array([text]), family.pattern)[0].as_py()
    if found is None:  # only a dict number with a leading zero is left to its line
        assert isinstance(reading, DictFixed)
        assert any(re.match(r"-?0[0-9]", text[a:b]) for a, b in reading.nums)
        return
    assert [found[n] for n in family.nums] == [text[a:b] for a, b in reading.nums]
    if isinstance(reading, Fixed):
        for name, span in ((family.step_at, reading.step_at), (family.epoch_at, reading.epoch_at)):
            assert (name is None) == (span is None)
            if span is not None:
                assert found[name] == text[span[0] : span[1]]


@settings(max_examples=300, deadline=None)
@given(
    text=st.from_regex(
        r"\A[-+]?(?:[0-9]{1,25}\.?[0-9]{0,25}|\.[0-9]{1,25})(?:[eE][-+]?[0-9]{1,3})?\Z"
    )
)
def test_arrow_reads_a_number_as_float_does(text: str) -> None:
    got = pc.cast(pa.array([text]), pa.float64())[0].as_py()
    assert got == float(text) and math.copysign(1, got) == math.copysign(1, float(text))


_STAMPS = [
    "2026-{M}-{D} {h}:{m}:{s},{f} - INFO - loss=0.5",
    "2026-{M}-{D}T{h}:{m}:{s}.{f}Z step 3",
    "2026/{M}/{D} {h}:{m}:{s} loss 0.5",
    "{M}/{D}/2026 {h}:{m}:{s} - loss=0.5",
    "[2026-{M}-{D} {h}:{m}:{s},{f}] step 4",
    "2026-{M}-{D} {h}:{m}:{s}+05:30 step 5",
    "2026-{M}-{D} {h}:{m}:{s}.{f}-0800 step 5",
]


@settings(max_examples=200, deadline=None)
@given(
    layout=st.sampled_from(_STAMPS),
    fields=st.lists(
        st.fixed_dictionaries(
            {
                "M": st.sampled_from(["01", "02", "12", "13", "00"]),
                "D": st.sampled_from(["01", "28", "31", "32"]),
                "h": st.sampled_from(["00", "23", "24"]),
                "m": st.sampled_from(["00", "59", "60"]),
                "s": st.sampled_from(["00", "59", "60", "61", "99"]),
                "f": st.from_regex(r"\A[0-9]{3}\Z"),
            }
        ),
        min_size=1,
        max_size=8,
    ),
)
def test_stamps_read_as_split_log_prefix_reads_them(
    layout: str, fields: list[dict[str, str]]
) -> None:
    lines = [layout.format(**f) for f in fields]
    reading = reading_of(layout.format(M="01", D="01", h="00", m="00", s="00", f="000"))
    assert isinstance(reading, Fixed) and reading.stamp is not None
    got = stamps_of(pa.array(lines).view(pa.binary()), reading.stamp).to_pylist()
    for line, ts in zip(lines, got, strict=True):
        # None: not a valid date, so no stamp is split off (the line is read on its own)
        assert ts == split_log_prefix(line)[0]
