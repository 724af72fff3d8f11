"""Redrawn lines and remembered shape plans read as the plain reading does.

- Redrawn lines (``\\r`` progress bars, Keras backspaces, escape codes) among lines read by
  shape plans, in Arrow-scanned batches: every parser emits what reading every line with
  its regexes emits (a trusted team parser with ``redraws`` rules and a section too).
- ``ShapeReader.plan`` remembers a plan per shape across batches: a plan made from one
  line of a shape is the plan another line of it makes.
"""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loglake.parse.base import LineBatch
from loglake.parse.builtin import builtin_parser_dir
from loglake.parse.declarative import DeclarativeParser, load_parser_dir, load_parser_file
from loglake.parse.declarative_shapes import ShapeReader
from loglake.parse.records import Emitter
from loglake.tail import FLAG_REDRAWN, clean_lines
from loglake.tail.cleanup import RedrawStates

from .test_declarative_shapes import TEMPLATES, _fill

BS = "\x08"
# "#" is a digit drawn per line; "\r" joins the redraw states of one physical line
REDRAWN = [
    (
        "Epoch #:  50%|█████     | 1#/32 [00:00<00:00, 40.00it/s, v_num=1, train_loss=0.#]\r"
        "Epoch #: 100%|██████████| 32/32 [00:01<00:00, 25.60it/s, v_num=1, train_loss=0.##]"
    ),
    # an epoch's bar at 100% before validation, then again with the validation values
    (
        "Epoch #: 100%|██████████| 32/32 [00:01<00:00, 2#.#0it/s, v_num=1, train_loss=0.5##]\r"
        "Epoch #: 100%|██████████| 32/32 [00:01<00:00, 2#.#0it/s, v_num=1, train_loss=0.5##, "
        "val_loss=0.6#]"
    ),
    # the next epoch's bar starts on the line the last one finished on
    (
        "Epoch #: 100%|██████████| 32/32 [00:0#<00:00, 25.60it/s, v_num=1, train_loss=0.#]\r"
        "Epoch #:   0%|          | 0/32 [00:00<?, ?it/s, v_num=1]"
    ),
    (
        "Map:  ##%|█████     | ###/500 [00:00<00:00, ####.##it/s]\r"
        "Map: 100%|██████████| 500/500 [00:00<00:00, ####.##it/s]"
    ),
    (
        "Tokenizing:   0%|          | 0/## [00:00<?, ?it/s]\rTokenizing: 100%|██████████| ##/## "
        "[00:0#<00:00, ##.##it/s]"
    ),
    # Keras 3 backs over its bar before each redraw
    "#/23 ━━━━━━━━━━━━━━━━━━━━ #s #ms/step - accuracy: 0.#### - loss: #.####" + BS * 8 + "\r"
    "23/23 ━━━━━━━━━━━━━━━━━━━━ #s #ms/step - accuracy: 0.#### - loss: #.#### - "
    "val_accuracy: 0.#### - val_loss: #.####",
    "Epoch #/#",
    "Epoch #: 100%|██████████| 32/32 [00:01<00:00, 25.60it/s, v_num=1, train_loss=0.###]",
    "\x1b[2K\rEpoch #: 100%|██████████| 3/3 [00:01<00:00, 2.60it/s, loss=0.#]\x1b[A",
    "Validate metric           DataLoader 0",
    "       val_acc            0.#####",
    "└──────────────────────┘",
    "Seed set to ##",
    (
        "   ##/100 [=====>....] - ETA: #s - loss: 0.####\r100/100 [==========] - #s #ms/step - "
        "loss: 0.#### - accuracy: 0.####"
    ),
]


