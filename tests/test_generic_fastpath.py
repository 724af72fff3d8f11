"""The generic parser's shortcuts read every line exactly as the plain reading does.

``loglake.parse.line_recipes`` reads a message once per *shape* (its ASCII digits as ``0``)
and a flat dict of numbers once per key tuple; ``GenericMetricsParser(recipes=False)`` reads
every line afresh. Both run here side by side, with every built-in parser alongside (so
claimed lines, which only set the step/epoch context, are exercised), over the corpus, mixed
logs, hand-made edge lines and generated lines whose digits vary within one shape (a step
that is an integer on one line and not on the next, ``top1`` beside ``top2``, ``batch=64``
beside ``step 64``). ``pair_plan`` and ``_counted``, which both readings share, are checked
against the per-pair rule they replace, written out.
"""

from __future__ import annotations

import math
import random
import sys
from functools import cache
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from loglake.parse.base import LineBatch
from loglake.parse.builtin import builtin_parsers
from loglake.parse.builtins.generic_metrics import GenericMetricsParser, _counted
from loglake.parse.kv import Pair
from loglake.parse.line_recipes import (
    counters_of,
    dict_plan,
    line_recipe,
    message_recipe,
    metric_key,
    pair_plan,
    recipe_of,
)
from loglake.parse.pipeline import FileParsers, emitted_records, probe, run_file
from loglake.parse.records import Emitter
from loglake.parse.timestamps import split_log_prefix
from loglake.parse.vocabulary import has_stopword, is_metric_name, is_skip_key, step_kind

from .conftest import CORPUS, corpus_cases
from .test_prefilter import EDGE_LINES

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import mixlog


@cache  # parsers keep no state of their own (FileParsers holds it): shared by examples
def _parsers(recipes: bool) -> list[Any]:
    return [
        GenericMetricsParser(recipes=recipes) if p.name == "generic" else p
        for p in builtin_parsers()
    ]


