"""Hyperparameter searches: one log, one sub-run per trial (Optuna, Ray Tune, KerasTuner).

The corpus study is checked against Optuna's own ``study.trials``; other logs are realistic
copies of what those libraries print, written to real files and indexed into a real lake
where it matters.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import loglake
from loglake.config import Config
from loglake.index.runner import run_index
from loglake.parse.base import LineBatch
from loglake.parse.builtins import optuna, ray_tune
from loglake.parse.builtins.ray_tune import ray_sub
from loglake.parse.trials import trial_sub

PARSERS = [*optuna.PARSERS, *ray_tune.PARSERS]
from loglake.parse.pipeline import FileParsers
from loglake.parse.records import Emitter
from loglake.runs.summary import absorb, resolve_status

from .conftest import CORPUS, file_lines


class Parsed:
    """Everything the search parsers gave for one file, per table, plus resolved statuses."""

    def __init__(self, path: Path, *, batch: int = 4) -> None:
        texts, offsets = file_lines(path)
        parsers = FileParsers(list(PARSERS))
        out, summaries = Emitter(), {}
        self.rows: dict[str, list[dict[str, Any]]] = {}
        for i in range(0, len(texts), batch):
            parsers.feed(LineBatch(texts[i : i + batch], offsets[i : i + batch]), out)
            parsers = FileParsers(list(PARSERS), json.loads(json.dumps(parsers.snapshot())))
            self._collect(out, summaries)
        parsers.finalize(out, idle=True, offset=path.stat().st_size)
        self._collect(out, summaries, final=True)
        self.summaries = summaries

    def _collect(self, out: Emitter, summaries: dict[str, Any], *, final: bool = False) -> None:
        absorb(summaries, out, final=final)
        for name, cols in out.tables().items():
            got = [dict(zip(cols.names, r, strict=True)) for r in zip(*cols.data.values())]
            self.rows.setdefault(name, []).extend(got)
        out.clear()

    def status(self, sub: str) -> tuple[str, str | None, str | None]:
        return resolve_status(self.summaries[sub])

    def params(self, sub: str | None) -> dict[str, Any]:
        return {r["key"]: r["value"] for r in self.rows["params"] if r["sub"] == sub}

    def metrics(self, sub: str | None) -> list[tuple[str, float, int | None]]:
        return [(r["key"], r["value"], r["step"]) for r in self.rows["metrics"] if r["sub"] == sub]


def write(tmp_path: Path, text: str, name: str = "job.log") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


# -- Optuna ------------------------------------------------------------------------------------


def test_corpus_study_one_sub_run_per_trial() -> None:
    truth = json.loads((CORPUS / "optuna_study" / "truth.json").read_text())
    parsed = Parsed(CORPUS / "optuna_study" / "stdout.log")
    assert sorted(k for k in parsed.summaries if k) == sorted(
        trial_sub(t["number"]) for t in truth["trials"]
    )
    for t in truth["trials"]:
        sub = trial_sub(t["number"])
        assert parsed.summaries[sub]["experiment"] == "sgd-digits"
        if t["state"] == "PRUNED":
            assert parsed.status(sub)[0] == "pruned"
            assert parsed.metrics(sub) == []  # Optuna prints no value for a pruned trial
            continue
        assert parsed.status(sub) == ("completed", None, None)
        # exactly the trial's own value: the "Best is trial N with value" suffix is not it
        assert parsed.metrics(sub) == [("value", t["value"], t["number"])]
        assert parsed.params(sub) == t["params"]


def test_corpus_study_values_carry_the_log_time() -> None:
    parsed = Parsed(CORPUS / "optuna_study" / "stdout.log")
    first = next(r for r in parsed.rows["metrics"] if r["sub"] == "trial-0")
    assert first["ts"] == 1795756516.156  # [I 2026-11-27 05:15:16,156]


def test_corpus_best_trial_summary_describes_the_parent() -> None:
    best = json.loads((CORPUS / "optuna_study" / "truth.json").read_text())["best_trial"]
    parsed = Parsed(CORPUS / "optuna_study" / "stdout.log")
    params = parsed.params(None)
    assert params["best_trial"] == best["number"] == 13
    assert math.isclose(params["best_value"], best["value"], abs_tol=5e-5)
    assert {k.removeprefix("best_params."): v for k, v in params.items() if "." in k} == best[
        "params"
    ]
    assert parsed.metrics(None) == []


OPTUNA_MORE = """\
[I 2026-01-01 10:00:00,000] A new study created in RDB with name: mo-study
[I 2026-01-01 10:00:01,000] Trial 0 finished with values: [0.12, 35.0] and parameters: {'lr': 0.01, 'layers': 3, 'opt': {'name': 'adam', 'beta': 0.9}}.
[W 2026-01-01 10:00:02,000] Trial 1 failed with parameters: {'lr': 0.5, 'layers': 2} because of the following error: ValueError('loss is nan').
Traceback (most recent call last):
  File "/usr/lib/python3/site-packages/optuna/study/_optimize.py", line 196, in _run_trial
    value_or_values = func(trial)
