"""The generic hyperparameter parser on the forms real scripts and libraries print them in.

Each case lists every param the parsers must emit for its lines (nothing else), and lines run
through the real pipeline with the generic metrics parser alongside, as in production.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from loglake.parse.base import LineBatch
from loglake.parse.builtins.generic_metrics import GenericMetricsParser
from loglake.parse.builtins.params import ParamsParser
from loglake.parse.pipeline import FileParsers
from loglake.parse.records import Emitter
from loglake.tail.cleanup import clean_lines

CORPUS = Path(__file__).parent / "corpus"


def run(lines: list[str], *, batch: int = 0) -> Emitter:
    """Parse ``lines`` as one file in batches of ``batch`` lines (0: one batch), the parser
    state round-tripped through JSON between batches as the checkpoint does."""
    parsers = [ParamsParser(), GenericMetricsParser()]
    out = Emitter()
    offsets = [i * 100 for i in range(len(lines))]
    size = batch or max(len(lines), 1)
    states = None
    for start in range(0, len(lines), size):
        fp = FileParsers(parsers, states)
        fp.feed(LineBatch(lines[start : start + size], offsets[start : start + size]), out)
        states = json.loads(json.dumps(fp.snapshot()))
    fp = FileParsers(parsers, states)
    fp.finalize(out, idle=True, offset=len(lines) * 100)
    assert not out.errors.data["offset"], out.errors.data
    return out


def params(out: Emitter) -> dict[str, str]:
    """key -> value text as the lake stores it (lists and dicts as JSON, the rest str())."""
    d = out.params.data
    got: dict[str, str] = {}
    for k, v in zip(d["key"], d["value"], strict=True):
        assert k not in got, f"param {k} emitted twice"
        got[k] = v if isinstance(v, str) else json.dumps(v) if isinstance(v, list) else str(v)
    return got


CASES: dict[str, tuple[list[str], dict[str, str]]] = {
    "argparse Namespace after a logging prefix": (
        [
            ("2026-11-27 05:15:19,749 - INFO - __main__ - Namespace(lr=0.1, batch_size=32, "
            "epochs=3, model='resnet18', layers=[64, 32], fp16=True, data=PosixPath('/data/x'))")
        ],
        {
            "lr": "0.1", "batch_size": "32", "epochs": "3", "model": "resnet18",
            "layers": "[64, 32]", "fp16": "True", "data": "PosixPath('/data/x')",
        },
    ),
    "dataclass config printed late, just before the traceback": (
        [
            "2026-11-27 05:15:19,766 [INFO] trainer: epoch 2/5 step 80 train_loss 0.1868 lr 0.0500",
            ("TrainConfig(lr=0.05, momentum=0.9, batch_size=32, epochs=5, "
            "optim=OptimConfig(name='sgd', nesterov=False), seed=17)"),
            "Traceback (most recent call last):",
        ],
        {
            "lr": "0.05", "momentum": "0.9", "batch_size": "32", "epochs": "5",
            "optim.name": "sgd", "optim.nesterov": "False", "seed": "17",
        },
    ),
    "HF TrainingArguments, multi-line __str__": (
        [
            ("11/27/2026 05:15:19 - INFO - __main__ - Training/evaluation parameters "
            "TrainingArguments("),
            "_n_gpu=1,",
            "accelerator_config={'split_batches': False, 'dispatch_batches': None},",
            "adam_beta1=0.9,",
            "eval_delay=0,",
            "eval_steps=10,",
            "learning_rate=0.001,",
            "lr_scheduler_type=cosine,",
            "output_dir=out/gpt2,",
            "report_to=[],",
            ")",
            "{'loss': 2.5, 'learning_rate': 0.001, 'epoch': 0.1}",
        ],
        {
            "_n_gpu": "1", "accelerator_config.split_batches": "False",
            "accelerator_config.dispatch_batches": "None", "adam_beta1": "0.9",
            "eval_delay": "0", "eval_steps": "10", "learning_rate": "0.001",
            "lr_scheduler_type": "cosine", "output_dir": "out/gpt2", "report_to": "[]",
        },
    ),
    "HF TrainingArguments, one-line dataclass repr": (
        [
            ("TrainingArguments(output_dir='out', per_device_train_batch_size=8, "
            "num_train_epochs=3.0, lr_scheduler_type=<SchedulerType.LINEAR: 'linear'>)")
        ],
        {
            "output_dir": "out", "per_device_train_batch_size": "8", "num_train_epochs": "3.0",
            "lr_scheduler_type": "<SchedulerType.LINEAR: 'linear'>",
        },
    ),
    "pretty-printed JSON of the argparse namespace": (
        [
            "{",
            '  "lr": 0.001,',
            '  "model": {"name": "gpt2", "n_layer": 2},',
            '  "tags": ["a", "b"],',
            '  "scheduler": "cosine"',
            "}",
            "{'loss': '3.762', 'grad_norm': '0.6715', 'learning_rate': '0', 'epoch': '0.05'}",
        ],
        {
            "lr": "0.001", "model.name": "gpt2", "model.n_layer": "2", "tags": '["a", "b"]',
            "scheduler": "cosine",
        },
    ),
    "labelled JSON and Python dicts": (
        [
            'config: {"eta": 0.1, "eval_metric": ["logloss", "auc"], "objective": "binary:logistic"}',
            "Config: {'optimizer': {'name': 'adam', 'betas': (0.9, 0.999)}, 'batch_size': 64}",
            "params = {'wd': 0.0005}",
        ],
        {
            "eta": "0.1", "eval_metric": '["logloss", "auc"]', "objective": "binary:logistic",
            "optimizer.name": "adam", "optimizer.betas": "[0.9, 0.999]", "batch_size": "64",
            "wd": "0.0005",
        },
    ),
    "search space dump": (
        [
            'Search space: {"alpha": "loguniform(1e-6, 1e-1)", "loss": ["hinge", "log_loss"]}',
        ],
        {"search_space.alpha": "loguniform(1e-6, 1e-1)", "search_space.loss": '["hinge", "log_loss"]'},
    ),
    "YAML block under a title, nested and lists": (
        [
            "hyperparameters:",
            "  hidden_layer_sizes: [64, 32]",
            "  optim:",
            "    lr: 0.1  # peak",
            "    betas:",
            "      - 0.9",
            "      - 0.999",
            "  name: 'mlp'",
            "  early_stopping: True",
            "Iteration 1, loss = 2.31250871",
        ],
        {
            "hidden_layer_sizes": "[64, 32]", "optim.lr": "0.1", "optim.betas": "[0.9, 0.999]",
            "name": "mlp", "early_stopping": "True",
        },
    ),
    "OmegaConf/Hydra dump at the top of the log": (
        [
            "model:",
            "  hidden: 128",
            "  dropout: 0.1",
            "trainer:",
            "  max_epochs: 10",
            "seed: 42",
            "Epoch 1/10",
            "val_metric: 0.5",
        ],
        {"model.hidden": "128", "model.dropout": "0.1", "trainer.max_epochs": "10", "seed": "42"},
    ),
    "Megatron arguments block": (
        [
            "------------------------ arguments ------------------------",
            "  accumulate_allreduce_grads_in_fp32 .............. False",
            "  adam_beta1 ...................................... 0.9",
            "  hidden_size ..................................... 1024",
            "-------------------- end of arguments ---------------------",
        ],
        {"accumulate_allreduce_grads_in_fp32": "False", "adam_beta1": "0.9", "hidden_size": "1024"},
    ),
    "untitled block children at the title's indent": (
        ["Hyperparameters", "lr: 0.1", "batch_size: 32", "Epoch 1: loss=0.5"],
        {"lr": "0.1", "batch_size": "32"},
    ),
    "HF Running training banner": (
        [
            "***** Running training *****",
            "  Num examples = 320",
            "  Num Epochs = 2",
            "  Instantaneous batch size per device = 8",
            "  Total train batch size (w. parallel, distributed & accumulation) = 16",
            "{'loss': 3.7, 'epoch': 0.05}",
        ],
        {
            "num_examples": "320", "num_epochs": "2", "instantaneous_batch_size_per_device": "8",
            "total_train_batch_size": "16",
        },
    ),
    "HF Trainer banner through transformers' logger format": (
        [
            "[INFO|trainer.py:2128] 2026-11-27 05:15:19,749 >> ***** Running training *****",
            "[INFO|trainer.py:2129] 2026-11-27 05:15:19,749 >>   Num examples = 3,668",
            "[INFO|trainer.py:2130] 2026-11-27 05:15:19,749 >>   Num Epochs = 3",
            "[INFO|trainer.py:2131] 2026-11-27 05:15:19,749 >>   Gradient Accumulation steps = 1",
            "{'loss': 0.5469, 'learning_rate': 1.5e-05, 'epoch': 1.0}",
        ],
        {"num_examples": "3,668", "num_epochs": "3", "gradient_accumulation_steps": "1"},
    ),
    "k=v line and key: value header lines": (
        [
            "lr=0.003 batch_size=64 epochs=8 optimizer=adam",
            "n_trials: 30",
            "sampler: TPESampler(seed=42)",
            "pruner: MedianPruner(n_startup_trials=5, n_warmup_steps=2)",
            "Device: cuda",
            "Num workers: 4",
        ],
        {
            "lr": "0.003", "batch_size": "64", "epochs": "8", "optimizer": "adam",
            "n_trials": "30", "sampler": "TPESampler(seed=42)",
            "pruner": "MedianPruner(n_startup_trials=5, n_warmup_steps=2)", "Device": "cuda",
            "num_workers": "4",
        },
    ),
    "nanoGPT configurator overrides": (
        [
            "Overriding config with config/train_shakespeare_char.py:",
            "# train a miniature character-level shakespeare model",
            "out_dir = 'out-shakespeare-char'",
            "eval_interval = 250",
            "dropout = 0.2",
            "wandb_log = False # override via command line if you like",
            "tokens per iteration will be: 16,384",
            "found vocab_size = 65 (inside data/shakespeare_char/meta.pkl)",
            "number of parameters: 10.65M",
            "using fused AdamW: True",
            "step 0: train loss 4.2874, val loss 4.2823",
            "max_iters = 5000",
        ],
        {
            "out_dir": "out-shakespeare-char",
            "eval_interval": "250",
            "dropout": "0.2",
            "wandb_log": "False",
        },
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_real_param_dumps(case: str) -> None:
    lines, want = CASES[case]
    assert params(run(lines)) == want


@pytest.mark.parametrize("case", list(CASES))
def test_param_dumps_across_batch_boundaries(case: str) -> None:
    lines, want = CASES[case]
    assert params(run(lines, batch=1)) == want


def test_each_param_points_at_its_own_line() -> None:
    out = run(["{", '  "lr": 0.001,', '  "seed": 0', "}"])
    assert dict(zip(out.params.data["key"], out.params.data["offset"], strict=True)) == {
        "lr": 100,
        "seed": 200,
    }


@pytest.mark.parametrize(
    ("line", "command", "want"),
    [
        (
            "python train.py --lr 0.01 --epochs=3 --fp16 --layers 64 32 -v --model-name resnet",
            "python train.py --lr 0.01 --epochs=3 --fp16 --layers 64 32 -v --model-name resnet",
            {
                "lr": "0.01",
                "epochs": "3",
                "fp16": "True",
                "layers": "64 32",
                "model_name": "resnet",
            },
        ),
        (
            (
                "+ torchrun --nproc_per_node=4 train.py --lr 1e-3 model.hidden=128 "
                "+trainer.max_epochs=5 2>&1"
            ),
            (
                "torchrun --nproc_per_node=4 train.py --lr 1e-3 model.hidden=128 "
                "+trainer.max_epochs=5 2>&1"
            ),
            {"lr": "1e-3", "model.hidden": "128", "trainer.max_epochs": "5"},
        ),
        (
            "Command: CUDA_VISIBLE_DEVICES=0 python -m mypkg.train --batch-size 64 --warmup -1",
            "CUDA_VISIBLE_DEVICES=0 python -m mypkg.train --batch-size 64 --warmup -1",
            {"batch_size": "64", "warmup": "-1"},
        ),
        (
            "srun python /home/me/jobs/train.py --config configs/a.yaml",
            "srun python /home/me/jobs/train.py --config configs/a.yaml",
            {"config": "configs/a.yaml"},
        ),
    ],
)
def test_command_lines(line: str, command: str, want: dict[str, str]) -> None:
    out = run([line])
    assert params(out) == want
    assert list(zip(out.facts.data["key"], out.facts.data["value"], strict=True)) == [
        ("command", command)
    ]


NOT_PARAMS = [
    # metric records, whatever their shape
    "{'loss': '3.762', 'grad_norm': '0.6715', 'learning_rate': '0', 'epoch': '0.05'}",
    '{"epoch": 25, "loss": "3.097", "num_updates": 53749}',
    "eval results: {'eval_loss': 0.5, 'eval_accuracy': 0.91}",
    # a torch model print
    "Sequential(",
    "  (0): Linear(in_features=20, out_features=64, bias=True)",
    "  (1): ReLU()",
    ")",
    "Linear(in_features=20, out_features=64, bias=True)",
    # library chatter with colons and equals signs
    "Collecting torch==2.1.0",
    'Model: "sequential"',
    " Total params: 4,810 (18.79 KB)",
    "GPU available: True (cuda), used: True",
    "TPU available: False, using: 0 TPU cores",
    "Missing logger folder: /x/lightning_logs",
    "Using device: cuda",
    "Elapsed: 00:01:02",
    "[I 2026-11-27 05:15:16,121] A new study created in memory with name: sgd-digits",
    (
        "[I 2026-11-27 05:15:16,156] Trial 0 finished with value: 0.9407407407407408 and parameters: "
        "{'alpha': 7.459343285726558e-05, 'loss': 'hinge'}. Best is trial 0 with value: 0.94074."
    ),
    "Best trial: #13 value=0.9463 params={'alpha': 0.004669704806823908, 'loss': 'log_loss'}",
    "best_val_acc: 0.93",
    "train rows=426 valid rows=143 features=30",
    # after training started, key: value and k=v lines are status, not settings
    "Epoch 1/10",
    "learning rate: 0.001",
    "lr=0.001 wd=0.01",
    "model:",
    "  hidden: 128",
]


def test_labelled_setting_lists_in_the_header() -> None:
    out = run(
        [
            "TEAM-A trainer",
            "hyper: lr=0.0003 batch=64 model=resnet18",
            "model: depth=12 width=768",
            "ep 1 | it 100 | loss 2.3012 | top1 12.5",
            "eval: val_loss=1.8 val_top1=31.2",
        ]
    )
    assert params(out) == {
        "lr": "0.0003",
        "batch": "64",
        "model": "resnet18",
        "model.depth": "12",
        "model.width": "768",
    }


def test_not_params() -> None:
    assert params(run(NOT_PARAMS)) == {}


def test_metric_blocks_before_any_counter_stay_metrics() -> None:
    # no step/epoch counter has been seen yet, so the parser is still in the header
    out = run(["===== Epoch 1 =====", "  loss: 0.5", "Validation:", "  accuracy: 0.9"])
    assert params(out) == {}
    assert out.metrics.data["key"] == ["loss", "accuracy"]


def test_an_unclosed_brace_does_not_swallow_the_log() -> None:
    out = run(["{", "Epoch 1/3", "lr: 0.1", "val_loss: 0.3"])
    assert params(out) == {}
    assert out.metrics.data["key"] == ["val_loss"]


# -- the corpus -------------------------------------------------------------------------------

# Truth params the logs do not print under their own name (so no parser can find them).
NOT_PRINTED = {
    "hf_trainer_gpt2_notqdm": {"warmup_steps", "logging_steps", "eval_steps"},
    "keras_mlp": {"backend", "validation_split", "loss"},
    # study_name is printed inside Optuna's "created ... with name:" message; sampler_seed as
    # TPESampler(seed=42); the search space is checked flattened below
    "optuna_study": {"study_name", "direction", "sampler_seed", "sklearn_version", "search_space"},
}
# Printed differently from how the script recorded it: the parser keeps the printed text.
PRINTED_AS = {"optuna_study": {"sampler": "TPESampler(seed=42)"}}

CORPUS_PARAM_KEYS = {
    "crash_torch": {"lr", "momentum", "batch_size", "epochs", "hidden", "n_features", "log_every", "seed"},
    "hf_trainer_gpt2_notqdm": {
        "lr", "epochs", "batch_size", "grad_accum", "n_layer", "n_embd", "n_head", "seq_len",
        "vocab", "seed", "scheduler",
    },
    "keras_mlp": {"lr", "batch_size", "epochs", "hidden", "dropout", "optimizer", "seed"},
    "optuna_study": {
        "search_space.alpha", "search_space.loss", "search_space.penalty", "search_space.eta0",
        "search_space.learning_rate", "n_trials", "epochs_per_trial", "sampler", "pruner",
    },
    "sklearn_mlp": {
        "hidden_layer_sizes", "activation", "solver", "alpha", "batch_size", "learning_rate_init",
        "max_iter", "early_stopping", "validation_fraction", "n_iter_no_change", "random_state",
    },
    "xgboost_native": {
        "colsample_bytree", "eta", "eval_metric", "max_depth", "min_child_weight", "nthread",
        "objective", "seed", "subsample", "num_boost_round",
    },
}  # fmt: skip


def corpus_lines(case: str) -> list[str]:
    raw = (CORPUS / case / "stdout.log").read_bytes().split(b"\n")
    if raw and raw[-1] == b"":
        raw.pop()
    texts, _ = clean_lines(raw)
    return texts


def _same(expected: Any, got: str) -> bool:
    if isinstance(expected, bool):
        return got == str(expected)
    if isinstance(expected, int | float):
        try:
            return math.isclose(float(got), float(expected), rel_tol=1e-12)
        except ValueError:
            return False
    if isinstance(expected, list):
        return json.loads(got) == expected
    return got == str(expected)


@pytest.mark.parametrize("case", sorted(CORPUS_PARAM_KEYS))
def test_corpus_params(case: str) -> None:
    truth = json.loads((CORPUS / case / "truth.json").read_text())
    got = params(run(corpus_lines(case), batch=5))
    assert set(got) == CORPUS_PARAM_KEYS[case]  # nothing the log does not print as a setting
    wrong = {}
    for key, value in truth["params"].items():
        if key in NOT_PRINTED.get(case, ()):
            continue
        value = PRINTED_AS.get(case, {}).get(key, value)
        if key not in got or not _same(value, got[key]):
            wrong[key] = (value, got.get(key))
    assert not wrong, wrong
    for key, value in truth["params"].get("search_space", {}).items():
        assert _same(value, got[f"search_space.{key}"]), key