def _clean(recs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {k: ("nan" if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
        for r in recs
    ]


def _lines_records(lines: list[str], recipes: bool, batch: int = 0) -> list[dict[str, Any]]:
    fp = FileParsers(_parsers(recipes))
    out = Emitter()
    size = batch or max(len(lines), 1)
    for start in range(0, len(lines), size):
        part = lines[start : start + size]
        fp.feed(LineBatch(part, [(start + j) * 100 for j in range(len(part))]), out)
    return _clean(emitted_records(out))


def _file_records(path: Path, recipes: bool) -> list[dict[str, Any]]:
    info, _ = probe(str(path))
    run = run_file(str(path), [p for p in _parsers(recipes) if p.detect(info)])
    return _clean(emitted_records(run.out))


def _same_both_ways(path: Path) -> list[dict[str, Any]]:
    fast = _file_records(path, True)
    assert fast == _file_records(path, False)
    return fast


def test_corpus_logs_read_the_same_with_and_without_recipes() -> None:
    for case in corpus_cases():
        assert _same_both_ways(CORPUS / case / "stdout.log")


def test_mixed_logs_read_the_same_with_and_without_recipes(tmp_path: Path) -> None:
    for seed in (3, 11):
        log = tmp_path / f"mix{seed}.log"
        mixlog.write_log(log, 300_000, seed=seed)
        recs = _same_both_ways(log)
        assert sum(r["kind"] == "metric" and r["parser"].startswith("generic") for r in recs) > 300


def test_edge_lines_read_the_same_with_and_without_recipes(tmp_path: Path) -> None:
    log = tmp_path / "edge.log"
    log.write_text((EDGE_LINES + EXTRA_LINES) * 2, encoding="utf-8")
    recs = _same_both_ways(log)
    assert any(r["parser"].startswith("generic") for r in recs)


# Lines whose reading hangs on their digits: each is repeated with its digits redrawn.
EXTRA_LINES = """\
2026-01-01 10:00:00,123 - INFO - trainer - epoch 1 step 64 loss=0.5 lr=1e-3
hyper: lr=0.0003 batch=64 step 64
epoch=1 batch=12 loss=0.3
step 1.5 loss 0.2
step: 1.0 top1: 90.5 top2: 80.1
[12]\ttrain-logloss:0.5\tvalid-auc:0.7
[120]\tvalid_0's auc: 0.71\tvalid_0's binary_logloss: 0.3
Iteration 120, loss = 0.25
Epoch 3/10 | train loss 0.5 | val acc 91.0%
iter 5 time 12ms eta 3s loss 0.5
{"step": 3, "epoch": 1, "loss": 0.5, "tokens_seen": 4096}
{"step": 3.5, "epoch": 1, "loss": 0.5}
{"epoch": 2, "lr": 0.1}
{"lr": 0.1, "seed": 3}
{'loss': '0.4', 'epoch': 1.5, 'ok': True, 'nested': {'acc': 0.5}}
{1: 0.5, "loss": 2}
eval: {"eval_loss": 0.2, "step": 30}
epoch 0: {'accuracy': 0.8}
Throughput: 29736 tokens/s over the last 52 steps
45%|████▌     | 45/100 [00:10<00:12, loss=0.31]
top1 acc (avg 91.2) 90.5 step 12
WARNING: loss=0.5 is high
RuntimeError: loss=0.7 broke
"""
# an int too large for a float: the line is an error, before any metric or context
EXTRA_LINES += '{"loss": 0.5, "step": 7, "big": 1' + "0" * 400 + "}\n"


_DIGITS = "0123456789"


def _redraw(line: str, rng: random.Random) -> str:
    """``line`` with each ASCII digit replaced by a random one: the same shape."""
    return "".join(rng.choice(_DIGITS) if c in _DIGITS else c for c in line)


_WORDS = [
    "epoch", "Epoch", "step", "Step", "global_step", "iter", "it", "ep", "batch", "round",
    "Iteration", "loss", "val_loss", "train loss", "top1", "top5", "acc", "lr", "eta",
    "v_num", "the", "time", "valid_0's auc", "map50", "f1", "tokens_seen", "Throughput",
]  # fmt: skip
_SEPS = ["=", ": ", " ", ":", " = ", " : "]
_NUMS = ["1", "12", "1.0", "1.5", "0.25", "1e-3", "3/10", "45%", "12ms", "64", "nan", "-2"]
_JOINS = [" ", " | ", ", ", "\t", "  ", " - "]
_HEADS = [
    "",
    "2026-01-01 10:00:00,123 - INFO - trainer - ",
    "[12] ",
    "[3/10] ",
    "Epoch 2/5 ",
    "I0101 10:00:00.000000 123 train.py:1] ",
]
_TAILS = ["", " (avg 0.5)", " [3/10]", " 45%|██▌  |", " done."]


@st.composite
def _line(draw: st.DrawFn) -> str:
    n = draw(st.integers(1, 4))
    parts = [
        draw(st.sampled_from(_WORDS)) + draw(st.sampled_from(_SEPS)) + draw(st.sampled_from(_NUMS))
        for _ in range(n)
    ]
    joins = [draw(st.sampled_from(_JOINS)) for _ in range(n - 1)]
    body = parts[0] + "".join(j + p for j, p in zip(joins, parts[1:], strict=True))
    return draw(st.sampled_from(_HEADS)) + body + draw(st.sampled_from(_TAILS))


@st.composite
def _dict_line(draw: st.DrawFn) -> str:
    keys = draw(st.lists(st.sampled_from(_WORDS), min_size=1, max_size=4, unique=True))
    values = st.sampled_from(["1", "1.5", "3", "0.25", "true", '"0.5"', '"x"', "null"])
    items = ", ".join(f'"{k}": {draw(values)}' for k in keys)
    return draw(st.sampled_from(["", "metrics: ", "epoch 3: "])) + "{" + items + "}"


@settings(max_examples=150, deadline=None)
@given(
    templates=st.lists(st.one_of(_line(), _dict_line()), min_size=1, max_size=6),
    seed=st.integers(0, 2**16),
)
def test_lines_of_one_shape_read_the_same_with_and_without_recipes(
    templates: list[str], seed: int
) -> None:
    rng = random.Random(seed)
    lines = [_redraw(t, rng) for t in templates for _ in range(3)]
    rng.shuffle(lines)
    assert _lines_records(lines, True) == _lines_records(lines, False)
    assert _lines_records(lines, True, batch=2) == _lines_records(lines, False, batch=2)


def test_extra_lines_with_redrawn_digits_read_the_same() -> None:
    rng = random.Random(7)
    lines = [_redraw(t, rng) for t in EXTRA_LINES.splitlines() for _ in range(6)]
    rng.shuffle(lines)
    fast = _lines_records(lines, True)
    assert fast == _lines_records(lines, False)
    assert sum(r["kind"] == "metric" for r in fast) > 50


def test_a_shape_is_read_once() -> None:
    a = recipe_of("epoch 3 step 120 loss=0.3100 top1 91.5")
    assert recipe_of("epoch 7 step 980 loss=0.2200 top2 12.5") is a
    assert a is not None and a.plan is None  # a name holds a digit: its plan is per line
    b = recipe_of("epoch 3 step 120 loss=0.3100")
    assert b is not None and b.plan is not None
    assert b.plan.emits == ((("loss", 2),), (("loss", 2),))
    assert recipe_of("RuntimeError: loss=0.7 broke").noise


def test_a_line_shape_finds_its_message_recipe() -> None:
    """The line recipe finds the message's recipe by where the message starts, which holds
    because split_log_prefix's message is always a suffix of the line."""
    lines = [
        *EDGE_LINES.splitlines(),
        *EXTRA_LINES.splitlines(),
        *(CORPUS / "xgboost_native" / "stdout.log").read_text(encoding="utf-8").splitlines(),
        "2026-13-45 10:00:00,123 - INFO - loss=0.5",  # not a date: no prefix split off
        "2026-01-01 10:00:00,123 - INFO - loss=0.5",
    ]
    for text in lines:
        msg = split_log_prefix(text)[2]
        assert text.endswith(msg)
        line = line_recipe(text)
        assert line is not None
        assert message_recipe(line, text, msg) == recipe_of(msg)


def test_counters_are_known_from_the_shape_when_names_hold_digits() -> None:
    r = recipe_of("[12]\tvalid_0's auc: 0.71\tstep_1 3\tvalid_0 epoch: 2")
    assert r is not None and r.plan is None and r.counters is not None
    assert r.counters == counters_of(("valid_0's auc", "step_1", "valid_0 epoch"), r.units)


def _old_pairs(pairs: list[Pair], own_counters: tuple[int | None, float | None]) -> Any:
    """The per-pair rule ``pair_plan`` replaces, as the parser applied it pair by pair."""
    step, epoch = own_counters
    values: list[Pair] = []
    for p in pairs:
        kind = step_kind(p.key) or (step_kind(p.key.rsplit(" ", 1)[-1]) if " " in p.key else None)
        if kind == "step":
            if p.unit in ("", "/") and p.value.is_integer():
                step = int(p.value)
        elif kind == "epoch":
            if p.unit in ("", "/"):
                epoch = p.value
        else:
            values.append(p)
    has_metric = any(is_metric_name(p.key) for p in values)
    own = step is not None or epoch is not None
    seen: set[str] = set()
    emitted = []
    for p in values:
        if p.unit == "/" or is_skip_key(p.key):
            continue
        metric_like = is_metric_name(p.key)
        if p.unit not in ("", "%") and not metric_like:
            continue
        if not (metric_like or has_metric or (own and p.explicit)):
            continue
        if " " in p.key and has_stopword(p.key.split()):
            continue
        key = metric_key(p.key)
        if not key or key in seen:
            continue
        seen.add(key)
        emitted.append((key, p.value))
    return step, epoch, emitted


def _new_pairs(pairs: list[Pair], own_counters: tuple[int | None, float | None]) -> Any:
    step, epoch = own_counters
    plan = pair_plan(
        tuple(p.key for p in pairs), tuple(p.unit for p in pairs), tuple(p.explicit for p in pairs)
    )
    step, epoch = _counted(plan.counters, [p.value for p in pairs], step, epoch)
    emits = plan.emits[step is not None or epoch is not None]
    return step, epoch, [(key, pairs[k].value) for key, k in emits]


_PAIR = st.builds(
    Pair,
    st.sampled_from([*_WORDS, "train loss", "the loss", "global step", "lr", "x"]),
    st.sampled_from([1.0, 2.5, 64.0, float("inf"), 0.0]),
    st.sampled_from(["", "%", "/", "ms", "M"]),
    st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(
    pairs=st.lists(_PAIR, max_size=6),
    counters=st.sampled_from([(None, None), (3, None), (None, 1.0), (5, 2.0)]),
)
def test_pair_plan_applies_the_per_pair_rule(
    pairs: list[Pair], counters: tuple[int | None, float | None]
) -> None:
    assert _new_pairs(pairs, counters) == _old_pairs(pairs, counters)


def test_dict_plan_only_for_plain_numbers() -> None:
    assert dict_plan(("loss", "step"), (float, int)) is not None
    assert dict_plan(("loss", "ok"), (float, bool)) is None
    assert dict_plan(("loss", "acc"), (float, str)) is None
    plan = dict_plan(("step", "epoch", "loss", "eta"), (int, float, float, int))
    assert plan is not None
    assert plan.counters == ((0, True), (1, False))
    assert plan.emits == (("loss", 2),) and plan.metric_named
