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
from loglake.parse.declarative_emit import records_of
from loglake.parse.pipeline import FileParsers
from loglake.parse.records import Emitter
from loglake.parse.values import normalize_key
from loglake.tail.cleanup import clean_lines

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


def test_builtins_stay_quick_on_a_large_log(builtins: list[DeclarativeParser]) -> None:
    """Every built-in over ~60k mostly irrelevant lines: the prefilters keep this well under 1 s."""
    import time

    lines = (CORPUS / "xgboost_native" / "stdout.log").read_text().splitlines()
    noise = [f"INFO worker {i}: loaded shard {i} in 0.{i % 10}s" for i in range(2000)]
    texts = (noise + lines) * 30
    offsets = list(range(len(texts)))
    fp = FileParsers(list(builtins))
    out = Emitter()
    started = time.perf_counter()
    for i in range(0, len(texts), 5000):
        fp.feed(LineBatch(texts[i : i + 5000], offsets[i : i + 5000]), out)
    elapsed = time.perf_counter() - started
    assert len(out.metrics) == 30 * 180
    assert elapsed < 3.0, elapsed
