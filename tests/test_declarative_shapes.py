"""Reading lines once per shape (``declarative_shapes``) gives the records of reading each line.

The built-in parsers run over generated batches three times: planned lines read in shape
groups as Arrow columns (``declarative_groups``, its thresholds lowered so that small
batches take it, some groups small enough to be read line by line among the others), the
same lines read one by one by their plan (``run_plan``), and every line read by the
parser's regexes; all three must emit the same rows in the same order and leave the same
state. The batches repeat line
templates with other digits in them (so the batch has shapes), including digits where they
matter: keys with digits (``valid_1``, ``test1``, ``ndcg@5``), ``N/N`` bars whose rule
compares two numbers, values like ``1e-05``/``nan``, lines with a log prefix, lines that
open sections and tables, lines an earlier parser claimed.
"""

from __future__ import annotations

import contextlib
import math
import random
import re
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loglake.parse import declarative_groups as groups
from loglake.parse.base import LineBatch
from loglake.parse.builtin import builtin_parser_dir
from loglake.parse.declarative import DeclarativeParser, load_parser_dir
from loglake.parse.declarative_shapes import ShapeReader, digit_uniform
from loglake.parse.prefilter import ARROW_MIN_LINES
from loglake.parse.records import Emitter

# "#" is a digit drawn per line, so every line made from one template has one shape
TEMPLATES = [
    "[#]\ttrain-logloss:0.#####\tvalid-auc:0.#####",
    "[##]\tvalidation_#-rmse:#.#####\tvalidation_#-rmse:0.#",
    "[#]\teval-ndcg@#:0.#####\teval-map@#:#.#e-0#",
    "[##]\ttrain-auc:0.#####+0.00###\ttest-auc:0.9####+0.0####",
    "[#]\ttrain-x:nan\ttrain-y:inf\ttrain-z:-#.#",
    "[#]\tvalid_#'s auc: 0.#####\tvalid_#'s binary_logloss: #.####",
    "[##]\tcv_agg's valid auc: 0.### + 0.0###\tcv_agg's valid l#: #.# + #.#",
    "[#]\ttraining's auc: #e-0#",
    "[LightGBM] [Info] Iteration:##, valid_# auc : 0.###",
    "[LightGBM] [Info] Number of data points in the train set: ####, number of used features: #",
    "Training until validation scores don't improve for ## rounds",
    "Will train until valid-logloss hasn't improved in ## rounds.",
    "Stopping. Best iteration:",
    "Early stopping, best iteration is:",
    "#:\tlearn: 0.#######\ttest: 0.#######\tbest: 0.####### (#)\ttotal: ##.#ms\tremaining: #.##s",
    "##:\tlearn: 0.#######\ttest#: 0.#######\ttotal: #.#s\tremaining: #m #s",
    "bestTest = 0.#######",
    "bestIteration = ##",
    "Learning rate set to 0.0##",
    "Iteration ##, loss = #.########",
    "Validation score: 0.######",
    "-- Epoch #",
    "Norm: #.##, NNZs: #, Bias: -0.######, T: ###, Avg. loss: 0.######",
    "[#/###] # trees, ## leaves, max depth = #, train loss: 0.#####, val loss: 0.#####, in 0.0##s",
    "[CV #/#] END .....C=#, gamma=0.#;, score=0.### total time=   0.#s",
    "      Iter       Train Loss      OOB Improve   Remaining Time ",
    "         #           #.####           0.00##            0.##s",
    "Epoch #/#",
    "#/# ━━━━━━━━━━━━━━━━━━━━ #s #ms/step - accuracy: 0.#### - loss: #.####",
    "##/## [==============================] - #s #ms/step - loss: 0.#### - val_loss: 0.####",
    "Epoch #: 100%|██████████| #/# [00:0#<00:00, ##.##it/s, v_num=#, train_loss=0.###]",
    "Seed set to ##",
    "Train: # [ ##/### ( ##%)]  Loss: #.## (#.##)  Time: 0.###s  LR: #.###e-0#",
    "Test: [ #/#]  Time: 0.0## (0.0##)  Loss:  0.### ( 0.###)  Acc@1: ##.### ( ##.###)",
    "Test (EMA): [#/#]  Loss:  #.### (#.###)  Acc@1: ##.### (##.###)  Acc@5: ##.# (##.#)",
    "2024-0#-1# 1#:##:##,### INFO trainer - [#]\ttrain-auc:0.###",
    "I11## 1#:##:##.###### ### x.py:##] Iteration #, loss = 0.##",
    "[1#:##:##] WARNING: learner.cc:###: Parameters: { n_estimators } are not used.",
    "epoch # step ### loss=0.## lr=#.#e-0#",
]
DIGITS = "0123456789"


