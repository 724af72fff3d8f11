"""The declarative engine's shortcuts give the records of the plain reading.

- a metric rule that moves the context reads its step/epoch from the context it has just
  set instead of reading its template again (``declarative_emit._position``);
- a candidate line is not tested against the parser's literals again when every literal
  it was picked by is one of them (``DeclarativeParser._gated``);
- ``line_ts`` answers ``None`` without ``leading_timestamp`` for a line that cannot start
  with a stamp.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loglake.parse.builtin import builtin_parser_dir
from loglake.parse.declarative import DeclarativeParser, load_parser_dir, load_parser_file
from loglake.parse.declarative_emit import line_ts, runner
from loglake.parse.timestamps import leading_timestamp

from .test_declarative import _run, _write

CONTEXT_RULES = r"""
name = "ctxcheck"
version = "1"
framework = "ctxcheck"

[[section]]
name = "val"
start = '^== validation (?P<tag>\w+) =='
max_lines = 4
bind = "tag"

[[rule]]
name = "epoch header"
match = '^epoch (?P<epoch>\S+)'
emit = "context"

[[rule]]
name = "reset"
match = '^reset$'
emit = "context"
clear = ["step", "epoch"]

[[rule]]
name = "step that may be a word"
match = '^step (?P<step>\w+): loss=(?P<value>{NUMBER})'
key = "loss"
value = "{value}"

[[rule]]
name = "bound section row"
section = "val"
match = '^(?P<tag>\w+) step (?P<step>\S+) acc=(?P<value>{NUMBER})'
key = "val_acc"
value = "{value}"

[[rule]]
name = "a step per pair"
match = '^multi:'
pairs = '(?P<key>[a-z]+)@(?P<step>\w+)=(?P<value>{NUMBER})'
key = "{key}"
value = "{value}"

[[rule]]
name = "two values, step and epoch maybe empty"
match = '^both s=(?P<step>[^ ]*) e=(?P<epoch>[^ ]*) a=(?P<a>{NUMBER})(?: b=(?P<b>{NUMBER}))?'
items = [{ key = "a", value = "{a}" }, { key = "b", value = "{b}" }]
stop = false

[[rule]]
name = "the same line again, context untouched"
match = '^both s=(?P<step>[^ ]*) .*a=(?P<a>{NUMBER})'
key = "a_again"
value = "{a}"
set_context = false
stop = false

[[rule]]
name = "the same line, step of the context"
match = '^both .*a=(?P<a>{NUMBER})'
key = "a_ctx"
value = "{a}"
step = "context"
epoch = "context"

[[rule]]
name = "a step of its own, context untouched"
match = '^peek (?P<step>\w+) v=(?P<v>{NUMBER})'
key = "peek"
value = "{v}"
set_context = false

[[rule]]
name = "once per step"
match = '^once (?P<step>\d*) (?P<v>{NUMBER})'
key = "o"
value = "{v}"
once = true

