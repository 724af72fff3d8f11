"""The status parser's shortcuts read a log exactly as reading every line would.

``StatusParser.parse`` skips lines its prefilter rules out, asks the lines between
candidates only whether training resumed while a traceback is pending, counts traceback
frames and the lines after a traceback's message in tight loops, asks ``is_training`` only
of lines ``TrainingLines`` keeps, and caches ``is_training`` per message shape. The reference here feeds every line to ``_line``
with no prefilter knowledge and ``is_training`` computed from ``classify``; every built-in
parser runs in both (status depends on the lines they claim), over real files in batches
of many sizes, and the records and the parser's final state must be the same.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loglake.parse import loop_lines, prefilter
from loglake.parse.base import LineBatch
from loglake.parse.builtin import builtin_parsers
from loglake.parse.builtins import status
from loglake.parse.builtins.generic_metrics import CANDIDATES
from loglake.parse.kv import CONTEXT_PATTERN
from loglake.parse.pipeline import FileParsers, emitted_records
from loglake.parse.prefilter import literal
from loglake.parse.records import Emitter
from loglake.parse.vocabulary import metric_value_pattern

from .conftest import CORPUS, corpus_cases, file_lines

State = dict[str, Any]


def _read_every_line(
    self: status.StatusParser, batch: LineBatch, state: State, out: Emitter
) -> None:
    for text, offset in zip(batch.texts, batch.offsets, strict=True):
        try:
            self._line(text, offset, state, out)
        except Exception as e:  # noqa: BLE001 - as parse()
            out.error(offset, f"status: {type(e).__name__}: {e}", text)
    if batch.texts and out.last_metric_offset >= batch.offsets[0]:
        state["data"] = True
    loop_lines.read_tail(batch, state)


def _classified_training(text: str, st: State) -> bool:
    kind = loop_lines.classify(text, st)
    return kind is not None and kind[0] in ("loop", "metric")


def _run(path: Path, sizes: list[int]) -> tuple[list[dict[str, Any]], State]:
    """Every built-in parser over ``path`` in batches of the given sizes (cycled), with the
    states checkpointed as JSON between batches; the records and the status state."""
    texts, offsets = file_lines(path)
    parsers = FileParsers(builtin_parsers())
    out = Emitter()
    i = k = 0
    while i < len(texts):
        n = sizes[k % len(sizes)]
        parsers.feed(LineBatch(texts[i : i + n], offsets[i : i + n]), out)
        parsers = FileParsers(parsers.parsers, json.loads(json.dumps(parsers.snapshot())))
        i, k = i + n, k + 1
    parsers.finalize(out, idle=True, offset=offsets[-1] if offsets else 0)
    recs = [
        {key: ("nan" if isinstance(v, float) and math.isnan(v) else v) for key, v in r.items()}
        for r in emitted_records(out)
    ]
    return recs, parsers.states["status"]


def _both_ways(
    path: Path, sizes: list[int], monkeypatch: pytest.MonkeyPatch
) -> list[dict[str, Any]]:
    with monkeypatch.context() as m:
        m.setattr(prefilter, "ARROW_MIN_LINES", 1)  # prefilters on even for tiny batches
        fast = _run(path, sizes)
    with monkeypatch.context() as m:
        m.setattr(status.StatusParser, "parse", _read_every_line)
        m.setattr(status, "is_training", _classified_training)
        slow = _run(path, sizes)
    assert fast[0] == slow[0]
    assert fast[1] == slow[1]
    return [r for r in fast[0] if r["kind"] == "status"]


# -- hand-made logs ------------------------------------------------------------------------

STAMP = "2026-01-01 10:00:{s:02d},000 - INFO - trainer - "
TRAIN = STAMP + "epoch {e} step {k} loss={v} lr=1.0e-04"
NOISE = STAMP + "Loaded shard {k} (512 samples) from /data/train/shard-0{k}.tar in 0.95s"
GPU_ROW = "| N/A   37C    P0   274W / 400W |  14184MiB / 40960MiB |      82%      Default |"


def _tb(exc: str, frames: int = 3, prefix: str = "") -> str:
    lines = [f"{prefix}Traceback (most recent call last):"]
    for f in range(frames):
        lines.append(f'{prefix}  File "/opt/x/mod{f}.py", line {10 + f}, in fn{f}')
        lines.append(f"{prefix}    r = call_{f}(x, y)")
    lines.append(f"{prefix}{exc}")
    return "\n".join(lines) + "\n"


def _train(n: int, start: int = 0) -> str:
    return "".join(
        TRAIN.format(s=(start + i) % 60, e=1 + (start + i) // 20, k=start + i, v=f"0.{500 - i}")
        + "\n"
        for i in range(n)
    )


def _catboost(n: int) -> str:
    """CatBoost's iterations: claimed by its parser, though classify() reads them as "end"."""
    return "".join(
        f"{i}:\tlearn: 0.{900 - i}\ttest: 0.{950 - i}\tbest: 0.{950 - i} ({i})\t"
        f"total: {10 + i}ms\tremaining: 1.2s\n"
        for i in range(n)
    )