def _fill(template: str, rng: random.Random) -> str:
    return "".join(rng.choice(DIGITS) if c == "#" else c for c in template)


@st.composite
def batches(draw: Any) -> tuple[list[str], set[int], list[float | None] | None]:
    """Lines from a few templates (and free-form ones), each repeated with other digits;
    a few line indices an earlier parser claimed; envelope timestamps or none."""
    chosen = draw(st.lists(st.sampled_from(TEMPLATES), min_size=2, max_size=10))
    free = draw(
        st.lists(
            st.text(alphabet="[]\t:'s#._-+e aclorsuv/", min_size=1, max_size=30),
            max_size=3,
        )
    )
    rng = random.Random(draw(st.integers(0, 2**32)))
    lines = [_fill(t, rng) for t in chosen + free for _ in range(draw(st.integers(3, 9)))]
    while len(lines) < 80:
        lines.append(_fill(rng.choice(chosen), rng))
    rng.shuffle(lines)
    if draw(st.booleans()):  # runs of one template, as training logs print them
        lines.sort(key=lambda line: re.sub(r"\d", "0", line))
    rate = draw(st.sampled_from([0.0, 0.2]))
    claimed = {i for i in range(len(lines)) if rng.random() < rate}
    ts = [rng.choice([None, 1.7e9 + i]) for i in range(len(lines))] if rng.random() < 0.3 else None
    return lines, claimed, ts


def _records(p: DeclarativeParser, lines: list[str], claimed: set[int], ts: Any) -> Any:
    """Every row ``p`` emits over ``lines`` in two batches (in order), and its state."""
    offsets = [i * 100 for i in range(len(lines))]
    out = Emitter()
    out.parser = p.name
    state = p.new_state()
    half = len(lines) // 2 if len(lines) >= 160 else len(lines)
    for start in range(0, len(lines), half):
        stop = start + half
        batch = LineBatch(lines[start:stop], offsets[start:stop], ts[start:stop] if ts else None)
        out.claimed = {offsets[i] for i in claimed if start <= i < stop}
        out.claim_lines = True
        p.parse(batch, state, out)
    rows = {
        name: [
            tuple("nan" if isinstance(v, float) and math.isnan(v) else v for v in row)
            for row in zip(*table.data.values(), strict=True)
        ]
        for name, table in out.tables().items()
    }
    return rows, state


@contextlib.contextmanager
def _runs_read() -> Iterator[list[Any]]:
    """What each ``declarative_groups.read_run`` call returned while in the block."""
    seen: list[Any] = []
    read_run = groups.read_run

    def spy(*args: Any) -> Any:
        got = read_run(*args)
        seen.append(got)
        return got

    groups.read_run = spy
    try:
        yield seen
    finally:
        groups.read_run = read_run


@contextlib.contextmanager
def _reading(how: str) -> Iterator[None]:
    """Planned lines read in groups even in small batches ("groups"), never ("lines")."""
    saved = groups.MIN_RUN, groups.MIN_GROUP, groups.MIN_GROUPED, groups._read
    read = groups._read

    def strict(*args: Any) -> Any:
        """A failure of the group reading is a bug, not a reason to read line by line."""
        try:
            return read(*args)
        except groups._Unfit:
            raise
        except Exception as e:
            raise AssertionError(f"group reading failed: {e!r}") from e

    if how == "groups":
        groups.MIN_RUN, groups.MIN_GROUP = 1, 3
        groups.MIN_GROUPED = 0.0
        groups._read = strict
    else:
        groups.MIN_RUN = 1 << 30
    try:
        yield
    finally:
        groups.MIN_RUN, groups.MIN_GROUP, groups.MIN_GROUPED, groups._read = saved


def _three_ways(p: DeclarativeParser, lines: list[str], claimed: set[int], ts: Any) -> None:
    """Groups, plans line by line and plain regexes give the same rows and state."""
    with _reading("groups"):
        grouped = _records(p, lines, claimed, ts)
    with _reading("lines"):
        planned = _records(p, lines, claimed, ts)
    p.by_shape = False
    try:
        plain = _records(p, lines, claimed, ts)
    finally:
        p.by_shape = True
    assert grouped == planned, p.name
    assert planned == plain, p.name


@pytest.fixture(scope="module")
def builtins() -> list[DeclarativeParser]:
    return load_parser_dir(builtin_parser_dir(), trusted=True)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=batches())
def test_reading_by_shape_gives_the_records_of_reading_each_line(
    builtins: list[DeclarativeParser], batch: Any
) -> None:
    lines, claimed, ts = batch
    for p in builtins:
        _three_ways(p, lines, claimed, ts)


