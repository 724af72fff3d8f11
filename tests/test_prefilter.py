"""Prefilters never drop a line a parser acts on.

The built-in Python parsers read only the lines an RE2 pattern selects (loglake.parse.prefilter).
These tests run every built-in parser over real logs (the corpus), generated mixed logs
(bench/mixlog.py) and hand-made edge lines twice: with the prefilters on (patterns forced even
on small batches) and off (every line read). Every record must be the same; and every line a
parser gave a record for must be one its pattern selects (or one read while the parser's
state made it read everything).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from loglake.parse import prefilter
from loglake.parse.base import LineBatch
from loglake.parse.builtin import builtin_parsers
from loglake.parse.builtins import datasets, facts, generic_metrics, params, status
from loglake.parse.pipeline import emitted_records, probe, run_file
from loglake.parse.timestamps import split_log_prefix, strip_log_prefix

from .conftest import CORPUS, corpus_cases

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import mixlog

# Lines aimed at the edges of the patterns: Unicode spaces and digits, a message glued to
# its timestamp, camelCase and quoted keys, step keys "it"/"ep", a nan epoch, notes and bars
# between a counter and its number, tables, tracebacks, dumps and blocks.
EDGE_LINES = """\
2026-01-01 10:00:00,123 - INFO - trainer - epoch\u00a03 step\u20037 loss=0.5
2026-01-01 10:00:01Zloss=0.25 acc=0.9
2026-01-01T10:00:02Zepoch 4 val_acc=0.8
valLoss: 0.31 trainAcc: 0.9
it 12 | ep 2 | reward 3.5
'it': 13, 'ep': 3
epoch: nan
epoch (train) 5 foo=1.5
epoch (a(b)) 6 foo=2.5
step 45%|\u2588\u2588\u2588     | 8 loss=0.4
| epoch | 9 |
\u2502 test_acc \u2502 0.92 \u2502
iterations 11: lossy=0.2
[12] foo:0.5
[ 13 / 20 ] bar=1.5
Train: 3 [ 100/1251 ( 8%)]  Loss: 6.9 (6.9)  Time: 1.2s
epoch  train_loss  valid_loss  accuracy  time
0      0.5         0.4         0.8       00:01
1      0.4         0.35        0.85      00:01
hyper: lr=0.0003 batch=64 model=resnet18
{'loss': 0.3, 'epoch': 1.0}
metrics: {"eval_loss": 0.2, "step": 30}
Namespace(lr=0.1, batch_size=32, seed=0)
TrainingArguments(
output_dir=out,
learning_rate=5e-05,
)
Hyperparameters:
  lr: 0.001
  optimizer: adam

Traceback (most recent call last):
  File "train.py", line 3, in <module>
    loss = 0.5 * step
RuntimeError: loss=0.7 broke
Exception ignored in: <function Foo.__del__ at 0x7f>
Traceback (most recent call last):
ValueError: x
git commit: 1a2b3c4d5e6f
dataset_sha256: 0123456789abcdef0123
Loaded 1,000 training examples from data/train.csv
x_train shape: (60000, 28, 28)
Epoch 5/5
23/23 \u2501\u2501\u2501\u2501 1s 3ms/step - accuracy: 0.9 - loss: 0.2
torch==2.1.0
numpy==1.26.4
Saved model to /scratch/model.pt
RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB
Epoch \u0663/\u0665 loss \u0661.\u0665
Some NCCL operations have failed or timed out
slurmstepd: error: *** JOB 12 ON node1 CANCELLED AT 2026-01-01T10:00:00 ***
python train.py --lr 0.01 --epochs 3
Trial 3 finished with value: 0.95 and parameters: {'x': 1}. Best is trial 3 with value: 0.95.
training finished
"""


def _records(path: Path, monkeypatch: pytest.MonkeyPatch, min_lines: int) -> list[dict[str, Any]]:
    monkeypatch.setattr(prefilter, "ARROW_MIN_LINES", min_lines)
    info, _ = probe(str(path))
    chosen = [p for p in builtin_parsers() if p.detect(info)]
    run = run_file(str(path), chosen)
    return [
        {k: ("nan" if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
        for r in emitted_records(run.out)
    ]


def _same_both_ways(path: Path, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    filtered = _records(path, monkeypatch, 1)
    everything = _records(path, monkeypatch, 1 << 60)
    assert filtered == everything
    return everything


@pytest.mark.parametrize("case", corpus_cases())
def test_corpus_logs_give_the_same_records_with_and_without_prefilters(
    case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _same_both_ways(CORPUS / case / "stdout.log", monkeypatch)


@pytest.mark.parametrize("seed", [1, 2])
def test_mixed_logs_give_the_same_records_with_and_without_prefilters(
    seed: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "mix.log"
    mixlog.write_log(log, 400_000, seed=seed)
    recs = _same_both_ways(log, monkeypatch)
    assert sum(r["kind"] == "metric" for r in recs) > 1000


def test_edge_lines_give_the_same_records_with_and_without_prefilters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "edge.log"
    noise = "2026-01-01 10:00:00,000 - INFO - data.loader - Loaded shard 7 (512 rows)\n"
    log.write_text(noise * 40 + EDGE_LINES + noise * 40 + EDGE_LINES, encoding="utf-8")
    recs = _same_both_ways(log, monkeypatch)
    by = {r["parser"].split("@")[0] for r in recs}
    assert {"generic", "params", "status", "facts", "packages", "datasets", "artifacts"} <= by


def _selected(pattern: str, lines: list[str]) -> list[bool]:
    return pc.match_substring_regex(pa.array(lines, type=pa.string()), pattern).to_pylist()  # type: ignore[no-any-return]


def test_every_metric_line_is_selected_by_the_generic_pattern(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Direct check on the lines themselves, not only on the records: each line the generic
    parser gave a metric for (reading every line) matches its pattern, table rows aside."""
    log = tmp_path / "mix.log"
    mixlog.write_log(log, 300_000, seed=5)
    texts: list[str] = []
    for path in [log, *(CORPUS / c / "stdout.log" for c in corpus_cases())]:
        monkeypatch.setattr(prefilter, "ARROW_MIN_LINES", 1 << 60)
        run = run_file(str(path), [p for p in builtin_parsers() if p.name == "generic"])
        by_offset = dict(zip(run.offsets, run.texts, strict=True))
        texts += [by_offset[o] for o in set(run.out.metrics.data["offset"])]
    assert len(texts) > 500
    picked = _selected(generic_metrics.CANDIDATES, texts)
    assert [t for t, ok in zip(texts, picked, strict=True) if not ok] == []


