"""The run-detail parsers' fast paths read every line as their slow paths do.

params, facts, datasets, artifacts and packages share one prefilter pass
(``loglake.parse.run_details``), and three of them cache a reading per line shape (every
ASCII digit read as 0): artifacts where a message's path lies and its kind, facts which
rules can match a message, params whether a dict is a metrics record. Each cache rests on
an equivalence; these tests check it on tricky input against the plain computation.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loglake.parse import prefilter
from loglake.parse.base import LineBatch
from loglake.parse.builtin import builtin_parsers
from loglake.parse.builtins import artifacts, datasets, facts, packages, params
from loglake.parse.param_dumps import looks_like_metrics, mapping_looks_like_metrics
from loglake.parse.pipeline import emitted_records, run_file
from loglake.parse.run_details import detail_lines, details_pattern
from loglake.parse.structured import flatten

from .conftest import CORPUS, corpus_cases

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import mixlog

# -- one shared pass --------------------------------------------------------------------------

# Lines for the five parsers (and ones that must not reach them), around the wording the
# prefilters were narrowed to.
DETAIL_LINES = """\
Namespace(lr=0.1, batch_size=32, seed=0)
{"lr": 0.001, "optimizer": "adam"}
{'loss': 0.3, 'epoch': 1.0}
python train.py --lr 0.01 --epochs 3
Hyperparameters:
  lr: 0.001
  optimizer: adam

Saved model to /scratch/model.h5
saving model to s3://bucket/run-3/model.pt
Checkpoint saved: ckpt_step3.pt
2026-01-01 10:00:00,123 - INFO - saver - Wrote predictions to out/preds5.csv
git commit: 1a2b3c4d5e6f
Python 3.11.4
python version: 3.10
Using 4 GPUs with NCCL backend, world size 4
NVIDIA A100-SXM4-80GB
torch version: 2.1.0
Exited with exit code 1
train rows=426 valid rows=143 features=30
n_train=426
Train: 426, Val: 143, Test: 50
val_size: 143
test set size: 50
426 train samples
training_samples = 1,000
x_train shape: (60000, 28, 28)
Loaded 1,000 training examples from data/train.csv
[7]\tvalid_0's auc: 0.91
Validation score: 0.87
val_loss: 0.31 - val_accuracy: 0.9
dataset_sha256: 0123456789abcdef0123
numpy==1.26.4
transformers[torch]==4.40.0
acc==0.9
|===============================+======================+======================|
Package    Version
---------- -------
torch      2.1.0

