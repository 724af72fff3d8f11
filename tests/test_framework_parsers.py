"""The built-in framework parsers (parsers/*.toml): their own tests, and real corpus logs.

Corpus truth comes from the libraries' APIs (xgboost evals_result, sklearn loss_curve_ and
validation_scores_, Keras History), never from the log; values must match to the printed
precision and steps/epochs must be the log's own numbering.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from loglake.parse.base import LineBatch
from loglake.parse.builtin import builtin_parser_dir, builtin_parsers
from loglake.parse.declarative import DeclarativeParser, load_parser_dir, load_parser_file
from loglake.parse.declarative_check import records_of
from loglake.parse.pipeline import FileParsers
from loglake.parse.records import Emitter
from loglake.parse.values import normalize_key
from loglake.tail.cleanup import FLAG_REDRAWN, RedrawStates, clean_lines, redraw_segments

from .conftest import CORPUS

PARSER_FILES = sorted(builtin_parser_dir().glob("*.toml"))
EXPECTED = {
    "xgboost",
    "lightgbm",
    "catboost",
    "sklearn",
    "keras",
    "lightning",
    "hf_trainer",
    "timm",
}


@pytest.fixture(scope="module")
def builtins() -> list[DeclarativeParser]:
    return load_parser_dir(builtin_parser_dir(), trusted=True)


@pytest.mark.parametrize("path", PARSER_FILES, ids=lambda p: p.stem)
def test_embedded_tests_pass(path: Path) -> None:
    parser = load_parser_file(path, trusted=True)
    assert parser.spec.test, f"{path.name} carries no [[test]] blocks"
    failures = parser.run_embedded_tests()
    assert not failures, "\n".join(map(str, failures))


@pytest.mark.parametrize("path", PARSER_FILES, ids=lambda p: p.stem)
def test_every_builtin_is_a_specific_parser_with_a_prefilter(path: Path) -> None:
    parser = load_parser_file(path, trusted=True)
    assert 10 <= parser.priority <= 60  # specific parsers claim their lines before generic ones
    assert parser.spec.framework
    assert parser._prefilter is not None  # hot path: one scan per batch finds candidate lines


def test_builtins_load_through_the_entry_point_door() -> None:
    names = {p.name for p in builtin_parsers()}
    assert EXPECTED <= names


def _run_corpus(parsers: list[DeclarativeParser], case: str) -> list[dict[str, Any]]:
    raw = (CORPUS / case / "stdout.log").read_bytes().split(b"\n")
    if raw[-1] == b"":
        raw.pop()
    texts, _ = clean_lines(raw)
    offsets, pos = [], 0
    for line in raw:
        offsets.append(pos)
        pos += len(line) + 1
    fp = FileParsers(list(parsers))
    out = Emitter()
    half = len(texts) // 2  # two batches: state carries across
    fp.feed(LineBatch(texts[:half], offsets[:half]), out)
    fp.feed(LineBatch(texts[half:], offsets[half:]), out)
    fp.finalize(out, idle=True, offset=pos)
    return records_of(out, offsets)


def _decimals(truth: dict[str, Any], key: str) -> int:
    dec = truth["log_format"]["value_decimals"]
    return dec[key] if isinstance(dec, dict) else dec


@pytest.mark.parametrize(
    ("case", "position", "framework"),
    [
        ("xgboost_native", "step", "xgboost"),
        ("sklearn_mlp", "step", "scikit-learn"),
        ("keras_mlp", "epoch", "keras"),
    ],
)
def test_corpus_metrics_match_truth(
    builtins: list[DeclarativeParser], case: str, position: str, framework: str
) -> None:
    truth = json.loads((CORPUS / case / "truth.json").read_text())
    shift = truth["log_format"]["log_step_minus_truth_step"]
    recs = _run_corpus(builtins, case)
    assert not [r for r in recs if r["kind"] == "error"]
    facts = [r["value"] for r in recs if r["kind"] == "fact" and r["key"] == "framework"]
    assert facts == [framework]
    got: dict[tuple[str, float], list[float]] = {}
    for r in recs:
        if r["kind"] == "metric":
            got.setdefault((r["key"], r[position]), []).append(r["value"])
    # one value per key and position: no running averages, no repeated rounds
    assert all(len(v) == 1 for v in got.values()), {k: v for k, v in got.items() if len(v) > 1}
    # step-less summary lines ("Final validation accuracy: 0.9790") are the generic parser's
    wanted = [m for m in truth["metrics"] if m["in_log"] and m["step"] is not None]
    assert wanted
    for m in wanted:
        at = (normalize_key(m["log_key"]), m["step"] + shift)
        assert at in got, f"{case}: {at} not extracted"
        tol = 0.5 * 10.0 ** -_decimals(truth, m["key"]) + 1e-12
        assert abs(got[at][0] - m["value"]) <= tol, (at, got[at][0], m["value"])
    assert set(got) == {(normalize_key(m["log_key"]), m["step"] + shift) for m in wanted}


@pytest.mark.parametrize("case", ["hf_trainer_gpt2_notqdm", "optuna_study", "crash_torch"])
def test_no_framework_parser_fires_on_other_libraries_logs(
    builtins: list[DeclarativeParser], case: str
) -> None:
    assert _run_corpus(builtins, case) == []


def test_builtins_on_a_large_mostly_irrelevant_log(builtins: list[DeclarativeParser]) -> None:
    """~60k lines in 5000-line batches: the shared prefilter scan finds every xgboost round
    among the noise, and nothing else fires."""
    lines = (CORPUS / "xgboost_native" / "stdout.log").read_text().splitlines()
    noise = [f"INFO worker {i}: loaded shard {i} in 0.{i % 10}s" for i in range(2000)]
    texts = (noise + lines) * 30
    offsets = list(range(len(texts)))
    fp = FileParsers(list(builtins))
    out = Emitter()
    for i in range(0, len(texts), 5000):
        fp.feed(LineBatch(texts[i : i + 5000], offsets[i : i + 5000]), out)
    assert len(out.metrics) == 30 * 180
    assert set(out.metrics.data["parser"]) == {"xgboost@1"}


# -- carriage-return redraws and model.evaluate ------------------------------------------------


def _feed_raw(parsers: list[DeclarativeParser], raw: bytes) -> list[dict[str, Any]]:
    """Raw log bytes through the indexer's own steps: cleanup, redraw states, the parsers."""
    lines = raw.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    texts, flags = clean_lines(lines)
    offsets, pos = [], 0
    for line in lines:
        offsets.append(pos)
        pos += len(line) + 1
    redraws = {i: redraw_segments(lines[i]) for i, f in enumerate(flags) if f & FLAG_REDRAWN}
    fp = FileParsers(list(parsers))
    out = Emitter()
    fp.feed(LineBatch(texts, offsets, None, redraws or None), out)
    fp.finalize(out, idle=True, offset=pos)
    return records_of(out, offsets)


