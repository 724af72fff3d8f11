"""Timestamp and log-prefix reading on prefixes real logging setups print."""

from __future__ import annotations

import calendar
import random
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loglake.parse.timestamps import leading_timestamp, split_log_prefix, strip_log_prefix

T0 = calendar.timegm((2026, 11, 27, 5, 15, 19))


@pytest.mark.parametrize(
    ("line", "ts", "rest"),
    [
        # Python logging's default asctime (crash_torch)
        (
            "2026-11-27 05:15:19,749 [INFO] trainer: epoch 1/5",
            T0 + 0.749,
            "[INFO] trainer: epoch 1/5",
        ),
        ("2026-11-27 05:15:19.749 | INFO | x", T0 + 0.749, "| INFO | x"),
        ("2026-11-27T05:15:19.749Z loss=1", T0 + 0.749, "loss=1"),
        ("2026-11-27T05:15:19+02:00 loss=1", T0 - 7200, "loss=1"),
        ("2026-11-27T05:15:19.5-0130 loss=1", T0 + 0.5 + 5400, "loss=1"),
        ("2026/11/27 05:15:19 msg", T0, "msg"),
        ("[2026-11-27 05:15:19] Epoch 3", T0, "Epoch 3"),
        ("[2026-11-27 05:15:19,749][__main__][INFO] - x", T0 + 0.749, "[__main__][INFO] - x"),
        # Optuna's colorlog prefix
        ("[I 2026-11-27 05:15:16,121] A new study created", T0 - 3 + 0.121, "A new study created"),
        # HF examples' datefmt="%m/%d/%Y %H:%M:%S"
        ("11/27/2026 05:15:19 - INFO - __main__ - x", T0, "- INFO - __main__ - x"),
    ],
)
def test_leading_timestamp(line: str, ts: float, rest: str) -> None:
    got, n = leading_timestamp(line)
    assert got == pytest.approx(ts, abs=1e-6)
    assert line[n:] == rest


def test_yearless_stamps_assume_a_recent_year() -> None:
    # absl/glog and detectron2 print no year; the result must be within the last year
    for line in ("I1127 05:15:16.121000 12345 train.py:12] msg", "[11/27 05:15:16 d2.engine]: x"):
        ts, n = leading_timestamp(line)
        assert ts is not None and n > 0
        assert time.time() - 366 * 86400 < ts < time.time() + 2 * 86400
        assert time.gmtime(ts)[1:6] == (11, 27, 5, 15, 16)


@pytest.mark.parametrize(
    "line",
    [
        "epoch 1/5 step 10 train_loss 0.5601",
        "23/23 ━━━━━━━━━━━━━━━━━━━━ 0s 3ms/step - accuracy: 0.3577",
        "[0]\ttrain-logloss:0.58078",
        "[3/10] loss 0.5",
        "2026-13-40 99:99:99 not a time",
        "12:30:00 no date",
        "",
        "  alpha: 0.0001",
        "[transformers] Model config",
    ],
)
def test_no_timestamp(line: str) -> None:
    assert leading_timestamp(line) == (None, 0)