@pytest.mark.parametrize(
    "pattern",
    [
        generic_metrics.CANDIDATES,
        generic_metrics.CONTEXT_CANDIDATES,
        params.CANDIDATES,
        status._CANDIDATES,
        status._TOTAL_CANDIDATES,
        facts._candidates({}),
        facts._candidates({k: 1 for k in ("host", "user", "gpu", "command", "os")}),
        datasets._HINTED,
        datasets._FORMS,
    ],
)
def test_patterns_compile_in_re2(pattern: str) -> None:
    # A pattern RE2 rejects would silently read every line (correct, but slow).
    assert _selected(pattern, ["x"]) in ([True], [False])


def test_small_batches_read_every_line() -> None:
    batch = LineBatch(["a", "b", "c"], [0, 2, 4])
    assert batch.matching("b") == [0, 1, 2]
    big = LineBatch(["a", "b", "c"] * 30, list(range(90)))
    assert big.matching("b") == list(range(1, 90, 3))
    assert big.matching("a|b", "b|c") == list(range(1, 90, 3))


def test_walk_reads_every_line_while_the_state_asks_for_it() -> None:
    state = {"busy": False}
    seen = []
    for i in prefilter.walk(10, lambda: None if state["busy"] else [2, 7]):
        seen.append(i)
        state["busy"] = i == 2 or (state["busy"] and i < 4)
    assert seen == [2, 3, 4, 7]


def test_prefix_and_message_are_computed_once_per_line() -> None:
    line = "2026-01-01 10:00:00 INFO trainer: loss 1"
    batch = LineBatch([line, "plain"], [0, 40])
    assert batch.prefix(0) == split_log_prefix(line) == (1767261600.0, "INFO", "loss 1")
    assert batch.prefix(0) is batch.prefix(0)
    assert batch.message(0) == strip_log_prefix(line)
    assert batch.message(1) == "plain"


def test_later_patterns_are_matched_among_the_lines_the_first_kept() -> None:
    texts = ["Trial 3 finished", "Best trial", "Result for x", "noise 1", "So Far", "xTrial"] * 20
    batch = LineBatch(texts, list(range(len(texts))))
    first = ("Trial", "Best", "Result")
    every = [i for i, t in enumerate(texts) if any(w in t for w in first) and "x" in t]
    assert batch.matching("Trial|Best|Result", "x") == every
    assert batch.matching("x") == [i for i, t in enumerate(texts) if "x" in t]
    assert batch.matching("Trial|Best|Result", "x") == every  # with the mask now known
    assert batch.matching("Trial", "(unclosed") == list(range(len(texts)))  # RE2 rejects it


def test_tuner_parsers_share_one_pass_and_keep_their_own_lines() -> None:
    from loglake.parse import trials

    texts = [
        "[I 2026-01-01 10:00:00,000] Trial 3 finished with value: 0.5",
        "Best is trial 3",
        "Result for train_fn_00001:",
        "Search: Running Trial #2",
        "Best Value So Far |Hyperparameter",
        "Total elapsed time: 00h 01m",
        "study name: s1",
        "experiment: foo",
        "loss=0.5",
    ] * 10
    batch = LineBatch(texts, list(range(len(texts))))
    for hints in (trials.OPTUNA_HINTS, trials.RAY_HINTS, trials.KT_HINTS):
        want = [i for i, t in enumerate(texts) if any(h in t for h in hints)]
        assert batch.matching(trials.TUNERS, prefilter.any_literal(hints)) == want