def _tqdm(desc: str, n: int, total: int, postfix: str = "") -> str:
    """One tqdm state as Lightning's TQDMProgressBar prints it (bar width 10)."""
    pct = 100 * n // total
    fill = "█" * (pct // 10) + ("▌" if pct % 10 >= 5 and pct < 100 else "")
    rate = "?it/s" if n == 0 else f"{20 + n % 7}.{n % 10}0it/s"
    left = "00:00<?" if n == 0 else "00:01<00:00"
    return f"{desc}: {pct:3d}%|{fill:<10}| {n}/{total} [{left}, {rate}{postfix}]"


def _lightning_run(epochs: int) -> tuple[bytes, dict[tuple[str, float], float]]:
    """A Lightning fit as written to a file: the sanity check, then ONE physical line on
    which the training bar is redrawn for the whole run, validation bars in between."""
    segs = [_tqdm("Sanity Checking DataLoader 0", k, 2) for k in range(3)]
    segs.append(" " * 100)  # leave=False: the sanity bar clears itself
    truth: dict[tuple[str, float], float] = {}
    post = ", v_num=3"
    for e in range(epochs):
        train, val = round(0.9 / (e + 1), 3), round(1.0 / (e + 2), 3)
        # the previous epoch's val_loss stays in the postfix until this validation ends
        stale = f", val_loss={truth[('val_loss', float(e - 1))]:.3f}" if e else ""
        for k in range(0, 32, 4):  # running values during the epoch
            running = f"{post}, train_loss={0.95 - k / 100:.3f}{stale}" if k else post + stale
            segs.append(_tqdm(f"Epoch {e}", k, 32, running))
        segs.append(_tqdm(f"Epoch {e}", 32, 32, f"{post}, train_loss={train:.3f}{stale}"))
        segs += [_tqdm("Validation DataLoader 0", k, 8) for k in (0, 4, 8)]
        segs.append(" " * 100)
        segs.append(
            _tqdm(f"Epoch {e}", 32, 32, f"{post}, train_loss={train:.3f}, val_loss={val:.3f}")
        )
        truth[("train_loss", float(e))] = train
        truth[("val_loss", float(e))] = val
    head = b"GPU available: False, used: False\nSeed set to 7\n"
    bar_line = ("\r" + "\r".join(segs)).encode()
    tail = f"\n`Trainer.fit` stopped: `max_epochs={epochs}` reached.\n".encode()
    return head + bar_line + tail, truth


def test_lightning_tqdm_line_redrawn_for_the_whole_run(builtins: list[DeclarativeParser]) -> None:
    raw, truth = _lightning_run(epochs=5)
    recs = _feed_raw(builtins, raw)
    got = {(r["key"], r["epoch"]): r["value"] for r in recs if r["kind"] == "metric"}
    assert got == truth  # every epoch, validation values of that epoch (not the stale ones)
    assert all(r["line"] == 2 and r["step"] is None for r in recs if r["kind"] == "metric")
    assert [r["status"] for r in recs if r["kind"] == "status"] == ["completed"]
    params = [(r["key"], r["value"]) for r in recs if r["kind"] == "param"]
    assert params == [("seed", "7")]


@pytest.mark.parametrize("colour", [False, True])
def test_lightning_bar_read_from_lazy_redraw_states(
    builtins: list[DeclarativeParser], colour: bool
) -> None:
    """The indexer's RedrawStates (lines ruled out from their raw text, never rendered) give
    the records rendering every redrawn line gives, plain or coloured."""
    raw, truth = _lightning_run(epochs=4)
    bars = [b"Validation DataLoader 0:  50%|\r" * 3 + b"Validation DataLoader 0: 100%|"] * 3
    raw += b"\n".join(bars) + b"\n"
    if colour:  # an escape code inside "100%|": only rendering tells what the states hold
        raw = raw.replace(b"100%|", b"100%\x1b[0m|")
    lines = raw.split(b"\n")[:-1]
    texts, flags = clean_lines(lines)
    offsets = [sum(len(x) + 1 for x in lines[:i]) for i in range(len(lines))]
    redrawn = [i for i, f in enumerate(flags) if f & FLAG_REDRAWN]
    out = Emitter()
    fp = FileParsers(list(builtins))
    fp.feed(LineBatch(texts, offsets, None, RedrawStates(lines, redrawn)), out)
    fp.finalize(out, idle=True, offset=len(raw))
    got = records_of(out, offsets)
    assert got == _feed_raw(builtins, raw)
    assert {(r["key"], r["epoch"]): r["value"] for r in got if r["kind"] == "metric"} == truth


def test_lightning_redraws_split_over_batches_and_restarts(
    builtins: list[DeclarativeParser],
) -> None:
    """The bar line and the lines around it in separate batches, state through JSON."""
    raw, truth = _lightning_run(epochs=3)
    whole = _feed_raw(builtins, raw)
    lines = raw.split(b"\n")[:-1]
    texts, flags = clean_lines(lines)
    offsets = [sum(len(x) + 1 for x in lines[:i]) for i in range(len(lines))]
    out = Emitter()
    states: dict[str, Any] | None = None
    for i in range(len(lines)):
        fp = FileParsers(list(builtins), json.loads(json.dumps(states)) if states else None)
        redraws = {0: redraw_segments(lines[i])} if flags[i] & FLAG_REDRAWN else None
        fp.feed(LineBatch(texts[i : i + 1], offsets[i : i + 1], None, redraws), out)
        states = fp.snapshot()
    assert records_of(out, offsets) == whole
    assert {(r["key"], r["epoch"]): r["value"] for r in whole if r["kind"] == "metric"} == truth


def test_keras_evaluate_bars_have_no_epoch(builtins: list[DeclarativeParser]) -> None:
    bar = "━" * 20
    fit_and_evaluate = [
        "Epoch 1/2",
        f"23/23 {bar} 0s 3ms/step - accuracy: 0.8000 - loss: 0.5000 - val_loss: 0.6000",
        "Epoch 2/2",
        f"23/23 {bar} 0s 3ms/step - accuracy: 0.9000 - loss: 0.3000 - val_loss: 0.4000",
        f"313/313 {bar} 1s 2ms/step - accuracy: 0.8800 - loss: 0.3500",
        "Epoch 2: early stopping",
    ]
    keras = next(p for p in builtins if p.name == "keras")
    recs = [r for r in keras.extract(fit_and_evaluate) if r["kind"] == "metric"]
    got = [(r["key"], r["epoch"], r["step"], r["value"]) for r in recs]
    assert got == [
        ("accuracy", 1.0, None, 0.8),
        ("loss", 1.0, None, 0.5),
        ("val_loss", 1.0, None, 0.6),
        ("accuracy", 2.0, None, 0.9),
        ("loss", 2.0, None, 0.3),
        ("val_loss", 2.0, None, 0.4),
        ("accuracy", None, None, 0.88),
        ("loss", None, None, 0.35),
    ]
    alone = [r for r in keras.extract(fit_and_evaluate[4:5]) if r["kind"] == "metric"]
    assert [(r["key"], r["epoch"]) for r in alone] == [("accuracy", None), ("loss", None)]