def test_long_runs_of_planned_lines_are_read_in_groups(
    builtins: list[DeclarativeParser],
) -> None:
    """With the real thresholds: eval lines of one shape, a few odd ones among them, read
    as columns; the step context carries over into the next batch."""
    rng = random.Random(11)
    templates = [TEMPLATES[0], TEMPLATES[1], TEMPLATES[5], TEMPLATES[9], "Epoch #/#"]
    weights = [40, 10, 40, 1, 1]
    lines = [_fill(rng.choices(templates, weights)[0], rng) for _ in range(5000)]
    ts = [rng.choice([None, 1.7e9 + i]) for i in range(len(lines))]
    with _runs_read() as seen:
        for p in builtins:
            if p.name in ("xgboost", "lightgbm"):
                grouped = _records(p, lines, {3, 5, 700}, ts)
                with _reading("lines"):
                    assert grouped == _records(p, lines, {3, 5, 700}, ts), p.name
    assert seen and all(got is not None for got in seen)


def test_the_bench_shapes_are_read_by_plan(builtins: list[DeclarativeParser]) -> None:
    """The shortcut is taken where it should: eval lines of xgboost and LightGBM, MLP lines."""
    rng = random.Random(7)
    lines = [_fill(t, rng) for t in TEMPLATES[:1] + TEMPLATES[5:6] + TEMPLATES[19:21] * 40]
    batch = LineBatch(lines, list(range(len(lines))))
    assert batch.shape_ids() is not None
    by_name = {p.name: p for p in builtins}
    for name, line in (("xgboost", lines[0]), ("lightgbm", lines[1]), ("sklearn", lines[2])):
        plan = by_name[name]._shapes.plan(line)
        assert plan, (name, line)
    # an N/N bar is a matter of digits: keras reads it line by line
    keras = by_name["keras"]._shapes
    assert keras.plan("23/23 - 0s - loss: 0.6000") is None
    assert keras.plan("Epoch 1/8") is None  # it opens a section
    # a line with a log prefix is stripped line by line
    assert by_name["xgboost"]._shapes.plan("2024-01-01 10:00:00,123 INFO x - [1]\ta:0.1") is None


@pytest.mark.parametrize(
    "pattern",
    [
        r"^\[(?P<step>\d+)\]\t",
        r"(?P<key>[^\t:]+):(?P<value>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(?=\t|\s*$)",
        r"^(?P<step>\d+):\t(?=(?:learn|test\d*): )",
        r"(?<![\w.])(?P<key>(?!v_num\b)[A-Za-z_][\w./\-]*)",
        r"[^\d\-/:]\S\W\s.[0-9a-f]",
        r"(?i)^epoch\b",
    ],
)
def test_patterns_that_read_every_digit_alike(pattern: str) -> None:
    assert digit_uniform(pattern)


@pytest.mark.parametrize(
    "pattern",
    [
        r"^(?P<done>\d+)/(?P=done)\s",  # compares two numbers
        r"epoch 1",
        r"[1-9]\d*",
        r"[0-5]",
        r"[^0]",
        r"\x31",
        r"(?(1)a|b)",
        r"(?=0)",
    ],
)
def test_patterns_that_tell_digits_apart(pattern: str) -> None:
    assert not digit_uniform(pattern)


def test_shape_reader_declines_rules_it_cannot_vouch_for(builtins: list[DeclarativeParser]) -> None:
    """once= rules, sub-runs and other record kinds are read line by line."""
    by_name = {p.name: p for p in builtins}
    sklearn: ShapeReader = by_name["sklearn"]._shapes
    assert sklearn.plan("[CV 1/2] END C=1, gamma=0.1;, score=0.812 total time=   0.0s") is None
    assert sklearn.plan("Fitting 5 folds for each of 6 candidates, totalling 30 fits") is None
    assert sklearn.plan("some line no rule reads") == ()


