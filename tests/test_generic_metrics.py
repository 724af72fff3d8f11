"""The generic metrics parser on lines real libraries print, and on every corpus log.

Each case lists EVERYTHING the parser must emit for its lines: an extra metric is a failure
as much as a missing one. Lines run through the real pipeline (``FileParsers``), with the
params parser alongside as in production, so claims between the two are exercised too.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from loglake.parse.base import BaseParser, LineBatch
from loglake.parse.builtins.generic_metrics import GenericMetricsParser
from loglake.parse.builtins.params import ParamsParser
from loglake.parse.pipeline import FileParsers
from loglake.parse.records import Emitter
from loglake.parse.values import normalize_key
from loglake.tail.cleanup import clean_lines

CORPUS = Path(__file__).parent / "corpus"

Row = tuple[str, float, int | None, float | None]


def run(lines: list[str], *, batch: int = 0, extra: list[Any] | None = None) -> Emitter:
    """Parse ``lines`` as one file, in batches of ``batch`` lines (0: one batch), with the
    parser state round-tripped through JSON between batches as the checkpoint does."""
    parsers = [GenericMetricsParser(), ParamsParser(), *(extra or [])]
    out = Emitter()
    offsets = [i * 100 for i in range(len(lines))]
    size = batch or max(len(lines), 1)
    states = None
    for start in range(0, len(lines), size):
        fp = FileParsers(parsers, states)
        fp.feed(LineBatch(lines[start : start + size], offsets[start : start + size]), out)
        states = json.loads(json.dumps(fp.snapshot()))
    assert not out.errors.data["offset"], out.errors.data
    return out


def rows(out: Emitter) -> list[Row]:
    d = out.metrics.data
    return list(zip(d["key"], d["value"], d["step"], d["epoch"], strict=True))


CASES: dict[str, tuple[list[str], list[Row]]] = {
    "pytorch loop with logging, all word-number pairs": (
        [
            "2026-11-27 05:15:19,749 [INFO] trainer: epoch 1/5 step 10 train_loss 0.5601 lr 0.0500",
            (
                "2026-11-27 05:15:19,757 [INFO] trainer: ==> epoch 1/5 done: train_loss_epoch=0.4397 "
                "val_loss=0.2151 val_acc=0.9031"
            ),
        ],
        [
            ("train_loss", 0.5601, 10, 1.0),
            ("lr", 0.05, 10, 1.0),
            ("train_loss_epoch", 0.4397, None, 1.0),
            ("val_loss", 0.2151, None, 1.0),
            ("val_acc", 0.9031, None, 1.0),
        ],
    ),
    "detectron2 events": (
        [
            (
                "[04/05 01:30:24 d2.utils.events]:  eta: 0:03:35  iter: 19  total_loss: 1.36  "
                "loss_cls: 0.6522  loss_box_reg: 0.5817  time: 0.3636  data_time: 0.1102  "
                "lr: 3.8077e-06  max_mem: 433M"
            )
        ],
        [
            ("total_loss", 1.36, 19, None),
            ("loss_cls", 0.6522, 19, None),
            ("loss_box_reg", 0.5817, 19, None),
            ("time", 0.3636, 19, None),
            ("data_time", 0.1102, 19, None),
            ("lr", 3.8077e-06, 19, None),
        ],
    ),
    "mmdetection text log": (
        [
            (
                "2020-05-21 04:01:24,249 - mmdet - INFO - Epoch [1][15/678]\tlr: 0.00020, "
                "eta: 1 day, 16:21:05, time: 1.269, data_time: 0.011, memory: 9581, "
                "s0.loss_cls: 0.5666, s0.acc: 95.7031, loss: 3.4410"
            )
        ],
        [
            ("lr", 0.0002, 15, 1.0),
            ("time", 1.269, 15, 1.0),
            ("data_time", 0.011, 15, 1.0),
            ("memory", 9581.0, 15, 1.0),
            ("s0.loss_cls", 0.5666, 15, 1.0),
            ("s0.acc", 95.7031, 15, 1.0),
            ("loss", 3.441, 15, 1.0),
        ],
    ),
    "mmdetection json log": (
        [
            (
                '{"mode": "train", "epoch": 1, "iter": 50, "lr": 1e-05, "memory": 9810, '
                '"data_time": 1.92951, "loss_cls": 1.27158, "loss": 2.13622, "time": 2.63489}'
            )
        ],
        [
            ("lr", 1e-05, 50, 1.0),
            ("memory", 9810.0, 50, 1.0),
            ("data_time", 1.92951, 50, 1.0),
            ("loss_cls", 1.27158, 50, 1.0),
            ("loss", 2.13622, 50, 1.0),
            ("time", 2.63489, 50, 1.0),
        ],
    ),
    "fairseq progress and validation": (
        [
            (
                "| epoch 001:     10 / 614 loss=10.519, nll_loss=10.519, ppl=1467.16, wps=1276, "
                "ups=2.4, bsz=17, num_updates=11, lr=0.05, gnorm=1.147, clip=100%, oom=0"
            ),
            (
                "| epoch 001 | valid on 'valid' subset | valid_loss 8.11425 | valid_nll_loss 6.8834 "
                "| valid_ppl 118.06 | num_updates 600"
            ),
        ],
        [
            ("loss", 10.519, 11, 1.0),
            ("nll_loss", 10.519, 11, 1.0),
            ("ppl", 1467.16, 11, 1.0),
            ("wps", 1276.0, 11, 1.0),
            ("ups", 2.4, 11, 1.0),
            ("bsz", 17.0, 11, 1.0),
            ("lr", 0.05, 11, 1.0),
            ("gnorm", 1.147, 11, 1.0),
            ("clip", 100.0, 11, 1.0),
            ("oom", 0.0, 11, 1.0),
            ("valid_loss", 8.11425, 600, 1.0),
            ("valid_nll_loss", 6.8834, 600, 1.0),
            ("valid_ppl", 118.06, 600, 1.0),
        ],
    ),
    "fairseq json stats with string numbers": (
        [
            (
                '{"epoch": 25, "loss": "3.097", "ppl": "2.51", "num_updates": 53749, '
                '"clip": "100%", "lr": 0.00019096019143386865}'
            )
        ],
        [
            ("loss", 3.097, 53749, 25.0),
            ("ppl", 2.51, 53749, 25.0),
            ("clip", 100.0, 53749, 25.0),
            ("lr", 0.00019096019143386865, 53749, 25.0),
        ],
    ),
    "Detectron json_stats after a label": (
        [
            (
                'json_stats: {"accuracy_cls": 0.923639, "eta": "1 day, 13:30:44", "iter": 120000, '
                '"loss": 0.562384, "lr": 0.010000, "time": 0.562685}'
            )
        ],
        [
            ("accuracy_cls", 0.923639, 120000, None),
            ("loss", 0.562384, 120000, None),
            ("lr", 0.01, 120000, None),
            ("time", 0.562685, 120000, None),
        ],
    ),
    "timm train line (running averages in parentheses, seconds units)": (
        [
            (
                "Train: 3 [ 100/1251 (  8%)]  Loss: 6.924 (6.92)  Time: 3.017s,   42.43/s  "
                "(3.017s,   42.43/s)  LR: 1.000e-06  Data: 2.178 (2.178)"
            )
        ],
        [("Loss", 6.924, 100, 3.0), ("LR", 1e-06, 100, 3.0), ("Data", 2.178, 100, 3.0)],
    ),
    "nanoGPT eval and iteration lines": (
        [
            "step 3000: train loss 4.0390, val loss 4.0427",
            "2023-03-22 09:32:41 iter 3000: loss 4.2490, time 35392.33ms, mfu 13.85%",
            "2023-03-22 09:32:52 iter 3010: loss nan, time 1019.95ms, mfu 14.12%",
        ],
        [
            ("train_loss", 4.039, 3000, None),
            ("val_loss", 4.0427, 3000, None),
            ("loss", 4.249, 3000, None),
            ("mfu", 13.85, 3000, None),
            ("loss", math.nan, 3010, None),
            ("mfu", 14.12, 3010, None),
        ],
    ),
    "pytorch tutorial and MNIST example prints": (
        [
            "Epoch [1/5], Step [100/600], Loss: 0.2193",
            "Train Epoch: 2 [640/60000 (1%)]\tLoss: 1.234567",
        ],
        [("Loss", 0.2193, 100, 1.0), ("Loss", 1.234567, 640, 2.0)],
    ),
    "Lightning progress bar final state and test table": (
        [
            (
                "Epoch 0: 100%|██████████| 32/32 [00:00<00:00, 110.61it/s, v_num=0, "
                "train_loss=0.123, val_loss=0.456, val_acc=0.900]"
            ),
            "┏━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━━━━┓",
            "┃        Test metric        ┃       DataLoader 0        ┃",
            "┡━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━━━━┩",
            "│         test_acc          │    0.9200000166893005     │",
            "└───────────────────────────┴───────────────────────────┘",
        ],
        [
            ("train_loss", 0.123, None, 0.0),
            ("val_loss", 0.456, None, 0.0),
            ("val_acc", 0.9, None, 0.0),
            ("test_acc", 0.9200000166893005, None, 0.0),
        ],
    ),
    "HF Trainer log_metrics block": (
        [
            "***** eval metrics *****",
            "  epoch                   =        3.0",
            "  eval_accuracy           =     0.8554",
            "  eval_loss               =     0.3996",
            "  eval_runtime            = 0:00:01.46",
            "  eval_samples            =        408",
            "  eval_samples_per_second =    278.558",
        ],
        [
            ("eval_accuracy", 0.8554, None, 3.0),
            ("eval_loss", 0.3996, None, 3.0),
            ("eval_samples_per_second", 278.558, None, 3.0),
        ],
    ),
    "HF printer dicts, old float and new string forms, numpy scalars": (
        [
            "{'loss': 2.4316, 'learning_rate': 4.8e-05, 'epoch': 0.12}",
            "{'loss': '3.762', 'grad_norm': '0.6715', 'learning_rate': '0', 'epoch': '0.05'}",
            "{'eval_loss': np.float64(0.5), 'eval_accuracy': np.float64(0.91), 'epoch': 1.0}",
        ],
        [
            ("loss", 2.4316, None, 0.12),
            ("learning_rate", 4.8e-05, None, 0.12),
            ("loss", 3.762, None, 0.05),
            ("grad_norm", 0.6715, None, 0.05),
            ("learning_rate", 0.0, None, 0.05),
            ("eval_loss", 0.5, None, 1.0),
            ("eval_accuracy", 0.91, None, 1.0),
        ],
    ),
    "xgboost and LightGBM round lines": (
        [
            "[7]\ttrain-logloss:0.28906\tvalid-auc:0.99644",
            "[10]\tvalid_0's auc: 0.987\tvalid_0's binary_logloss: 0.2",
        ],
        [
            ("train-logloss", 0.28906, 7, None),
            ("valid-auc", 0.99644, 7, None),
            ("valid_0_s_auc", 0.987, 10, None),
            ("valid_0_s_binary_logloss", 0.2, 10, None),
        ],
    ),
    "sklearn verbose MLP, labels with spaces, summary after training": (
        [
            "Iteration 12, loss = 0.23793178",
            "Validation score: 0.937500",
            "test accuracy: 0.9694",
            "Final validation accuracy: 0.9790",
        ],
        [
            ("loss", 0.23793178, 12, None),
            ("validation_score", 0.9375, 12, None),
            ("test_accuracy", 0.9694, 12, None),
            ("final_validation_accuracy", 0.979, 12, None),
        ],
    ),
    "Keras epoch header then final bar": (
        [
            "Epoch 3/8",
            (
                "23/23 ━━━━━━━━━━━━━━━━━━━━ 0s 2ms/step - accuracy: 0.8608 - loss: 0.6739 - "
                "val_accuracy: 0.8528 - val_loss: 0.6334"
            ),
        ],
        [
            ("accuracy", 0.8608, None, 3.0),
            ("loss", 0.6739, None, 3.0),
            ("val_accuracy", 0.8528, None, 3.0),
            ("val_loss", 0.6334, None, 3.0),
        ],
    ),
    "Keras 2 progress bar": (
        [
            "Epoch 1/10",
            (
                "1875/1875 [==============================] - 5s 2ms/step - loss: 0.2954 - "
                "accuracy: 0.9138 - val_loss: 0.1450 - val_accuracy: 0.9567"
            ),
        ],
        [
            ("loss", 0.2954, None, 1.0),
            ("accuracy", 0.9138, None, 1.0),
            ("val_loss", 0.145, None, 1.0),
            ("val_accuracy", 0.9567, None, 1.0),
        ],
    ),
    "PyTorch Ignite example handlers": (
        [
            "Epoch[1] Iteration[100/469] Loss: 0.32",
            "Validation Results - Epoch: 1  Avg accuracy: 0.95 Avg loss: 0.16",
        ],
        [
            ("Loss", 0.32, 100, 1.0),
            ("avg_accuracy", 0.95, None, 1.0),
            ("avg_loss", 0.16, None, 1.0),
        ],
    ),
    "fastai console table": (
        [
            "epoch     train_loss  valid_loss  accuracy  time    ",
            "0         0.356473    0.215521    0.933000  00:12     ",
            "1         0.201233    0.160220    0.951000  00:11     ",
            "Better model found at epoch 1 with valid_loss value: 0.16022.",
        ],
        [
            ("train_loss", 0.356473, None, 0.0),
            ("valid_loss", 0.215521, None, 0.0),
            ("accuracy", 0.933, None, 0.0),
            ("train_loss", 0.201233, None, 1.0),
            ("valid_loss", 0.16022, None, 1.0),
            ("accuracy", 0.951, None, 1.0),
        ],
    ),
    "accelerate no_trainer eval dict after an epoch label": (
        ["11/27/2026 05:15:30 - INFO - __main__ - epoch 0: {'accuracy': 0.8, 'f1': 0.86}"],
        [("accuracy", 0.8, None, 0.0), ("f1", 0.86, None, 0.0)],
    ),
    "PyTorch-GAN bracketed fields": (
        ["[Epoch 1/10] [Batch 100/938] [D loss: 0.512036] [G loss: 0.734501]"],
        [("d_loss", 0.512036, 100, 1.0), ("g_loss", 0.734501, 100, 1.0)],
    ),
    "custom print with separators and percent": (
        [
            "2026-11-27 05:15:19,749 INFO Epoch 5 - train loss: 0.3456 - val acc: 88.5%",
            "step 100 | loss 2.345 | lr 3.0e-4 | 12.5 ms/step",
        ],
        [
            ("train_loss", 0.3456, None, 5.0),
            ("val_acc", 88.5, None, 5.0),
            ("loss", 2.345, 100, 5.0),
            ("lr", 0.0003, 100, 5.0),
        ],
    ),
}


def _same_rows(got: list[Row], want: list[Row]) -> bool:
    if len(got) != len(want):
        return False
    for (k1, v1, s1, e1), (k2, v2, s2, e2) in zip(got, want, strict=True):
        same_value = (math.isnan(v1) and math.isnan(v2)) or math.isclose(v1, v2, rel_tol=1e-12)
        if (k1, s1, e1) != (k2, s2, e2) or not same_value:
            return False
    return True


@pytest.mark.parametrize("case", list(CASES))
def test_real_library_lines(case: str) -> None:
    lines, want = CASES[case]
    got = rows(run(lines))
    assert _same_rows(got, want), got


@pytest.mark.parametrize("case", list(CASES))
def test_state_survives_batch_boundaries(case: str) -> None:
    lines, want = CASES[case]
    assert _same_rows(rows(run(lines, batch=1)), want)


NOISE = [
    "Collecting torch==2.1.0",
    "  Downloading torch-2.1.0-cp310-cp310-manylinux1_x86_64.whl (670.2 MB)",
    "Successfully installed torch-2.1.0 numpy-1.26.0",
    "| NVIDIA-SMI 535.104.05             Driver Version: 535.104.05   CUDA Version: 12.2     |",
    "| N/A   34C    P0    61W / 400W |      4MiB / 81920MiB |      0%      Default |",
    "Downloading (…)lve/main/config.json: 100%|██████████| 665/665 [00:00<00:00, 1.2MB/s]",
    "Map: 100%|██████████| 3668/3668 [00:00<00:00, 12345.67 examples/s]",
    " 45%|████▌     | 45/100 [00:05<00:06,  8.50it/s]",
    "torch 2.1.0",
    "Python 3.10.12",
    "Loaded 50000 images in 3.2 seconds",
    "Using 4 GPUs",
    "Dataset size: 50000 train, 10000 test",
    " Total params: 4,810 (18.79 KB)",
    "Trainable params: 1,234,567",
    "Connecting to localhost:8080",
    "Serving at http://10.0.0.5:6006/ loss: 0.5",
    "lr=0.003 batch_size=64 epochs=8 hidden=64 dropout=0.2 optimizer=adam seed=1",
    "  alpha: 0.0001",
    "  learning_rate_init: 0.001",
    "  validation_fraction: 0.1",
    "max_grad_norm: 1.0",
    "eval_steps: 10",
    "Validation score did not improve more than tol=0.000100 for 5 consecutive epochs. Stopping.",
    "Total training time: 0:12:34",
    "RuntimeError: mat1 and mat2 shapes cannot be multiplied (32x19 and 20x64)",
    "/usr/lib/python3/site-packages/x.py:12: UserWarning: loss: 0.5 is odd",
    "  warnings.warn(",
    "WARNING:root:val_loss: 0.5 is nan-adjacent",
    "[1/3] c++ -MMD -MF x.o.d -O3 -c x.cpp",
    "Seed set to 42",
    (
        "[I 2026-11-27 05:15:16,156] Trial 0 finished with value: 0.9407407407407408 and parameters: "
        "{'alpha': 7.459343285726558e-05, 'loss': 'hinge'}. Best is trial 0 with value: 0.94074."
    ),
    "Best trial: #13 value=0.9463 params={'alpha': 0.004669704806823908, 'loss': 'log_loss'}",
    "TrainConfig(lr=0.05, momentum=0.9, batch_size=32, epochs=5, hidden=64, seed=17)",
    '{"lr": 0.001, "batch_size": 8, "scheduler": "cosine"}',
    'config: {"eta": 0.1, "eval_metric": ["logloss", "auc"], "max_depth": 3, "seed": 42}',
    "wandb:   val_loss 0.123",
    "Epoch 3 took 12.5s",
    "Processing batch 5, size 32",
]


def test_a_batch_size_among_settings_is_not_a_step() -> None:
    """``batch=64`` on a line of settings is a size (the params parser reads it), while a
    batch counter next to a metric still numbers it."""
    out = run(
        [
            "hyper: lr=0.0003 batch=64 model=resnet18",
            "eval: val_loss=1.8 val_top1=31.2",
            "epoch=1 batch=12 loss=0.3",
        ]
    )
    assert rows(out) == [
        ("val_loss", 1.8, None, None),
        ("val_top1", 31.2, None, None),
        ("loss", 0.3, 12, 1.0),
    ]


def test_lines_of_one_shape_each_give_their_own_numbers() -> None:
    """Pairs and counters are read once per line shape (digits as 0), values per line."""
    from loglake.parse.kv import find_context, message_pairs

    a = message_pairs("epoch 3 step 120 loss=0.3100 top1 91.5")
    b = message_pairs("epoch 7 step 980 loss=0.2200 top1 12.5")
    assert [(p.key, p.value) for p in a] == [
        ("epoch", 3.0), ("step", 120.0), ("loss", 0.31), ("top1", 91.5)
    ]  # fmt: skip
    assert [(p.key, p.value) for p in b] == [
        ("epoch", 7.0), ("step", 980.0), ("loss", 0.22), ("top1", 12.5)
    ]  # fmt: skip
    assert find_context("[12] foo=1.5") == (12, None)
    assert find_context("[34] foo=2.5") == (34, None)
    assert find_context("[34] foo=2.5", leading_counter=False) == (None, None)
    assert find_context("Epoch 3.0 [5/10]") == (5, 3.0)


def test_noise_lines_give_no_metrics() -> None:
    out = run(NOISE)
    assert rows(out) == []


def test_traceback_source_lines_are_not_metrics() -> None:
    lines = [
        "step 500 loss 0.5",
        "Traceback (most recent call last):",
        '  File "/x/train.py", line 84, in <module>',
        "    loss = 0.5 * x",
        "    acc: 0.9",
        "ValueError: loss=0.3",
        '  File "/x/other.py", line 3, in f',
        "    val_loss = 1.0",
    ]
    assert rows(run(lines)) == [("loss", 0.5, 500, None)]


class _ClaimingParser(BaseParser):
    """A specific parser that owns xgboost round lines (as a framework parser would)."""

    name = "claims-rounds"
    priority = 20

    def parse(self, batch: LineBatch, state: dict[str, Any], out: Emitter) -> None:
        for text, offset in zip(batch.texts, batch.offsets, strict=True):
            if text.startswith("["):
                out.metric("owned", 1.0, offset)


def test_claimed_lines_are_left_to_their_parser_but_still_set_context() -> None:
    lines = ["[7]\ttrain-logloss:0.28906", "valid_acc: 0.9"]
    out = run(lines, extra=[_ClaimingParser()])
    assert rows(out) == [("owned", 1.0, None, None), ("valid_acc", 0.9, 7, None)]
    assert out.metrics.data["parser"] == ["claims-rounds@1", "generic@1"]


def test_timestamp_from_the_line_unless_the_envelope_gave_one() -> None:
    line = "2026-11-27 05:15:19,749 [INFO] trainer: step 10 train_loss 0.5"
    out = Emitter()
    p = GenericMetricsParser()
    p.parse(LineBatch([line], [0]), p.new_state(), out)
    assert out.metrics.data["ts"] == [pytest.approx(1795756519.749)]
    out = Emitter()
    p.parse(LineBatch([line], [0], ts=[1000.0]), p.new_state(), out)
    assert out.metrics.data["ts"] == [1000.0]


def test_one_key_once_per_line() -> None:
    # the Test-set line names loss twice; the lake keys points by (key, step, epoch, offset)
    out = run(["Epoch 2 | loss: 0.3 | acc: 0.9 | loss: 0.31"])
    assert rows(out) == [("loss", 0.3, None, 2.0), ("acc", 0.9, None, 2.0)]


# -- the corpus -------------------------------------------------------------------------------

# Every metric key the two parsers may emit per corpus log: what the log really prints.
CORPUS_KEYS = {
    "crash_torch": {"train_loss", "lr", "train_loss_epoch", "val_loss", "val_acc"},
    "hf_trainer_gpt2_notqdm": {
        "loss", "grad_norm", "learning_rate", "eval_loss", "eval_runtime",
        "eval_samples_per_second", "eval_steps_per_second", "train_runtime",
        "train_samples_per_second", "train_steps_per_second", "train_loss",
    },
    "keras_mlp": {"accuracy", "loss", "val_accuracy", "val_loss"},
    "optuna_study": set(),  # trial values are the Optuna parser's: they belong to sub-runs
    "sklearn_mlp": {
        "loss", "validation_score", "test_accuracy", "n_iter_", "best_validation_score_",
    },
    "xgboost_native": {
        "train-logloss", "train-auc", "train-error", "valid-logloss", "valid-auc",
        "valid-error", "final_validation_accuracy",
    },
}  # fmt: skip


def corpus_lines(case: str) -> list[str]:
    raw = (CORPUS / case / "stdout.log").read_bytes().split(b"\n")
    if raw and raw[-1] == b"":
        raw.pop()
    texts, _ = clean_lines(raw)
    return texts


def _printed_tolerance(value: float) -> float:
    # summary lines may print fewer decimals than the series (xgboost's final accuracy)
    text = repr(value)
    decimals = len(text.split(".")[1]) if "." in text and "e" not in text else 0
    return 0.5 * 10.0**-decimals + 1e-12


def _tolerance(truth: dict[str, Any], key: str, value: float) -> float:
    fmt = truth.get("log_format", {})
    dec = fmt.get("value_decimals")
    if isinstance(dec, dict):
        dec = dec.get(key)
    if isinstance(dec, int):
        return 0.5 * 10.0**-dec + 1e-12
    if "%.4g" in fmt.get("value_formats", []):
        return abs(value) * 0.5e-3 + 1e-12
    return abs(value) * 1e-12 + 1e-15


def _numbered_right(truth: dict[str, Any], m: dict[str, Any], step: Any, epoch: Any) -> bool:
    """The log's own numbering: a step-numbered series carries the printed step, an
    epoch-numbered one the printed epoch (and no stale step)."""
    fmt = truth.get("log_format", {})
    if m.get("step") is None:
        return True
    if fmt.get("step_printed") is False:
        return step is None and epoch == m["epoch"]
    expected = m["step"] + fmt.get("log_step_minus_truth_step", 0)
    return step == expected if step is not None else epoch == expected


@pytest.mark.parametrize("case", sorted(CORPUS_KEYS))
def test_corpus_metric_keys_are_exactly_what_the_log_prints(case: str) -> None:
    out = run(corpus_lines(case), batch=7)
    assert set(out.metrics.data["key"]) == CORPUS_KEYS[case]
    points = [(k, s, e, o) for k, _, s, e, o in _with_offsets(out)]
    assert len(points) == len(set(points)), "a metric point was emitted twice"


def _with_offsets(out: Emitter) -> list[tuple[str, float, Any, Any, int]]:
    d = out.metrics.data
    return list(zip(d["key"], d["value"], d["step"], d["epoch"], d["offset"], strict=True))


@pytest.mark.parametrize("case", sorted(c for c in CORPUS_KEYS if c != "optuna_study"))
def test_corpus_every_printed_metric_is_found_with_its_step(case: str) -> None:
    truth = json.loads((CORPUS / case / "truth.json").read_text())
    got = rows(run(corpus_lines(case), batch=7))
    missing = []
    printed = [m for m in truth["metrics"] if m.get("in_log")]
    assert printed
    for m in printed:
        key = normalize_key(m["log_key"])
        tol = _tolerance(truth, m["key"], m["value"])
        if not any(
            k == key
            and abs(v - m["value"])
            <= max(tol, _printed_tolerance(v) if m.get("step") is None else 0)
            and _numbered_right(truth, m, s, e)
            for k, v, s, e in got
        ):
            missing.append((m["log_key"], m.get("step"), m["value"]))
    assert not missing, missing


def test_corpus_point_counts() -> None:
    # every printed point once, plus only the extras the logs really print
    counts = {case: len(rows(run(corpus_lines(case)))) for case in CORPUS_KEYS}
    assert counts == {
        "crash_torch": 14 + 8,  # 14 truth points + lr on each of the 8 step lines
        "hf_trainer_gpt2_notqdm": 47,  # 48 truth points, total_flos not printed
        "keras_mlp": 32,
        "optuna_study": 0,
        "sklearn_mlp": 51 + 2,  # + n_iter_ and best_validation_score_ on the summary line
        "xgboost_native": 181,
    }


def test_log_prefixes_of_one_shape_keep_their_own_stamps() -> None:
    """The prefix split is cached per line shape (digits as 0); a line of that shape whose
    stamp is not a date (month 13) is split afresh, as it was before it was cached."""
    from loglake.parse.timestamps import split_log_prefix

    a = split_log_prefix("2026-11-27 05:15:19,749 - INFO - trainer - loss 1")
    b = split_log_prefix("2026-11-28 06:16:20,500 - INFO - trainer - loss 2")
    bad = split_log_prefix("2026-13-28 06:16:20,500 - INFO - trainer - loss 3")
    c = split_log_prefix("2026-11-29 07:17:21,250 - INFO - trainer - loss 4")
    assert a == (1795756519.749, "INFO", "loss 1")
    assert b == (1795846580.5, "INFO", "loss 2")
    assert bad == (None, None, "2026-13-28 06:16:20,500 - INFO - trainer - loss 3")
    assert c == (1795936641.25, "INFO", "loss 4")
    # a shape first seen with a bad date is split per line
    assert split_log_prefix("[I 2026-00-01 10:00:00,000] Trial 1")[0] is None
    assert split_log_prefix("[I 2026-01-01 10:00:00,000] Trial 2") == (
        1767261600.0, "INFO", "Trial 2"
    )  # fmt: skip
    # the stamp after the level (transformers) and lines without a prefix
    line = "[INFO|trainer.py:731] 2026-01-01 10:00:05,000 >> loss 5"
    assert split_log_prefix(line) == (1767261605.0, "INFO", "loss 5")
    assert split_log_prefix("  indented: 1") == (None, None, "  indented: 1")
    assert split_log_prefix("  indented: 2") == (None, None, "  indented: 2")


@pytest.mark.parametrize(
    "text",
    [
        "{'loss': 2.127, 'grad_norm': 2.135, 'learning_rate': 2.94e-05, 'epoch': 0.03}",
        "{'loss': '3.762', 'epoch': '0.05'}",
        "{'a': -0, 'b': -0.0, 'c': 1E5, 'd': 10, 'a': 2}",
        "{}",
        "{'a b': 'x y', 'é': 'ü'}",
        "{'a': 01}",
        "{'a': True, 'b': None}",
        "{'a': 1,}",
        "{'a': nan, 'b': inf}",
        "{'a': '1\\t2'}",
        "{'a': \"b\"}",
        "{'a': np.float32(0.5)}",
        "{'a': " + "1" * 5000 + "}",
    ],
)
def test_flat_dicts_read_as_python_reads_them(text: str) -> None:
    """HF's flat dict lines take a JSON fast path; it must agree with ``ast.literal_eval``."""
    import ast

    from loglake.parse.structured import _parse_mapping

    try:
        want = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        want = None
    got = _parse_mapping(text)
    if "nan" in text or "(" in text:
        assert got is not None  # the slow path's own rewrites (nan as text, unwrapped scalars)
        return
    assert got == want and [type(v) for v in (got or {}).values()] == [
        type(v) for v in (want or {}).values()
    ]
