"""Timestamp and log-prefix reading on prefixes real logging setups print."""

from __future__ import annotations

import calendar
import time

import pytest

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
    import random

    from loglake.parse import timestamps

    rng = random.Random(seed)
    for template in TEMPLATES:
        split_log_prefix(template)  # caches the shape from a valid line
        for _ in range(300):
            line = "".join(rng.choice("0123456789") if c.isdigit() else c for c in template)
            fresh = timestamps._split(line)[0]
            cached = split_log_prefix(line)
            assert cached == fresh, line


def test_a_year_zero_stamp_is_no_time_and_no_crash() -> None:
    """calendar.timegm rejects year 0: such a stamp reads like any impossible date."""
    line = "0000-01-01 00:00:00,000 - INFO - x - loss=1"
    month13 = line.replace("-01-01", "-13-01", 1)
    assert split_log_prefix(month13) == (None, None, month13)
    assert split_log_prefix(line) == (None, None, line)
