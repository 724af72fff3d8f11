"""The run-detail parsers' per-shape shortcuts read a batch as reading line by line does:
their own patterns matched per shape (answers remembered across batches) select the lines
the shared pass selects, and the artifacts parser's path spans per (shape, message start)
give the records ``announced`` gives line by line."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from loglake.parse.base import LineBatch
from loglake.parse.builtins import artifacts, datasets, facts, packages, params
from loglake.parse.records import Emitter
from loglake.parse.run_details import detail_lines, details_pattern

STAMPS = (
    "2026-11-26 16:23:{s:02d},196 - INFO - {logger} - ",
    "2026-1{m}-26 16:23:{s:02d},196 - INFO - {logger} - ",  # month 13-19: not a date
    "[rank{s}]: 2026-11-26 16:{s:02d}:04 INFO ",
    "",
    "  ",
)
LOGGERS = ("checkpoint", "trainer", "model.builder", "h5py", "s3fs")
MESSAGES = (
    "Saved checkpoint to /ckpt/run-{a}/step_{b}.pt ({c} bytes)",
    "Saving model checkpoint to out/checkpoint-{b}",
    "saving model to '/ckpt/epoch={a}-step={b}.ckpt' as top {a}",
    "Model weights saved in s{a}://bucket/w{b}.safetensors",
    "wrote predictions to out/preds_{a}.csv",
    "Checkpoint saved: ckpt{a}.h{a}",
    'File "/opt/x{a}.py", line {b}, in save',
    "exported model to /m/model_v{a}.onnx",
    "Saved {a} rows to hdf{a}/data.h5",
    "lr: 0.{a} epochs: {b} python train.py --lr 0.{a}",
    "{{'loss': 0.{a}, 'epoch': {b}}}",
    "config: {{'lr': 0.{a}, 'optimizer': 'adam'}}",
    "Loaded dataset from /data/train-{a}.parquet with {b} rows",
    "transformers=={a}.{b}.0 torch==2.{a}.0",
)


def _line(r: random.Random) -> str:
    stamp = r.choice(STAMPS).format(s=r.randint(0, 9), m=r.randint(0, 9), logger=r.choice(LOGGERS))
    msg = r.choice(MESSAGES).format(a=r.randint(0, 99), b=r.randint(0, 999), c=r.randint(0, 9))
    return stamp + msg


def _batches(seed: int, sizes: list[int]) -> list[list[str]]:
    r = random.Random(seed)
    templates = [_line(r) for _ in range(r.randint(3, 30))]
    out = []
    for size in sizes:
        lines = []
        for _ in range(size):
            t = r.choice(templates)
            lines.append("".join(str(r.randint(0, 9)) if c.isdigit() and r.random() < 0.5 else c
                                 for c in t))  # fmt: skip
        out.append(lines)
    return out


PATTERNS = [
    (params.CANDIDATES,),
    (artifacts.CANDIDATES,),
    (datasets._FORMS, datasets._HINTED),
    (facts._candidates({}),),
    (packages.CANDIDATES,),
]


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.lists(st.integers(64, 400), min_size=1, max_size=4))
def test_own_patterns_by_shape_select_the_lines_of_the_shared_pass(
    seed: int, sizes: list[int]
) -> None:
    for lines in _batches(seed, sizes):
        for patterns in PATTERNS:
            batch = LineBatch(lines, list(range(len(lines))))
            assert batch.shapes() is not None
            fresh = LineBatch(lines, list(range(len(lines))))
            assert detail_lines(batch, *patterns) == fresh.matching(details_pattern(), *patterns)


def test_detail_lines_without_shapes_use_the_shared_pass() -> None:
    words = ["".join(chr(97 + (i >> k) % 26) for k in (0, 5, 10)) for i in range(200)]
    lines = [f"saved {w} to /out/{w}.pt" if i % 9 == 0 else w for i, w in enumerate(words)]
    batch = LineBatch(lines, list(range(len(lines))))
    assert batch.shapes() is None  # no shape repeats
    assert detail_lines(batch, artifacts.CANDIDATES) == list(range(0, 200, 9))


def _artifacts(lines: list[str], size: int) -> tuple[dict[str, list], dict[str, list]]:
    parser = artifacts.ArtifactsParser()
    state = parser.new_state()
    out = Emitter()
    for start in range(0, len(lines), size):
        chunk = lines[start : start + size]
        parser.parse(LineBatch(chunk, list(range(start, start + len(chunk)))), state, out)
    return out.artifacts.data, out.errors.data


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(100, 600))
def test_artifact_spans_by_shape_give_the_records_of_each_line(seed: int, n: int) -> None:
    """Lines of one shape whose log prefix is a date or not (month 13), paths after s3/h5
    literals, stack frames: the same artifacts with shapes (one big batch) as without
    (batches too small to scan, every line through ``announced``)."""
    (lines,) = _batches(seed, [n])
    big = LineBatch(lines, list(range(len(lines))))
    assert big.shapes() is not None
    assert _artifacts(lines, len(lines)) == _artifacts(lines, 50)