ValueError: loss is nan
[W 2026-01-01 10:00:02,001] Trial 1 failed with value None.
[I 2026-01-01 10:00:03,000] Trial 2 pruned. Trial was pruned at epoch 3.
[I 2026-01-01 10:00:04,000] Trial 3 finished with value: {'accuracy': 0.91} and parameters: {'lr': 0.02, 'layers': 4}. Best is trial 3 with value: 0.91.
[I 2026-01-01 10:00:05,000] Trial 4 finished with value: inf and parameters: {'lr': 0.9, 'layers': 1}. Best is trial 3 with value: 0.91.
Best trial:
  Value: 0.91
  Params:
    lr: 0.02
    layers: 4
"""


def test_multi_objective_failed_and_pruned_trials(tmp_path: Path) -> None:
    parsed = Parsed(write(tmp_path, OPTUNA_MORE))
    assert parsed.metrics("trial-0") == [("values_0", 0.12, 0), ("values_1", 35.0, 0)]
    assert parsed.params("trial-0") == {
        "lr": 0.01,
        "layers": 3,
        "opt.name": "adam",
        "opt.beta": 0.9,
    }
    assert parsed.status("trial-1") == ("failed", None, "ValueError('loss is nan')")
    assert parsed.params("trial-1") == {"lr": 0.5, "layers": 2}
    assert parsed.status("trial-2") == ("pruned", "Trial was pruned at epoch 3", None)
    assert parsed.metrics("trial-3") == [("accuracy", 0.91, 3)]
    assert parsed.metrics("trial-4") == [("value", math.inf, 4)]
    assert parsed.summaries["trial-3"]["experiment"] == "mo-study"
    assert parsed.params(None) == {
        "best_value": 0.91,
        "best_params.lr": 0.02,
        "best_params.layers": 4,
    }


def test_a_failed_trial_does_not_fail_the_study(tmp_path: Path) -> None:
    """The trial's logged traceback is handled by Optuna: the search went on and ended well."""
    logs = tmp_path / "logs" / "mo"
    logs.mkdir(parents=True)
    (logs / "stdout.log").write_text(OPTUNA_MORE)
    lake = tmp_path / "lake"
    assert not run_index(Config(lake=str(lake)), [str(tmp_path / "logs")], finished=True).failures
    con = loglake.connect(str(lake))
    runs = dict(con.sql("SELECT run, status FROM runs").fetchall())
    assert runs == {
        "mo/stdout": "completed",
        "mo/stdout/trial-0": "completed",
        "mo/stdout/trial-1": "failed",
        "mo/stdout/trial-2": "pruned",
        "mo/stdout/trial-3": "completed",
        "mo/stdout/trial-4": "completed",
    }


# -- Ray Tune ----------------------------------------------------------------------------------

