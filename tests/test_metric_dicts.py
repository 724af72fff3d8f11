"""The params parser's per-shape shortcut for metrics dict lines (``loglake.parse.metric_dicts``)
agrees with reading each line: a line it skips is one ``_line`` would read as a metrics dict,
and the parser emits the same records whether a batch has shapes or not."""

from __future__ import annotations

import itertools
import json
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from loglake.parse.base import LineBatch
from loglake.parse.builtins.params import ParamsParser, _command
from loglake.parse.metric_dicts import LEADING_ZERO, quiet_lines, quiet_shape
from loglake.parse.param_dumps import mapping_looks_like_metrics
from loglake.parse.records import Emitter
from loglake.parse.structured import parse_mapping

SHAPE = str.maketrans("123456789", "000000000")
_LEADING_ZERO_RE = re.compile(LEADING_ZERO)  # the same meaning in Python's re for ASCII text

KEYS = (
    "loss", "eval_loss", "step", "epoch", "lr", "acc1", "layer_2", "name", "tokens_seen",
    "eval_runtime", "cmd", "1", "f1", "top5", "learning_rate", "grad_norm", "valid_0",
)  # fmt: skip
DIGITS = st.text("0123456789", min_size=1, max_size=4)


@st.composite
def values(draw: st.DrawFn, depth: int = 0) -> str:
    kind = draw(st.sampled_from(["int", "float", "exp", "str", "word", "lit", "dict", "neg"]))
    if kind == "int":
        return draw(DIGITS)
    if kind == "neg":
        return "-" + draw(DIGITS)
    if kind == "float":
        return f"{draw(DIGITS)}.{draw(DIGITS)}"
    if kind == "exp":
        return f"{draw(DIGITS)}.{draw(DIGITS)}e-{draw(DIGITS)}"
    if kind == "str":
        return f'"{draw(DIGITS)}.{draw(DIGITS)}"'
    if kind == "word":
        text = draw(st.sampled_from(["adam", "v0", "/usr/bin/python train.py", "\\u0031", "x 05"]))
        return json.dumps(text) if "\\" not in text else f'"{text}"'
    if kind == "lit":
        return draw(st.sampled_from(["true", "null", "NaN", "-Infinity"]))
    if depth > 1:
        return draw(DIGITS)
    return draw(dicts(depth + 1))


@st.composite
def dicts(draw: st.DrawFn, depth: int = 0) -> str:
    items = draw(st.lists(st.tuples(st.sampled_from(KEYS), values(depth)), min_size=0, max_size=4))
    sep = draw(st.sampled_from([", ", ","]))
    return "{" + sep.join(f'"{k}": {v}' for k, v in items) + "}"


@st.composite
def dict_lines(draw: st.DrawFn) -> str:
    line = draw(dicts())
    if draw(st.booleans()):  # a Python dict repr instead of JSON
        line = line.replace('"', "'")
    return line + draw(st.sampled_from(["", " ", "\t"]))


def reads_as_metrics(line: str) -> bool:
    """What params' ``_line`` concludes of a line starting with ``{`` once training is on:
    no command line, and a mapping that looks like metrics."""
    body = line.strip()
    if _command(body, 0, Emitter()):
        return False
    obj = parse_mapping(body)
    return obj is not None and mapping_looks_like_metrics(obj)


@settings(max_examples=800, deadline=None)
@given(dict_lines())
def test_a_line_of_a_quiet_shape_reads_as_metrics(line: str) -> None:
    if quiet_shape(line.translate(SHAPE)) and not _LEADING_ZERO_RE.search(line):
        assert reads_as_metrics(line), line


@settings(max_examples=300, deadline=None)
@given(dict_lines(), st.lists(st.text("0123456789", min_size=1, max_size=1), min_size=80))
def test_lines_of_one_shape_differ_only_where_leading_zeros_are(
    template: str, digits: list[str]
) -> None:
    """Every line of a quiet shape (digits replaced at random, leading zeros too) without a
    LEADING_ZERO match reads as metrics; quiet_lines picks exactly those of a batch."""
    it = itertools.cycle(digits)
    lines = ["".join(next(it) if c.isdigit() else c for c in template) for _ in range(80)]
    batch = LineBatch(lines, list(range(len(lines))))
    picked = quiet_lines(batch, list(range(len(lines))))
    for i, line in enumerate(lines):
        if i in picked:
            assert reads_as_metrics(line), line
    if quiet_shape(template.translate(SHAPE)) and batch.shapes() is not None:
        assert picked == [i for i, s in enumerate(lines) if not _LEADING_ZERO_RE.search(s)]


def test_known_shapes() -> None:
    assert quiet_shape('{"step": 00000, "epoch": 000, "loss": 0.000000, "tokens_seen": 000}')
    assert quiet_shape("{'loss': '0.000', 'grad_norm': '0.000', 'epoch': '00.00'}")
    assert quiet_shape("{'eval_loss': 0.000, 'eval_runtime': 0.0000, 'epoch': 000.00}")
    assert not quiet_shape("{'lr': 0.000, 'optimizer': 'adam'}")  # settings
    assert not quiet_shape('{"layer_0": 0.0}')  # a key with a digit: another line's key differs
    assert not quiet_shape('{"loss": "\\u0030.0"}')  # escapes: digits in them are text
    assert not quiet_shape('{"cmd": "/bin/python x.py", "loss": 0.0}')
    assert not quiet_shape("{'loss': tensor(0.0000)}")  # read by ast, not JSON
    assert not quiet_shape("epoch 0: {'loss': 0.0}")


def _records(lines: list[str], size: int) -> tuple[dict[str, list], dict[str, list]]:
    parser = ParamsParser()
    state = parser.new_state()
    out = Emitter()
    out.parser = "params"
    offsets = [i * 10 for i in range(len(lines))]
    for start in range(0, len(lines), size):
        parser.parse(LineBatch(lines[start : start + size], offsets[start : start + size]),
                     state, out)  # fmt: skip
    return out.params.data, out.errors.data


@settings(max_examples=60, deadline=None)
@given(
    st.lists(dict_lines(), min_size=1, max_size=6),
    st.lists(st.integers(0, 9), min_size=1),
    st.sampled_from(
        [
            "epoch 1 step 5 loss=0.5",
            "config: {'lr': 0.1, 'optimizer': 'adam'}",
            "Hyperparameters:",
            "  lr: 0.1",
            "TrainingArguments(",
            "python train.py --lr 0.1",
            "{",
        ]
    ),
)
def test_params_parser_emits_the_same_with_and_without_shapes(
    templates: list[str], picks: list[int], other: str
) -> None:
    """A big batch (shapes, skipped lines) and batches too small for shapes (every
    candidate read) give the same params and errors, whatever lines surround them."""
    lines = []
    for k in range(300):
        t = templates[k % len(templates)]
        d = str(picks[k % len(picks)])
        lines.append(re.sub(r"\d", d, t) if k % 3 else t)
        if k % 37 == 5:
            lines.append(other)
    assert _records(lines, len(lines)) == _records(lines, 50)
