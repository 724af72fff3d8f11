"""The shortcuts the generic parser's column reading takes rest on equivalences shown here.

- a shape's plan is remembered under the shape's text as ``Shapes`` gives it (Arrow), which
  must be ``values.shape_of`` of each of its lines (the key ``reading_of`` caches under);
- a claimed candidate may set the context when ``CONTEXT_CANDIDATES``' mask says so at its
  line: the same lines ``batch.matching(CANDIDATES, CONTEXT_CANDIDATES)`` lists;
- a group's metrics are emitted by a condition on the line (``ALWAYS``/``OWN``/``NOT_OWN``)
  applied once to all rows: the rows are those the line-by-line reading gives, for plans
  whose metrics depend on whether the line names its own step/epoch.
"""

from __future__ import annotations

import random
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given, settings
from hypothesis import strategies as st

from loglake.parse import shape_columns
from loglake.parse.base import LineBatch
from loglake.parse.builtin import builtin_parsers
from loglake.parse.builtins.generic_metrics import (
    CANDIDATES,
    CONTEXT_CANDIDATES,
    GenericMetricsParser,
)
from loglake.parse.pipeline import FileParsers, emitted_records
from loglake.parse.records import Emitter
from loglake.parse.shape_groups import reading_of
from loglake.parse.values import shape_of

LINES = [
    "2026-11-26 16:22:40,908 - INFO - trainer - epoch 12 step 1200 loss=1.8799 lr=8.3e-04",
    "2026-11-26 16:22:40,908 - INFO - trainer - Epoch 3/10",
    "2026-11-26 16:22:40,908 - INFO - trainer - lr=0.1 momentum=0.9",
    "2026-11-26 16:22:40,908 - INFO - trainer - val_loss: 0.31",
    "step 120 loss 0.5 lr 0.01",
    "loss 0.5 lr 0.01",
    "[120]\tvalid_0's auc: 0.71\tvalid_0's binary_logloss: 0.3",
    "{'loss': 1.517, 'grad_norm': 2.431, 'epoch': 10.51}",
    '{"lr": 0.1, "seed": 3}',
    '{"lr": 0.1, "step": 7}',
    "step 12 lr=0.1 momentum=0.9",
    "step=12.0 lr=0.1 wd=0.01",
    '{"lr": 0.1, "step": 7.5}',
    "métrique époque 3 loss=0.5 données ٣ 7",
    "Epoch 7: val_acc=0.91",
    "Saved checkpoint to /ckpt/run-17/step_3146.pt (134146 bytes)",
    "no digits here",
    "",
]


def _redraw(line: str, rng: random.Random) -> str:
    return "".join(rng.choice("0123456789") if c.isdigit() and c.isascii() else c for c in line)


def _batch(seed: int, n: int) -> LineBatch:
    rng = random.Random(seed)
    lines = [_redraw(rng.choice(LINES), rng) for _ in range(n)]
    return LineBatch(lines, [i * 10 for i in range(n)])


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32), n=st.integers(300, 600))
def test_arrow_shapes_are_the_shapes_lines_are_cached_under(seed: int, n: int) -> None:
    batch = _batch(seed, n)
    shapes = batch.shapes()
    assert shapes is not None
    keys = shapes.distinct.view(pa.binary()).to_pylist()
    for text, sid in zip(batch.texts, shapes.index.to_pylist(), strict=True):
        assert keys[sid] == shape_of(text)


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32), n=st.integers(300, 600))
def test_the_context_mask_picks_the_lines_matching_lists(seed: int, n: int) -> None:
    batch = _batch(seed, n)
    candidates = batch.matching(CANDIDATES)
    picks = pa.array(candidates, pa.int32())
    listed = pc.is_in(picks, pa.array(batch.matching(CANDIDATES, CONTEXT_CANDIDATES), pa.int32()))
    assert pc.take(batch.pattern_mask(CONTEXT_CANDIDATES), picks).equals(listed)


def test_a_shape_plan_holds_for_every_line_of_the_shape() -> None:
    rng = random.Random(7)
    for line in LINES:
        first = _redraw(line, rng)
        plan = shape_columns._plan_of(shape_of(first), first)
        for _ in range(20):
            other = _redraw(line, rng)
            if shape_of(other) != shape_of(first):
                continue
            reading = reading_of(other)
            assert plan.reading == (reading if plan.reading is not None else None)


def _records(lines: list[str], recipes: bool) -> list[dict[str, Any]]:
    parsers = [
        GenericMetricsParser(recipes=recipes) if p.name == "generic" else p
        for p in builtin_parsers()
    ]
    fp = FileParsers(parsers)
    out = Emitter()
    for start in range(0, len(lines), 250):
        part = lines[start : start + 250]
        fp.feed(LineBatch(part, [(start + j) * 100 for j in range(len(part))]), out)
    return emitted_records(out)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32))
def test_emit_conditions_give_the_rows_of_the_line_by_line_reading(seed: int) -> None:
    """Lines whose metrics depend on their own counters (``lr`` is a metric only next to a
    step or a metric name; a settings dict gives nothing unless it names a counter; a step
    counts only when it is an integer, ``step=12.0`` against ``step=12.5``), in groups large
    enough to be read as columns."""
    rng = random.Random(seed)
    lines = [_redraw(rng.choice(LINES[:13]), rng) for _ in range(1000)]
    fast = _records(lines, True)
    assert fast == _records(lines, False)
    assert len(fast) > 100