transformers version: 4.40.0
torch.__version__ = 2.1.0
Torch Version (cuda): v2.1
keras_VERSION: '3.1.0'
This will be removed in a future version. Use X instead
Using keras 3.1
Successfully installed foo-1.0 bar-2.3.4
Requirement already satisfied: numpy in /x/site-packages (1.26.4)
"""


def _batches(tmp_path: Path) -> list[list[str]]:
    """The edge lines, each corpus log, and a generated mixed log."""
    texts = [DETAIL_LINES.splitlines() * 3]
    for case in corpus_cases():
        texts.append((CORPUS / case / "stdout.log").read_text(encoding="utf-8").splitlines())
    mix = tmp_path / "mix.log"
    mixlog.write_log(mix, 400_000, seed=3)
    texts.append(mix.read_text(encoding="utf-8").splitlines())
    return texts


def test_the_shared_pass_keeps_every_line_each_parser_would_keep(tmp_path: Path) -> None:
    own = [
        (params.CANDIDATES,),
        (artifacts.CANDIDATES,),
        (facts._candidates({}),),
        (facts._candidates({"gpu": 1, "gpu_count": 4, "host": "h"}),),
        (datasets._FORMS, datasets._HINTED),
        (packages.CANDIDATES,),
    ]
    for texts in _batches(tmp_path):
        batch = LineBatch(texts, list(range(len(texts))))
        alone = LineBatch(texts, list(range(len(texts))))
        union = set(batch.matching(details_pattern()))
        for patterns in own:
            assert set(alone.matching(*patterns)) <= union
            assert detail_lines(batch, *patterns) == alone.matching(*patterns)


def _records(path: Path, monkeypatch: pytest.MonkeyPatch, min_lines: int) -> list[dict[str, Any]]:
    monkeypatch.setattr(prefilter, "ARROW_MIN_LINES", min_lines)
    names = {"params", "facts", "datasets", "artifacts", "packages"}
    run = run_file(str(path), [p for p in builtin_parsers() if p.name in names])
    return [
        {k: ("nan" if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
        for r in emitted_records(run.out)
    ]


def test_detail_lines_give_the_same_records_with_and_without_prefilters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "details.log"
    noise = "2026-01-01 10:00:00,000 - INFO - data.loader - Loaded shard 7 (512 rows)\n"
    log.write_text(noise * 40 + DETAIL_LINES + noise * 40 + DETAIL_LINES, encoding="utf-8")
    filtered = _records(log, monkeypatch, 1)
    assert filtered == _records(log, monkeypatch, 1 << 60)
    by = {r["parser"].split("@")[0] for r in filtered}
    assert {"params", "artifacts", "facts", "datasets", "packages"} <= by


# -- artifacts: a message's reading per shape ------------------------------------------------


def _artifact_slow(msg: str) -> tuple[str, str] | None:
    """The reading as the parser made it before the cache (one regex search per message)."""
    m = artifacts._SAVED_TO_RE.search(msg) or artifacts._SAVED_COLON_RE.search(msg)
    if m is None:
        return None
    path = m.group("p").rstrip(".,;:)'\"")
    if not path or path in ("/", ".", "./"):
        return None
    return path, artifacts.artifact_kind(msg[: m.start("p")], path)


ARTIFACT_TEMPLATES = [
    "Saved checkpoint to /ckpt/run-#/step_###.pt (#### bytes)",
    "Saved model to /scratch/model.h#",
    "saved weights to w.hdf#",
    "Saving model to s#://bucket/run-#/model.bin",
    "Saving model to S#://bucket/run-#/model.bin",
    "Saving model to ſ#://bucket/x",
    "wrote predictions to out/preds#.csv at epoch #",
    "Model weights saved in out/epoch=#-step=##.ckpt",
    "Checkpoint saved: ckpt_#.pt",
    "val_loss improved from inf to 0.#, saving model to model_#.keras",
    "Exported model to ./m#.onnx.",
    "dumped state dict to /tmp/#/x.pth",
    "saved stats in #.h#",
    "uploaded artifact to gs://b/#/a.tflite",
    "Saved \u0663 files to /out/\u0661/",
    "nothing saved at step #",
]


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(ARTIFACT_TEMPLATES),
    st.lists(st.text("0123456789", min_size=1, max_size=3), min_size=4, max_size=4),
)
def test_artifact_readings_per_shape_match_the_plain_search(
    template: str, fills: list[str]
) -> None:
    variants = []
    for digits in fills:
        msg = template
        for d in digits * 8:
            msg = msg.replace("#", d, 1)
        variants.append(msg.replace("#", digits[0]))
    for msg in variants:  # the first fills the cache, the others read from it
        assert artifacts.announced(msg) == _artifact_slow(msg)


def test_artifact_shapes_whose_digits_meet_a_literal_are_read_line_by_line() -> None:
    assert artifacts.announced("Saved model to /m/model.h5") == ("/m/model.h5", "model")
    assert artifacts.announced("Saved model to /m/model.h3") == ("/m/model.h3", "model")
    assert artifacts.announced("Saved output to /m/out.h5") == ("/m/out.h5", "model")
    assert artifacts.announced("Saved output to /m/out.h3") == ("/m/out.h3", "file")
    assert artifacts.announced("Saving output to s3://b/x") == ("s3://b/x", "file")
    assert artifacts.announced("Saving output to s4://b/x") is None  # no URL scheme: no path


# -- facts: the rules that can match, per shape ----------------------------------------------


def _facts_slow(msg: str) -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    for hints, rx, handler in facts._RULES:
        if any(h in msg for h in hints):
            m = rx.search(msg)
            if m:
                found.extend(handler(m))
    return found


def _facts_fast(msg: str) -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    for _, rx, handler in facts.matching_rules(msg):
        m = rx.search(msg)
        if m:
            found.extend(handler(m))
    return found


FACT_TEMPLATES = [
    "Python #.##.#",
    "python version: #.##",
    "Python #.#.# (main, Oct 2 2023)",
    "git commit: #a#b#c#d#e#f",
    "commit ########",
    "Using # GPUs with NCCL backend, world size #",
    "NVIDIA A###-SXM#-##GB",
    "torch version: #.#.#+cu###",
    "CUDA Version: ##.#",
    "hostname: gpu-node-##",
    "on node #",
    "on node node-#",
    "SLURM_JOB_ID=######",
    "SLURM_NTASKS: #",
    "world_size = #",
    "device: cuda:#",
    "Exited with exit code #",
    "sys.argv: ['train.py', '--lr', '0.0#']",
    "sys.argv = [0#, #]",
    "GPU available: True (cuda), used: True",
    "[LightGBM] [Info] Number of positive: #",
    "Running as user_#",
]


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(FACT_TEMPLATES),
    st.lists(st.text("0123456789", min_size=1, max_size=2), min_size=4, max_size=4),
)
def test_fact_rules_per_shape_find_what_every_rule_finds(template: str, fills: list[str]) -> None:
    for digits in fills:
        msg = template
        for d in digits * 8:
            msg = msg.replace("#", d, 1)
        msg = msg.replace("#", digits[0])
        assert _facts_fast(msg) == _facts_slow(msg)


def test_no_fact_hint_holds_a_digit() -> None:
    # what makes messages of one shape hold the same hints
    assert not [h for hints, _, _ in facts._RULES for h in hints if any(c.isdigit() for c in h)]


def test_rules_naming_a_digit_are_searched_in_every_message() -> None:
    assert any("[23]" in rx.pattern for rx in facts._DIGIT_PATTERNS)
    assert _facts_fast("Python 3.11.4") == [("python_version", "3.11.4")]
    assert _facts_fast("Python 4.11.4") == []
    assert _facts_fast("Python 2.11.4") == [("python_version", "2.11.4")]


# -- params: metrics dicts decided without their leaves ---------------------------------------

_KEYS = st.sampled_from(
    ["loss", "lr", "step", "epoch", "a.loss", "x.step", "loss.x", "", ".", "eval_acc", "seed",
     "global_step", "optimizer", "Loss", "train/loss", "n_iter", "1", "it"]
)  # fmt: skip
_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["0.5", "12%", "adam", "1e-3", " 3 ", "nan", "", "True"]),
    st.lists(st.integers(), max_size=2),
    st.just({}),
)
_MAPPINGS = st.recursive(
    st.dictionaries(st.one_of(_KEYS, st.integers(0, 3), st.booleans()), _LEAVES, max_size=4),
    lambda inner: st.dictionaries(_KEYS, st.one_of(_LEAVES, inner), max_size=4),
    max_leaves=12,
)


@settings(max_examples=500, deadline=None)
@given(_MAPPINGS)
def test_mapping_check_agrees_with_the_check_of_its_leaves(obj: dict[Any, Any]) -> None:
    assert mapping_looks_like_metrics(obj) == looks_like_metrics(flatten(obj, "."))


def test_mapping_check_on_nested_and_dotted_keys() -> None:
    assert mapping_looks_like_metrics({"optim": {"lr": 0.1}, "train": {"loss": 0.5}})
    assert mapping_looks_like_metrics({"a.step": 3})
    assert not mapping_looks_like_metrics({"step.size": 3, "loss": "adam"})
    assert not mapping_looks_like_metrics({"optim": {"lr": 0.1}, "loss": {}})