@pytest.mark.parametrize(
    ("line", "level", "message"),
    [
        ("2026-11-27 05:15:19,749 [INFO] trainer: epoch 1/5 step 10", "INFO", "epoch 1/5 step 10"),
        (
            "2020-05-08 18:44:23,494 - mmdet - INFO - Epoch [1][50/7517]\tlr: 0.001",
            "INFO",
            "Epoch [1][50/7517]\tlr: 0.001",
        ),
        (
            "2021-01-01 10:00:00 | INFO | fairseq.trainer | begin training epoch 1",
            "INFO",
            "begin training epoch 1",
        ),
        ("2024-01-01 10:00:00.123 | INFO     | __main__:main:10 - loss 0.5", "INFO", "loss 0.5"),
        (
            "11/27/2026 05:15:19 - INFO - __main__ - ***** Running training *****",
            "INFO",
            "***** Running training *****",
        ),
        (
            "[2026-11-27 05:15:19,749][__main__][INFO] - Epoch 1 loss=0.3",
            "INFO",
            "Epoch 1 loss=0.3",
        ),
        (
            "[04/14 09:05:02] d2.utils.events INFO:  eta: 0:11:54  iter: 119",
            "INFO",
            "eta: 0:11:54  iter: 119",
        ),
        (
            "[04/05 01:30:24 d2.utils.events]:  eta: 0:03:35  iter: 19",
            None,
            "eta: 0:03:35  iter: 19",
        ),
        ("I1127 05:15:16.121000 12345 train.py:12] step 5 loss 0.3", "INFO", "step 5 loss 0.3"),
        ("[W 2026-11-27 05:15:16,121] Trial 3 failed", "WARNING", "Trial 3 failed"),
        ("INFO:root:loss: 0.5", "INFO", "loss: 0.5"),
        (
            "[INFO|trainer.py:2128] 2026-11-27 05:15:19,749 >>   Num examples = 3,668",
            "INFO",
            "Num examples = 3,668",
        ),
        (
            "INFO:lightning.pytorch.utilities.rank_zero:GPU available: True",
            "INFO",
            "GPU available: True",
        ),
        (
            "INFO: GPU available: True (cuda), used: True",
            "INFO",
            "GPU available: True (cuda), used: True",
        ),
        ("WARNING: something odd", "WARNING", "something odd"),
        ("[rank: 0] Seed set to 42", None, "Seed set to 42"),
        ("[rank1]: Traceback (most recent call last):", None, "Traceback (most recent call last):"),
        ("0: 2026-11-27 05:15:19 INFO step 3", "INFO", "step 3"),
        # a logger-like word before a number or a dict is a key, not a logger
        ("2026-11-27 05:15:19 [INFO] loss: 0.5", "INFO", "loss: 0.5"),
        ('2026-11-27 05:15:19 [INFO] config: {"lr": 0.1}', "INFO", 'config: {"lr": 0.1}'),
        (
            "2026-11-27 05:15:19 [INFO] sampler: TPESampler(seed=42)",
            "INFO",
            "sampler: TPESampler(seed=42)",
        ),
    ],
)
def test_split_log_prefix(line: str, level: str | None, message: str) -> None:
    _, got_level, got = split_log_prefix(line)
    assert (got_level, got) == (level, message)
    assert strip_log_prefix(line) == message


@pytest.mark.parametrize(
    "line",
    [
        "  hidden_layer_sizes: [64, 32]",  # indentation of a config block survives
        "Validation score: 0.305556",
        "epoch 1/5 step 10 train_loss 0.5601",
        "{'loss': '3.762', 'epoch': '0.05'}",
        "[transformers] Model config: bos_token_id",
        'Model: "sequential"',
    ],
)
def test_lines_without_prefix_are_unchanged(line: str) -> None:
    assert strip_log_prefix(line) == line
    assert split_log_prefix(line) == (None, None, line)


TEMPLATES = [
    "2026-11-27 05:15:19,749 - INFO - trainer - epoch 3 loss=0.5",
    "2026-11-27T05:15:19.749Z loss=1",
    "2026-11-27T05:15:19+02:00 loss=1",
    "2026-11-27T05:15:19.5-0130 step 4",
    "2026/11/27 05:15:19 msg",
    "[2026-11-27 05:15:19] Epoch 3",
    "[I 2026-11-27 05:15:16,121] Trial 3 finished",
    "11/27/2026 05:15:19 - INFO - __main__ - x",
    "11/27/2026, 05:15:19 - WARNING - y",
    "[11/27 05:15:19 d2.engine]: iter: 19",
    "I1127 05:15:16.121000 12345 train.py:12] loss 3",
    "[rank0]: 2026-11-27 05:15:19,749 INFO loss=2",
    "0: 2026-11-27 05:15:19 step 2",
    "[INFO|configuration_utils.py:731] 2026-11-27 05:15:19,749 >> hello",
]