[[rule]]
name = "step written with a comma"
match = '^big (?P<step>[\d,]+) (?P<epoch>[\d.]+) v=(?P<v>{NUMBER})'
key = "big"
value = "{v}"
"""

VOCABULARY = [
    "epoch 3",
    "epoch x",
    "epoch \u0663",
    "epoch 2.5",
    "reset",
    "step 5: loss=0.5",
    "step abc: loss=0.25",
    "step \u0663: loss=1",
    "step 7: loss=nan",
    "step 8: loss=1e-3",
    "== validation dev ==",
    "== validation test ==",
    "dev step 9 acc=0.9",
    "test step x acc=0.8",
    "dev step \u0664 acc=0.7",
    "multi: a@1=0.5 b@\u0662=0.6 c@x=1 d@=2",
    "multi:",
    "both s=4 e=2 a=1 b=2",
    "both s= e= a=1",
    "both s=x e=1.5 a=3 b=4",
    "both s=1,000 e=2 a=5",
    "both s=\u0665 e=\u0661 a=6",
    "peek 99 v=1",
    "peek no v=2",
    "once 3 0.5",
    "once  0.5",
    "once 3 0.5",
    "big 1,200 3.5 v=2",
    "big , 1.2.3 v=2",
    "INFO: step 6: loss=0.125",
    "2026-01-01 10:00:00 INFO both s=2 e=1 a=9",
    "noise line",
    "",
]


def _records(p: DeclarativeParser, lines: list[str], chunks: int) -> str:
    """The records, as text: a NaN value compares equal to itself there."""
    return repr(_run(p, lines, chunks=chunks))


def _reread_templates(p: DeclarativeParser) -> None:
    """The plain reading: every metric runner reads its own step/epoch templates."""
    p._plan = [(r, runner(r, share_context=False), *rest) for r, _, *rest in p._plan]
    p._redraw_plan = [step for step in p._plan if step[0].redraws]


@pytest.fixture(scope="module")
def context_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[DeclarativeParser, ...]:
    path = _write(tmp_path_factory.mktemp("ctx"), CONTEXT_RULES)
    fast = load_parser_file(path, trusted=True)
    plain = load_parser_file(path, trusted=True)
    _reread_templates(plain)
    return fast, plain


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=st.lists(st.sampled_from(VOCABULARY), min_size=1, max_size=60),
    chunks=st.integers(1, 4),
)
def test_context_shortcut_gives_the_records_of_rereading_templates(
    context_pair: tuple[DeclarativeParser, ...], lines: list[str], chunks: int
) -> None:
    fast, plain = context_pair
    assert _records(fast, lines, chunks) == _records(plain, lines, chunks)


def test_context_shortcut_on_a_known_log(context_pair: tuple[DeclarativeParser, ...]) -> None:
    fast, plain = context_pair
    lines = VOCABULARY * 3
    got = _run(fast, lines, chunks=2)
    assert repr(got) == _records(plain, lines, 2)
    rows = [(lines[r["line"]], r["key"], r["step"], r["epoch"]) for r in got if "step" in r]
    assert ("step \u0663: loss=1", "loss", 3, None) in rows  # an Arabic-Indic digit
    assert ("step abc: loss=0.25", "loss", 5, None) in rows  # no step: the context's
    assert ("both s= e= a=1", "a", 4, 2.0) in rows  # empty groups: the context's
    assert ("both s= e= a=1", "a_ctx", 4, 2.0) in rows
    assert ("both s=1,000 e=2 a=5", "a_again", 1000, 2.0) in rows
    assert ("big , 1.2.3 v=2", "big", 1200, 3.5) in rows  # unreadable: the context's
    assert ("peek 99 v=1", "peek", 99, 1.0) in rows  # its own step, the context unmoved
    assert ("once 3 0.5", "o", 3, 1.0) in rows


BUILTIN_VOCABULARY = [
    "[0]\ttrain-logloss:0.58\ttrain-auc:0.97\tvalid-logloss:0.58\tvalid-auc:0.98",
    "[3]\ttrain-auc:0.95000+0.00300\ttest-auc:0.94000+0.01000",
    "[5]\tvalid_0's auc: 0.808622\tvalid_0's binary_logloss: 0.9218",
    "[7]\tcv_agg's auc: 0.9 + 0.01",
    "Stopping. Best iteration:",
    "Early stopping, best iteration is:",
    "Will train until valid-logloss hasn't improved in 10 rounds.",
    "Iteration 3, loss = 0.25",
    "Validation score: 0.75",
    "Epoch 2/5",
    "23/23 \u2501\u2501\u2501\u2501 0s 3ms/step - loss: 0.5 - val_loss: 0.6",
    "0:\tlearn: 0.6\ttest: 0.7\tbest: 0.7 (0)\ttotal: 1ms\tremaining: 2s",
    "      Iter       Train Loss   Remaining Time ",
    "         1           0.5000            1.00s",
    "[10:32:04] WARNING: learner.cc:742: Parameters",
    "noise [x]\tmore",
    "",
]


@pytest.fixture(scope="module")
def builtins() -> list[DeclarativeParser]:
    return load_parser_dir(builtin_parser_dir(), trusted=True)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=st.lists(st.sampled_from(BUILTIN_VOCABULARY), min_size=70, max_size=200),
    chunks=st.integers(1, 3),
)
def test_builtins_read_candidates_as_they_read_every_line(
    builtins: list[DeclarativeParser], lines: list[str], chunks: int
) -> None:
    """Batches of 70+ lines take the Arrow scan; the reference reads every line."""
    for p in builtins:
        assert p._gated  # every built-in picks its candidates by its own gate's literals
        candidates = _records(p, lines, chunks)
        gate = p._gate
        p._gate = None
        try:
            every_line = _records(p, lines, chunks)
        finally:
            p._gate = gate
        assert candidates == every_line, p.name


STAMPS = [
    "2026-01-01 10:00:00 ",
    "[2026-01-01 10:00:00] ",
    "I1127 05:15:16.121000 12 f.py:1] ",
    "11/27/2026 05:15:19 - ",
    "[I 2026-11-27 05:15:16,121] ",
    "\u0663\u0661 ",
    "",
]


@settings(max_examples=400, deadline=None)
@given(
    stamp=st.sampled_from(STAMPS),
    head=st.text(alphabet="0123456789[]IWEFDCTZ:-/ .,\u0663xyz", max_size=12),
    tail=st.text(max_size=20),
)
def test_line_ts_agrees_with_leading_timestamp(stamp: str, head: str, tail: str) -> None:
    for text in (stamp + tail, head + tail, head + stamp + tail):
        assert line_ts(text) == leading_timestamp(text)[0], text


def test_line_ts_skips_lines_that_cannot_start_with_a_stamp(tmp_path: Path) -> None:
    assert line_ts("Iteration 3, loss = 0.5") is None
    assert (
        line_ts("I1127 05:15:16.121000 12 f.py:1] x")
        == leading_timestamp("I1127 05:15:16.121000 12 f.py:1] x")[0]
    )
    assert line_ts("2026-01-01 10:00:00 x") is not None