def _noise(n: int) -> str:
    return "".join(NOISE.format(s=i % 60, k=1000 + i) + "\n" for i in range(n))


CHAINED = (
    _tb("KeyError: 'x'", 2)
    + "\nDuring handling of the above exception, another exception occurred:\n\n"
    + _tb("RuntimeError: config broken:", 2)
    + "  key x missing\n"
)
SEGFAULT = "/var/spool/slurmd/job12/slurm_script: line 9:  4242 Segmentation fault   python x.py"
NESTED = (  # a frame quoting another traceback opens a new one: not Python ignoring this one
    "Exception ignored in: <function Pool.__del__ at 0x7f>\n"
    + _tb("ValueError: outer", 1).replace("ValueError: outer\n", "")
    + "    Traceback (most recent call last):\n"
    + '      File "/opt/x/worker.py", line 3, in run\n'
    + "ValueError: boom\n"
)
RICH = (
    "╭───────────── Traceback (most recent call last) ─────────────╮\n"
    "│ /opt/train.py:12 in main                                      │\n"
    "│ ❱ 12 │   trainer.fit(model)                                   │\n"
    "╰───────────────────────────────────────────────────────────────╯\n"
    "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB\n"
)
SCENARIOS = {
    "handled then training": _train(30)
    + _tb("ConnectionResetError: [Errno 104] Connection reset by peer")
    + "Retry 3/5 succeeded\n"
    + GPU_ROW * 1
    + "\n"
    + _noise(12)
    + _train(30, 30),
    "handled then a bar": _train(10)
    + _tb("OSError: read failed")
    + _noise(5)
    + "".join(f" {p}%|█████     | {p}/100 [00:0{p % 10}<00:10, 3.2it/s]\n" for p in range(40, 46))
    + "Training completed in 3h 2m\n",
    "fatal at the end": _train(40) + _noise(3) + _tb("RuntimeError: CUDA out of memory. Tried"),
    "fatal, then nvidia-smi": _train(20) + RICH + (GPU_ROW + "\n") * 8,
    "chained at the end": _train(25) + CHAINED,
    "handled then catboost": _catboost(20)
    + _tb("OSError: [Errno 5] Input/output error")
    + _noise(3)
    + _catboost(4),
    "two handled, noise between": _train(20)
    + (_tb("ValueError: retry") + _noise(7)) * 3
    + "val_loss: 0.31 val_acc: 0.9\n" * 2
    + _noise(4),
    "time limit": _train(33)
    + _tb("ValueError: bad batch")
    + "slurmstepd: error: *** JOB 1234 ON node7 CANCELLED AT 2026-01-01T10:00:00 DUE TO TIME"
    " LIMIT ***\n",
    "preempted, wrapped": _train(21)
    + "slurmstepd: error: *** JOB 12 ON node1 CANCELLED AT 2026-01-01T10:00:00\n"
    + "DUE TO PREEMPTION ***\n",
    "cancelled": _train(17) + _tb("KeyboardInterrupt", 4),
    "segfault among GPU rows": _train(18) + (GPU_ROW + "\n") * 5 + SEGFAULT + "\n",
    "a frame quoting a traceback": _train(14) + NESTED,
    "ranks interleaved": _train(12)
    + _tb("RuntimeError: NCCL error in: ProcessGroupNCCL.cpp:1191", 2, "[rank1]: ")
    + "[rank0]: epoch 3 step 40 loss=0.2\n"
    + _tb("RuntimeError: NCCL error", 2, "[rank0]: ")
    + _noise(4),
    "ignored at shutdown": _train(26)
    + "Exception ignored in: <function Foo.__del__ at 0x7f>\n"
    + _tb("TypeError: 'NoneType' object is not callable", 1)
    + _noise(2),
    "abort": _train(9)
    + "terminate called after throwing an instance of 'c10::Error'\n"
    + "  what():  CUDA error: an illegal memory access was encountered\n",
}
EXPECTED = {  # the last observation: a forgiven traceback leaves the end verdict
    "abort": ("failed", None),
    "cancelled": ("failed", "cancelled"),
    "chained at the end": ("failed", None),
    "fatal at the end": ("failed", "out_of_memory"),
    "fatal, then nvidia-smi": ("failed", "out_of_memory"),
    "handled then a bar": ("completed", "Training completed in 3h 2m"),
    "handled then catboost": ("completed", status.CLEAN_END),
    "handled then training": ("killed", status.KILLED),
    "ignored at shutdown": ("completed", status.CLEAN_END),
    "preempted, wrapped": ("failed", "preempted"),
    "ranks interleaved": ("failed", "nccl_error"),
    "segfault among GPU rows": ("failed", None),
    "a frame quoting a traceback": ("failed", None),
    "time limit": ("failed", "time_limit"),
    "two handled, noise between": ("completed", status.CLEAN_END),
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenarios_read_the_same_at_every_batch_edge(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "job.log"
    log.write_text(SCENARIOS[name] * 2 if name.startswith(("handled", "two")) else SCENARIOS[name])
    for sizes in ([1], [2, 3], [7, 1, 13], [1 << 20]):
        statuses = sorted(_both_ways(log, sizes, monkeypatch), key=lambda r: r["offset"])
        assert (statuses[-1]["status"], statuses[-1]["reason"]) == EXPECTED[name]


# -- generated logs ------------------------------------------------------------------------

EXCEPTIONS = [
    "ConnectionResetError: [Errno 104] Connection reset by peer",
    "RuntimeError: CUDA out of memory. Tried to allocate 2 GiB",
    "ValueError: bad config:",
    "KeyboardInterrupt",
    "SystemExit: 0",
    "INFO: not an exception",
]
MARKERS = [
    "slurmstepd: error: *** JOB 12 ON node1 CANCELLED AT 2026-01-01T10:00:00 ***",
    "slurmstepd: error: *** JOB 12 ON node1 CANCELLED AT 2026-01-01T10:00:00",
    "DUE TO TIME LIMIT ***",
    "srun: error: node1: task 0: Out Of Memory",
    "Segmentation fault (core dumped)",
    SEGFAULT,
    "terminate called after throwing an instance of 'c10::Error'",
    "  what():  CUDA error: an illegal memory access",
    "Received SIGTERM, shutting down",
    "Spot instance interruption notice received",
    "Process finished with exit code 0",
    "exited with code 137",
    "Training completed in 3h",
    "***** train metrics *****",
    "torch.distributed.elastic.multiprocessing.errors.ChildFailedError:",
    "============================================================",
    "train.py FAILED",
    "Root Cause (first observed failure):",
    "  exitcode  : -9 (pid: 12)",
]


def _block(r: random.Random) -> str:
    """A few lines of one kind: training of every shape status reads, chatter that looks
    close to it (digits in names, fractions, GPU tables), tracebacks and failure markers."""
    d = r.randint
    k = d(1, 30)
    kinds = [
        lambda: _train(d(1, 6), d(0, 500)),
        lambda: _noise(d(1, 8)),
        lambda: _catboost(d(1, 3)),
        lambda: f"{{'loss': 0.{d(1, 99)}, 'grad_norm': {d(0, 9)}.5, 'epoch': 0.{d(0, 9)}}}\n",
        lambda: f"top{r.choice('1259')} acc: 0.{d(1, 99)}\n",
        lambda: f"{{'top{r.choice('15')}': 0.5, 'step_{d(0, 9)}': 3}}\n",
        lambda: f"f{d(0, 3)}: 0.{d(1, 9)} map{d(0, 99)}: 0.3\n",
        lambda: f"Epoch {d(1, 3)}/3\n",
        lambda: f"{k}/{k} ━━━━━━━━━━━━━━━━━━━━ 1s 3ms/step - accuracy: 0.9 - loss: 0.2\n",
        lambda: f" {d(0, 100)}%|████▌     | {d(0, 9)}/9 [00:01<00:10, 3.2it/s]\n",
        lambda: f"Retry {d(1, 5)}/5 succeeded\n",
        lambda: f"Training ━━━━━━━━━━╺━━━━━━━━━ {d(0, 9)}/9 0:00:0{d(0, 9)}\n",
        lambda: f"{d(1, 9)}/9 [==============>....] - ETA: 0s - loss: 0.{d(1, 9)}\n",
        lambda: f"[{d(0, 99)}]\tvalidation_0-logloss:0.{d(1, 999)}\n",
        lambda: (GPU_ROW + "\n") * d(1, 4),
        lambda: STAMP.format(s=d(0, 59)) + f"Memory allocated: {d(1, 9)} MiB\n",
        lambda: r.choice(["  warnings.warn(\n", "/x.py:3: UserWarning: careful\n"]),
        lambda: r.choice(["\n", "\n", "   \n"]),
        lambda: f"num_epochs = {d(1, 9)}\n",
        lambda: "Test accuracy: 0.9\n",
        lambda: (
            _tb(r.choice(EXCEPTIONS), d(0, 4), r.choice(["", "", "[rank1]: ", "3: "]))
            + r.choice(["", "", "  key x missing\n"])
        ),
        lambda: CHAINED,
        lambda: RICH,
        lambda: NESTED,
        lambda: "Exception ignored in: <function Foo.__del__ at 0x7f>\n",
        lambda: r.choice(MARKERS) + "\n",
    ]
    return r.choice(kinds)()


def _generated(seed: int, blocks: int) -> str:
    r = random.Random(seed)
    return "".join(_block(r) for _ in range(blocks))


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 2**32 - 1),
    blocks=st.integers(5, 120),
    sizes=st.lists(st.integers(1, 80), min_size=1, max_size=4),
)
def test_generated_logs_read_the_same_both_ways(
    seed: int, blocks: int, sizes: list[int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / f"gen-{seed}.log"
    log.write_text(_generated(seed, blocks), encoding="utf-8")
    _both_ways(log, sizes, monkeypatch)


# -- the pieces ----------------------------------------------------------------------------


def test_is_training_by_shape_agrees_with_classify_whatever_came_first() -> None:
    # Same shapes, other digits: a digit inside a name can change the reading (top1 is a
    # metric name, top2 is not), so those are never answered from the shape cache.
    lines = [
        "top1 acc: 0.5",
        "top2 acc: 0.5",
        "{'top5': 0.5}",
        "{'top3': 0.5}",
        "map50: 0.3 step 3",
        "map20: 0.3 step 3",
        "epoch 3 step 40 loss=0.2 lr=1.0e-04",
        "epoch 9 step 99 loss=0.7 lr=3.5e-07",
        "Retry 3/5 succeeded",
        "[rank0]: 12/100 ━━━━ 1s",
        "2026-01-01 10:00:01,000 - INFO - x - val_acc=0.9",
        "2026-13-45 10:00:01,000 - INFO - x - val_acc=0.9",
        "Test accuracy: 0.9",
        "",
        "  warnings.warn(",
    ]
    for order in (lines, lines[::-1], sorted(lines), sorted(lines, reverse=True)):
        loop_lines._TRAINING_SHAPES.clear()
        for text in order:
            assert loop_lines.is_training(text, {}) == _classified_training(text, {}), text


def test_training_lines_keep_every_line_classify_reads_as_training(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The necessary condition TrainingLines relies on, checked on the lines themselves."""
    monkeypatch.setattr(prefilter, "ARROW_MIN_LINES", 1)
    texts = _generated(7, 400).splitlines()
    for case in corpus_cases():
        texts += file_lines(CORPUS / case / "stdout.log")[0]
    batch = LineBatch(texts, list(range(len(texts))))
    keep = loop_lines.TrainingLines(batch, CANDIDATES)
    training = [i for i, t in enumerate(texts) if _classified_training(t, {})]
    assert len(training) > 100
    assert [texts[i] for i in training if i not in keep] == []
    assert len(batch.matching(CANDIDATES)) < len(texts)  # the shared pass did select


def test_the_shared_pattern_holds_every_form_classify_reads_as_training() -> None:
    # TrainingLines borrows the generic parser's pattern: it must keep these alternatives.
    for part in (CONTEXT_PATTERN, metric_value_pattern(), literal("{")):
        assert part in CANDIDATES


def test_corpus_logs_read_the_same_both_ways(monkeypatch: pytest.MonkeyPatch) -> None:
    for case in corpus_cases():
        _both_ways(CORPUS / case / "stdout.log", [3, 64], monkeypatch)


def test_segfault_wording_is_a_candidate_but_default_is_not() -> None:
    lines = [GPU_ROW, "using the default config", SEGFAULT] * 30
    picked = LineBatch(lines, list(range(len(lines)))).matching(status._MODES["markers"])
    assert [lines[i] for i in picked] == [SEGFAULT] * 30


def test_the_bench_shaped_log_gives_the_same_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A handled traceback every few dozen lines, as in the benchmark log and real ones."""
    r = random.Random(3)
    parts = []
    for _ in range(60):
        parts.append(_train(r.randint(5, 30), r.randint(0, 900)))
        parts.append(_noise(r.randint(0, 6)))
        parts.append(_tb("ConnectionResetError: [Errno 104] Connection reset by peer"))
        parts.append("Retry 3/5 succeeded\n" + (GPU_ROW + "\n") * r.randint(0, 8))
    log = tmp_path / "bench.log"
    log.write_text("".join(parts))
    assert _both_ways(log, [4096], monkeypatch)[-1]["status"] == "failed"  # the last one
    log.write_text("".join(parts) + _train(3, 2000))
    assert _both_ways(log, [4096], monkeypatch)[-1]["status"] == "killed"  # forgiven