@pytest.mark.parametrize("seed", range(4))
def test_a_cached_line_shape_splits_like_a_fresh_split(seed: int) -> None:
    """A line of a cached shape is read from remembered places (its stamp's fields and
    prefix length); every digit changed at random, impossible dates included, it must give
    what splitting the line afresh gives."""
    from loglake.parse import timestamps

    rng = random.Random(seed)
    for template in TEMPLATES:
        split_log_prefix(template)  # caches the shape from a valid line
        for _ in range(300):
            line = "".join(rng.choice("0123456789") if c.isdigit() else c for c in template)
            fresh = timestamps.split_shape(line)[0]
            cached = split_log_prefix(line)
            assert cached == fresh, line


def test_a_year_zero_stamp_is_no_time_and_no_crash() -> None:
    """calendar.timegm rejects year 0: such a stamp reads like any impossible date."""
    line = "0000-01-01 00:00:00,000 - INFO - x - loss=1"
    month13 = line.replace("-01-01", "-13-01", 1)
    assert split_log_prefix(month13) == (None, None, month13)
    assert split_log_prefix(line) == (None, None, line)


# -- a shape's split reused for its lines (``ShapeSplit``): the fast paths against a fresh split

_STAMPS = {
    "ymd": "{Y}-{M}-{D} {h}:{mi}:{s}{f}{z}",
    "iso": "{Y}-{M}-{D}T{h}:{mi}:{s}{f}{z}",
    "slash": "{Y}/{M}/{D} {h}:{mi}:{s}{f}",
    "mdy": "{M}/{D}/{Y} {h}:{mi}:{s}",
    "mdy_comma": "{M}/{D}/{Y}, {h}:{mi}:{s}",
    "bracket": "[{Y}-{M}-{D} {h}:{mi}:{s}{f}]",
    "optuna": "[I {Y}-{M}-{D} {h}:{mi}:{s}{f}]",
    "detectron": "[{M}/{D} {h}:{mi}:{s} d2.engine]:",
    "glog": "I{M}{D} {h}:{mi}:{s}{f} 12345 train.py:12]",
    "rank": "[rank0]: {Y}-{M}-{D} {h}:{mi}:{s}{f}",
    "hf": "[INFO|trainer.py:731] {Y}-{M}-{D} {h}:{mi}:{s}{f} >>",
}


@st.composite
def _template(draw: st.DrawFn) -> str:
    """A log line whose stamp may be no date at all (month 13, day 32, year 0000, hour 24,
    second 61), with a zone, a fraction of 1-9 digits, a level and a logger or none."""
    layout = draw(st.sampled_from(sorted(_STAMPS)))
    frac = draw(st.sampled_from(["", ",", "."]))
    fields = {
        "Y": draw(st.sampled_from(["2026", "0000", "1999", "9999"])),
        "M": draw(st.sampled_from(["11", "01", "12", "13", "00"])),
        "D": draw(st.sampled_from(["27", "01", "31", "32", "00"])),
        "h": draw(st.sampled_from(["05", "23", "24"])),
        "mi": draw(st.sampled_from(["15", "59", "60"])),
        "s": draw(st.sampled_from(["19", "59", "60", "61"])),
        "f": frac + "7" * draw(st.integers(1, 9)) if frac else "",
        "z": draw(st.sampled_from(["", "Z", "+05:30", "-0130", " UTC"])),
    }
    level = draw(
        st.sampled_from(["", " - INFO - trainer -", " INFO", " [WARNING]", " ERROR:", " |"])
    )
    message = draw(
        st.sampled_from(
            ["epoch 3 loss=0.5", "  indented: 4", "Saved model to /ckpt/step_12.pt", "", "x"]
        )
    )
    return _STAMPS[layout].format(**fields) + level + " " + message


def _fresh_message(line: str) -> str:
    """``strip_log_prefix`` computed without any cache."""
    from loglake.parse import timestamps

    c = line[:1]
    if not (c.isdigit() or c == "[" or c.isupper()):
        return line
    return timestamps.split_shape(line)[0][2]


