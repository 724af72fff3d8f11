"""The artifacts parser's batch path gives the rows of reading line by line.

With line shapes, each line's message start comes from ``LineBatch.message_starts`` (its
stamp's date checked as Arrow columns, ``loglake.parse.stamp_columns``), its path from its
(shape, start) key's span, and the rows go out through ``Emitter.artifact_rows``. Without
shapes (batches too small to scan) every line goes through ``announced`` and
``Emitter.artifact``. Both must give the same rows and errors, whatever the stamps (dates
that are none, seconds 60-99, digits no ``int`` cast reads alike), repeated paths, a path
announced with two kinds, and the per-file memory forgetting its older half mid-batch.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loglake.parse import bounded
from loglake.parse.base import LineBatch
from loglake.parse.builtins import artifacts
from loglake.parse.records import Emitter
from loglake.parse.timestamps import split_shape

STAMPS = (
    "2026-11-{d} 16:{m}:{s},196 - INFO - checkpoint - ",
    "2026-{mo}-26 16:23:{s},196 - INFO - trainer - ",  # month 13-19: no date, no prefix
    "[2026-11-{d} 16:{m}:{s}] INFO ",
    "I11{d} 16:{m}:{s}.123456 12345 train.py:12] ",
    "é 2026-11-{d} 16:{m}:{s} INFO ",  # a character before the stamp: no prefix
    "2026-11-{d}T16:{m}:{s}Z INFO ",
    "2026-11-{d} 16:{m}:{s} ",
    "",
    "  ",
)
MESSAGES = (
    "Saved checkpoint to /ckpt/run-{a}/step_{b}.pt ({c} bytes)",
    "Saved checkpoint to /ckpt/run-{a}/step_{a}.pt",  # the same path again and again
    "Model weights saved in /ckpt/run-{a}/step_{a}.pt",  # ... and as a model, not a checkpoint
    "Saving model checkpoint to out/checkpoint-{b}",
    "saving model to '/ckpt/epoch={a}-step={b}.ckpt' as top {a}",
    "Model weights saved in s{a}://bucket/w{b}.safetensors",
    "wrote predictions to out/preds_{a}.csv",
    "Saved {a} rows to hdf{a}/data.h{a}",
    'File "/opt/x{a}.py", line {b}, in save',
    "epoch {a} loss 0.{b}",
)
SECONDS = ("{s}", "{s}", "{s}", "6{a}", "9{a}", "٣{a}")  # 60-99: no date; Arabic-Indic digit


def _lines(seed: int, n: int) -> list[str]:
    r = random.Random(seed)
    templates = [(STAMPS[0], SECONDS[0], MESSAGES[0])]  # at least one line announces a file
    for _ in range(r.randint(1, 11)):
        stamp, msg = r.choice(STAMPS), r.choice(MESSAGES)
        if not stamp.strip():
            msg = r.choice(("  ", "\t", "")) + msg.replace("File", r.choice(("File", "at")))
        templates.append((stamp, r.choice(SECONDS), msg))
    lines = []
    for _ in range(n):
        stamp, sec, msg = r.choice(templates)
        a = r.randint(0, 9)  # few values: paths repeat within and across batches
        s = sec.format(s=f"{r.randint(0, 59):02d}", a=a)
        head = stamp.format(
            d=f"{r.choice((1, 26, 31, 32, 39)):02d}", m=f"{r.randint(0, 59):02d}", s=s,
            mo=f"1{r.randint(0, 9)}",
        )  # fmt: skip
        lines.append(head + msg.format(a=a, b=r.randint(0, 99), c=r.randint(0, 9)))
    return lines


def _parse(lines: list[str], size: int) -> tuple[dict[str, list], dict[str, list]]:
    parser = artifacts.ArtifactsParser()
    state = parser.new_state()
    out = Emitter()
    out.parser = "artifacts@1"
    for start in range(0, len(lines), size):
        chunk = lines[start : start + size]
        parser.parse(LineBatch(chunk, list(range(start, start + len(chunk)))), state, out)
    return out.artifacts.data, out.errors.data


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(64, 700), st.sampled_from([4, 10, 20_000]))
def test_batch_path_gives_the_rows_of_each_line(seed: int, n: int, cap: int) -> None:
    """One batch with shapes, or batches of 40 lines read one by one; ``cap``: the memory
    of reported paths forgets its older half every few rows (4, 10) or never (20 000)."""
    lines = _lines(seed, n)
    assert LineBatch(lines, list(range(n))).shapes() is not None
    saved = bounded.SEEN_CAP
    bounded.SEEN_CAP = cap
    try:
        batch_rows = _parse(lines, n)
        line_rows = _parse(lines, 40)
    finally:
        bounded.SEEN_CAP = saved
    assert batch_rows == line_rows
    assert batch_rows[0]["path"]  # the lines do announce files


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(64, 400))
def test_message_starts_by_columns_are_message_at(seed: int, n: int) -> None:
    """Arrow's date check per stamp layout and ``message_at`` line by line agree: dates that
    are none (day 32, month 13, second 60-99), seconds no Arrow cast reads (``٣``), lines
    that cannot start with a prefix."""
    lines = _lines(seed, n)
    batch = LineBatch(lines, list(range(n)))
    ids = batch.shape_ids()
    assert ids is not None
    picked = list(range(0, n, 3))
    starts = batch.message_starts(picked, [ids[i] for i in picked])
    for i, at in zip(picked, starts, strict=True):
        assert at == batch.message_at(i), lines[i]
        text = lines[i]
        c = text[:1]
        whole = not (c.isdigit() or c == "[" or c.isupper())
        assert text[at:] == (text if whole else split_shape(text)[0][2]), text


def test_dates_that_are_none_split_as_the_line_says() -> None:
    """A shape's lines whose minute or second is no date keep their prefix in the message."""
    good = [f"2026-11-26 16:{m}:{s:02d},196 - INFO - ckpt - saved to /c/{s}.pt" for s in range(60)
            for m in (23, 24)]  # fmt: skip
    bad = [
        "2026-11-26 16:23:61,196 - INFO - ckpt - saved to /c/61.pt",
        "2026-11-36 16:23:01,196 - INFO - ckpt - saved to /c/x.pt",
        "2026-11-26 16:73:01,196 - INFO - ckpt - saved to /c/y.pt",
    ]  # fmt: skip
    lines = good + bad
    batch = LineBatch(lines, list(range(len(lines))))
    ids = batch.shape_ids()
    assert ids is not None
    everything = list(range(len(lines)))
    starts = batch.message_starts(everything, ids)
    assert starts == [batch.message_at(i) for i in everything]
    assert lines[0][starts[0] :] == "saved to /c/0.pt"
    assert [lines[120 + k][starts[120 + k] :] for k in range(3)] == bad


def test_artifact_rows_are_the_rows_of_artifact_calls() -> None:
    paths = ["/c/a.pt", "out/checkpoint-5", "/c/a.pt"]
    offsets = [3, 9, 27]
    kinds = ["checkpoint", "checkpoint", "model"]
    one, many = Emitter(), Emitter()
    one.parser = many.parser = "artifacts@1"
    many.artifact("/first", 1, kind="file")
    one.artifact("/first", 1, kind="file")
    for path, offset, kind in zip(paths, offsets, kinds, strict=True):
        one.artifact(path, offset, kind=kind, sub="trial-1")
    many.artifact_rows(paths, offsets, kinds, sub="trial-1")
    assert many.artifacts.data == one.artifacts.data
    with pytest.raises(ValueError, match="one length"):
        many.artifact_rows(paths, offsets[:2], kinds)