RAY_NEW = """\
╭────────────────────────────────────────────────────────────────────╮
│ Configuration for experiment     train_fn_2024-01-01_10-00-00      │
├────────────────────────────────────────────────────────────────────┤
│ Search algorithm                 BasicVariantGenerator             │
│ Scheduler                        FIFOScheduler                     │
│ Number of trials                 2                                 │
╰────────────────────────────────────────────────────────────────────╯

Trial status: 2 PENDING
Current time: 2024-01-01 10:00:01. Total running time: 0s
Logical resource usage: 1.0/8 CPUs, 0/0 GPUs
╭────────────────────────────────────────────╮
│ Trial name                status        lr │
├────────────────────────────────────────────┤
│ train_fn_a1b2c_00000      PENDING     0.01 │
│ train_fn_a1b2c_00001      PENDING      0.1 │
╰────────────────────────────────────────────╯

Trial train_fn_a1b2c_00000 started with configuration:
╭──────────────────────────────────────────╮
│ Trial train_fn_a1b2c_00000 config        │
├──────────────────────────────────────────┤
│ lr                                  0.01 │
│ layers                                 3 │
╰──────────────────────────────────────────╯

Trial train_fn_a1b2c_00000 completed after 10 iterations at 2024-01-01 10:00:05. Total running time: 4s
╭──────────────────────────────────────────╮
│ Trial train_fn_a1b2c_00000 result        │
├──────────────────────────────────────────┤
│ checkpoint_dir_name                      │
│ time_this_iter_s                 0.00101 │
│ time_total_s                     0.01234 │
│ training_iteration                    10 │
│ loss                             0.12345 │
╰──────────────────────────────────────────╯

Trial train_fn_a1b2c_00001 errored after 3 iterations at 2024-01-01 10:00:05. Total running time: 4s
Error file: /root/ray_results/train_fn/train_fn_a1b2c_00001/error.txt

Trial status: 1 TERMINATED | 1 ERROR
Current time: 2024-01-01 10:00:06. Total running time: 5s
Logical resource usage: 1.0/8 CPUs, 0/0 GPUs
╭──────────────────────────────────────────────────────────────────────────────────╮
│ Trial name                status            lr     iter     total time (s)      loss │
├──────────────────────────────────────────────────────────────────────────────────┤
│ train_fn_a1b2c_00000      TERMINATED      0.01       10          0.0123394   0.12345 │
│ train_fn_a1b2c_00001      ERROR            0.1        3          0.0111       0.5    │
╰──────────────────────────────────────────────────────────────────────────────────╯
"""


def test_ray_tune_tables_and_trial_blocks(tmp_path: Path) -> None:
    parsed = Parsed(write(tmp_path, RAY_NEW))
    assert parsed.status("trial-0") == ("completed", None, None)
    assert parsed.status("trial-1")[0] == "failed"
    assert parsed.params("trial-0") == {"lr": 0.01, "layers": 3}
    assert parsed.params("trial-1") == {"lr": 0.1}
    # the result block at iteration 10 is reported once, not again from the status table
    assert parsed.metrics("trial-0") == [
        ("time_this_iter_s", 0.00101, 10),
        ("time_total_s", 0.01234, 10),
        ("loss", 0.12345, 10),
    ]
    assert parsed.metrics("trial-1") == [("total_time_s", 0.0111, 3), ("loss", 0.5, 3)]
    assert parsed.summaries["trial-0"]["name"] == "train_fn_a1b2c_00000"
    assert parsed.summaries["trial-0"]["experiment"] == "train_fn_2024-01-01_10-00-00"
    assert parsed.metrics(None) == []