TRICKY = r"""
name = "tricky"
version = "1"
framework = "tricky"

[[section]]
name = "val"
start = '^== val (?P<tag>\w+) =='
max_lines = 3
bind = "tag"

[[table]]
name = "losses"
header = '^\s*iter\s+loss\b'
step = "iter"

[[rule]]
name = "epoch context"
match = '^epoch (?P<epoch>\S+)$'
emit = "context"

[[rule]]
name = "reset"
match = '^reset (?P<n>\d+)$'
emit = "context"
clear = ["step"]

[[rule]]
name = "section row"
section = "val"
match = '^(?P<tag>\w+) acc=(?P<value>{NUMBER})'
key = "val_acc"
value = "{value}"

[[rule]]
name = "a digit in the pattern"
match = '^run 7 (?P<value>{NUMBER})'
key = "seven"
value = "{value}"

[[rule]]
name = "a digit in the literal"
contains = ["v2:"]
match = 'v\d:(?P<value>{NUMBER})'
key = "v2"
value = "{value}"

[[rule]]
name = "filters and the whole line"
match = '^(?P<name>[A-Za-z_]+\d*) (?P<step>\d+) = (?P<value>{NUMBER})(?P<rest>.*)$'
items = [
  { key = "{name|snake}", value = "{value}" },
  { key = "{name}_{rest|strip}", value = "{value}" },
  { key = "line_{0|hash}", value = "{step}" },
]
stop = false

[[rule]]
name = "the same line, context untouched"
match = '^(?P<name>[A-Za-z_]+\d*) (?P<step>\d+) = '
key = "again_{step}"
value = "{step}"
set_context = false

[[rule]]
name = "pairs in a group, a step per pair"
match = '^multi (?P<body>.*)$'
pairs = '(?P<key>[a-z]+\d?)@(?P<step>\w+)=(?P<value>{NUMBER})'
pairs_in = "body"
key = "{key}"
value = "{value}"

[[rule]]
name = "a value that is not always a number"
match = '^val (?P<key>\w+) (?P<value>\S+)$'
key = "{key}"
value = "{value}"

[[rule]]
name = "a step that may be a word"
match = '^step (?P<step>\w+): loss=(?P<value>{NUMBER})'
key = "loss"
value = "{value}"

[[rule]]
name = "a param"
match = '^lr=(?P<lr>\S+)$'
emit = "param"
key = "lr"
value = "{lr}"

[[rule]]
name = "lookbehind and a back reference"
match = '^(?P<done>\d+)/(?P=done) (?<![\w.])(?P<key>[a-z]+)=(?P<value>{NUMBER})'
key = "{key}"
value = "{value}"
step = "none"
"""

TRICKY_LINES = [
    "epoch #",
    "epoch #.#",
    "epoch x#",
    "reset #",
    "== val a# ==",
    "a# acc=0.##",
    "b# acc=0.##",
    "run # 0.##",
    "run 7 #.#",
    "x v#:#.##",
    "loss_A# ## = #.#e-0# tail #",
    "Acc ### = -#.##",
    "multi a#@##=0.# b@x#=#.## c@#=nan",
    "#/# ok=#.##",
    "##/## ok=#.## x",
    "val k# #.#",
    "val k# #x#",
    "val k# -#",
    "step ## : loss=#",
    "step ##: loss=#.#",
    "step a#: loss=#.#",
    "lr=0.00#",
    "  iter   loss",
    "  #   #.##",
    "  ##   #.##",
    "2024-01-0# 1#:00:00 INFO x - multi a@#=#",
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    chosen=st.lists(st.sampled_from(TRICKY_LINES), min_size=2, max_size=12),
    seed=st.integers(0, 2**32),
    sort=st.booleans(),
)
def test_a_team_parser_with_tricky_rules_reads_the_same_by_shape(
    tmp_path_factory: pytest.TempPathFactory, chosen: list[str], seed: int, sort: bool
) -> None:
    """Constructs the shortcut must decline or read exactly: digits in patterns and
    literals, back references, filters, ``{0}``, ``pairs_in``, a step per pair, ``clear``,
    values and steps that are not always numbers, sections, tables, log prefixes."""
    path = tmp_path_factory.mktemp("tricky") / "tricky.toml"
    path.write_text(TRICKY, encoding="utf-8")
    from loglake.parse.declarative import load_parser_file

    p = load_parser_file(path, trusted=True)
    rng = random.Random(seed)
    lines = [_fill(t, rng) for t in chosen for _ in range(rng.randint(3, 9))]
    while len(lines) < 80:
        lines.append(_fill(rng.choice(chosen), rng))
    rng.shuffle(lines)
    if sort:
        lines.sort(key=lambda line: re.sub(r"\d", "0", line))
    claimed = {i for i in range(len(lines)) if rng.random() < 0.1}
    _three_ways(p, lines, claimed, None)


def test_groups_and_single_lines_of_one_run_mix(builtins: list[DeclarativeParser]) -> None:
    """Iteration lines of two shapes (``Iteration 0``: a group; ``Iteration 00``: two lines
    read one by one) set the step of the score lines between them: one forward fill."""
    lines = [f"warming up {k}" for k in range(ARROW_MIN_LINES)]  # a batch scanned as Arrow
    for e in range(1, 12):
        lines.append(f"Iteration {e}, loss = 0.{e:08d}")
        lines.append(f"Validation score: 0.{e:06d}")
    with _runs_read() as seen:
        for p in builtins:
            _three_ways(p, lines, set(), None)
    assert any(got is not None for got in seen)