BARS = r"""
name = "bars"
version = "1"

[[section]]
name = "val"
start = '^== val =='
contains = ["== val"]
max_lines = 3

[[rule]]
name = "val row"
section = "val"
match = '^acc=(?P<value>{NUMBER})'
contains = ["acc="]
key = "val_acc"
value = "{value}"

[[rule]]
name = "bar"
match = '^train (?P<step>\d+)/\d+ loss=(?P<value>{NUMBER})'
contains = ["train "]
redraws = true
key = "loss"
value = "{value}"

[[rule]]
name = "eval"
match = '^\[(?P<step>\d+)\]\teval-auc:(?P<value>{NUMBER})'
contains = ["]\teval"]
key = "auc"
value = "{value}"
"""
REDRAWN_OURS = [
    "train ##/100 loss=0.##\rtrain 100/100 loss=0.###",
    "[##]\teval-auc:0.####\r[##]\teval-auc:0.####",
    "train #/100 loss=0.5\rtrain 100/100 loss=nan\rtrain 0/100 loss=#",
    "[##]\teval-auc:0.####",
    "== val ==",
    "x ##\racc=0.##",
]


def _batch(raw: list[str], start: int) -> LineBatch:
    """Raw lines as the indexer hands them over: cleaned, their redraw states on call."""
    data = [line.encode() for line in raw]
    clean, flags = clean_lines(data)
    redraws = RedrawStates(data, [i for i, f in enumerate(flags) if f & FLAG_REDRAWN])
    offsets = [(start + i) * 300 for i in range(len(raw))]
    return LineBatch(clean, offsets, None, redraws or None)


def _records(p: DeclarativeParser, raw: list[str], chunks: int, claimed: set[int]) -> Any:
    out = Emitter()
    out.parser = p.name
    out.claim_lines = True
    state = p.new_state()
    size = -(-len(raw) // chunks)
    for start in range(0, len(raw), size):
        out.claimed = {i * 300 for i in claimed if start <= i < start + size}
        p.parse(_batch(raw[start : start + size], start), state, out)
    rows = {
        name: [
            tuple("nan" if isinstance(v, float) and math.isnan(v) else v for v in row)
            for row in zip(*table.data.values(), strict=True)
        ]
        for name, table in out.tables().items()
    }
    if state["sec"] is None:  # skipping counts a closed section's lines further down
        state["sec_left"] = 0
    return rows, state


@pytest.fixture(scope="module")
def builtins() -> list[DeclarativeParser]:
    return load_parser_dir(builtin_parser_dir(), trusted=True)


@pytest.fixture(scope="module")
def bars(tmp_path_factory: pytest.TempPathFactory) -> DeclarativeParser:
    path = tmp_path_factory.mktemp("bars") / "bars.toml"
    path.write_text(BARS)
    return load_parser_file(path, trusted=True)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    picks=st.lists(st.integers(0, len(REDRAWN) + len(REDRAWN_OURS) + 5), min_size=70, max_size=160),
    seed=st.integers(0, 2**32),
    chunks=st.integers(1, 2),
    claim=st.sampled_from([0.0, 0.2]),
)
def test_redrawn_lines_read_as_every_line_is_read(
    builtins: list[DeclarativeParser],
    bars: DeclarativeParser,
    picks: list[int],
    seed: int,
    chunks: int,
    claim: float,
) -> None:
    """Batches of 70+ lines (Arrow scan, shapes, plans) against reading every line."""
    rng = random.Random(seed)
    plain = TEMPLATES[:1] + TEMPLATES[5:6] + TEMPLATES[19:21] + ["noise", ""]
    raw = [_fill((REDRAWN + REDRAWN_OURS + plain)[k], rng) for k in picks]
    claimed = {i for i in range(len(raw)) if rng.random() < claim}
    for p in [*builtins, bars]:
        fast = _records(p, raw, chunks, claimed)
        gate = p._gate
        p._gate, p.by_shape = None, False
        try:
            every_line = _records(p, raw, chunks, claimed)
        finally:
            p._gate, p.by_shape = gate, True
        assert fast == every_line, p.name


@settings(max_examples=150, deadline=None)
@given(template=st.sampled_from(TEMPLATES), seeds=st.lists(st.integers(0, 2**32), min_size=2))
def test_a_remembered_plan_is_the_plan_of_each_line_of_its_shape(
    builtins: list[DeclarativeParser], template: str, seeds: list[int]
) -> None:
    lines = [_fill(template, random.Random(s)) for s in seeds]
    for p in builtins:
        memo = p._shapes
        for line in lines:
            fresh = ShapeReader(p._free_plan, p._starts, p._headers, strip=p._strip)
            assert memo.plan(line) == fresh.plan(line), (p.name, line)