RAY_OLD = """\
== Status ==
Current time: 2021-06-01 10:00:10 (running for 00:00:10.12)
Using FIFO scheduling algorithm.
Result logdir: /home/u/ray_results/train_fn_2021-06-01_10-00-00
Number of trials: 2/2 (2 TERMINATED)
+----------------------+------------+-------+--------+--------+------------------+--------+
| Trial name           | status     | loc   |     lr |   iter |   total time (s) |   loss |
|----------------------+------------+-------+--------+--------+------------------+--------|
| train_fn_b3c4d_00000 | TERMINATED |       |   0.01 |     10 |          1.2     |   0.3  |
| train_fn_b3c4d_00001 | TERMINATED |       |   0.1  |      8 |          1.1     |   0.7  |
+----------------------+------------+-------+--------+--------+------------------+--------+

Result for train_fn_b3c4d_00001:
  date: 2021-06-01_10-00-05
  done: true
  loss: 0.7
  pid: 1234
  time_total_s: 1.1
  training_iteration: 9
  trial_id: b3c4d_00001
  config:
    lr: 0.1

"""


def test_ray_tune_cli_reporter_tables_and_result_blocks(tmp_path: Path) -> None:
    parsed = Parsed(write(tmp_path, RAY_OLD))
    assert parsed.status("trial-0") == ("completed", None, None)
    assert parsed.params("trial-0") == {"lr": 0.01}
    assert parsed.metrics("trial-0") == [("total_time_s", 1.2, 10), ("loss", 0.3, 10)]
    assert parsed.metrics("trial-1") == [
        ("total_time_s", 1.1, 8),
        ("loss", 0.7, 8),
        ("loss", 0.7, 9),
        ("time_total_s", 1.1, 9),
    ]
    assert parsed.summaries["trial-1"]["experiment"] == "train_fn_2021-06-01_10-00-00"


def test_ray_sub_names() -> None:
    assert ray_sub("train_fn_a1b2c_00003") == "trial-3"
    assert ray_sub("my_trial") == "trial-my_trial"


# -- KerasTuner --------------------------------------------------------------------------------

KERAS_TUNER = """\
Search: Running Trial #1

Value             |Best Value So Far |Hyperparameter
256               |256               |units
0.001             |0.001             |learning_rate

Epoch 1/2
1500/1500 [==============================] - 3s 2ms/step - loss: 0.52 - val_accuracy: 0.85
Epoch 2/2
1500/1500 [==============================] - 3s 2ms/step - loss: 0.38 - val_accuracy: 0.86
Trial 1 Complete [00h 00m 07s]
val_accuracy: 0.8619999885559082

Best val_accuracy So Far: 0.8619999885559082
Total elapsed time: 00h 00m 07s

Search: Running Trial #2

Value             |Best Value So Far |Hyperparameter
480               |256               |units
0.0001            |0.001             |learning_rate

Epoch 1/2
1500/1500 [==============================] - 3s 2ms/step - loss: 0.61 - val_accuracy: 0.82
"""


def test_keras_tuner_trials(tmp_path: Path) -> None:
    parsed = Parsed(write(tmp_path, KERAS_TUNER))
    assert parsed.params("trial-1") == {"units": 256, "learning_rate": 0.001}
    assert parsed.params("trial-2") == {"units": 480, "learning_rate": 0.0001}
    assert parsed.metrics("trial-1") == [("val_accuracy", 0.8619999885559082, 1)]
    assert parsed.status("trial-1") == ("completed", None, None)
    assert parsed.status("trial-2") == ("killed", "log stopped mid-trial", None)


def test_search_summaries_in_other_shapes(tmp_path: Path) -> None:
    log = (
        "Best trial config: {'l1': 8, 'lr': 0.0012, 'batch_size': 4}\n"
        "Best trial final validation loss: 1.2345\n"
        "Best trial: 13\n"
    )
    parsed = Parsed(write(tmp_path, log))
    assert parsed.params(None) == {
        "best_params.l1": 8,
        "best_params.lr": 0.0012,
        "best_params.batch_size": 4,
        "best_final_validation_loss": 1.2345,
        "best_trial": 13,
    }
    assert parsed.metrics(None) == []