@settings(max_examples=150, deadline=None)
@given(_template(), st.randoms(use_true_random=False))
def test_lines_of_one_shape_split_by_its_split_like_a_fresh_split(
    template: str, rng: random.Random
) -> None:
    """Lines of one shape, their digits drawn at random (some dates valid, some not, the
    shape first met on either): every fast path gives what a fresh split gives."""
    from loglake.parse import timestamps
    from loglake.parse.base import LineBatch
    from loglake.parse.values import shape_of

    timestamps._SPLITS.clear()  # the shape is first met on this example's first line
    lines = [template] + [
        "".join(rng.choice("0123456789") if c.isdigit() else c for c in template) for _ in range(40)
    ]
    rng.shuffle(lines)
    fresh = [timestamps.split_shape(line)[0] for line in lines]
    for line, want in zip(lines, fresh, strict=True):
        assert split_log_prefix(line) == want, line
        assert timestamps.message_at(line) == len(line) - len(want[2]), line
    batch = LineBatch(lines, list(range(len(lines))))
    ids: dict[bytes, int] = {}
    shape_ids = [ids.setdefault(shape_of(line), len(ids)) for line in lines]
    everything = list(range(len(lines)))
    starts = batch.message_starts(everything, shape_ids)
    assert starts == batch.message_starts(everything, None)
    for i, line in enumerate(lines):
        want = _fresh_message(line)
        assert line[starts[i] :] == want == batch.message(i), line
        assert batch.prefix(i) == fresh[i], line
        assert batch.message(i) == want and batch.message_at(i) == starts[i], line


def test_message_starts_by_a_real_batch_shape_ids() -> None:
    """With the ids of the batch's own line shapes (one Arrow take), an impossible date
    among valid ones of its shape, and lines no prefix can start."""
    from loglake.parse.base import LineBatch
    from loglake.parse.run_details import line_shape_ids

    lines = []
    for k in range(200):
        day = "32" if k % 7 == 0 else f"{k % 28 + 1:02d}"
        lines.append(f"2026-11-{day} 05:15:{k % 60:02d},{k:03d} - INFO - trainer - saved {k}")
        lines.append(f"I11{day} 05:15:{k % 60:02d}.{k:06d} 12345 train.py:12] step {k}")
        lines.append(f"| INFO {k}")
    batch = LineBatch(lines, list(range(len(lines))))
    assert batch.shapes() is not None
    picked = list(range(0, len(lines), 2))
    starts = batch.message_starts(picked, line_shape_ids(batch, picked))
    for i, at in zip(picked, starts, strict=True):
        assert lines[i][at:] == strip_log_prefix(lines[i]) == _fresh_message(lines[i])
    assert lines[0][starts[0] :] == lines[0]  # day 32: no stamp, and no prefix
    assert lines[6][starts[3] :] == "saved 2"


def test_shape_split_names_where_a_dated_stamp_is() -> None:
    from loglake.parse.timestamps import dated_as, minute_seconds, shape_split, zone_seconds

    line = "2026-11-27T05:15:19.749+05:30 INFO trainer - loss=1"
    how = shape_split(line)
    assert how is not None and how.fields is not None and how.level == "INFO"
    assert line[how.message_at :] == "loss=1"
    f = how.fields
    assert line[f.minute_start : f.minute_end] == "2026-11-27T05:15"
    assert line[f.sec_start : f.sec_end] == "19"
    assert f.frac is not None and line[f.frac[0] : f.frac[1]] == "749"
    assert f.zone is not None and zone_seconds(line[f.zone[0] : f.zone[1]]) == 19800
    assert minute_seconds("2026", "11", "27", "05", "15") == T0 - 19
    assert minute_seconds("2026", "13", "27", "05", "15") is None
    assert dated_as(line, how) and not dated_as(line.replace("-27T", "-32T"), how)


def test_a_shape_first_met_with_no_date_learns_its_split_from_a_later_line() -> None:
    from loglake.parse import timestamps
    from loglake.parse.values import shape_of

    bad = "2026-13-27 05:15:19,749 - INFO - trainer - loss=1"
    good = bad.replace("-13-", "-11-")
    timestamps._SPLITS.clear()
    assert split_log_prefix(bad) == (None, None, bad)
    assert timestamps._SPLITS[shape_of(bad)] is None  # no split learnt from a non-date
    assert split_log_prefix(good) == (T0 + 0.749, "INFO", "loss=1")
    assert timestamps._SPLITS[shape_of(bad)] is not None
    assert split_log_prefix(bad) == (None, None, bad)
