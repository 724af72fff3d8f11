"""The tuner parsers read only the lines holding their hints, found by the declarative
parsers' shared literal scan: the records must equal those of reading every line."""

from __future__ import annotations

from pathlib import Path

import pytest

from loglake.parse.base import LineBatch
from loglake.parse.builtin import builtin_parsers
from loglake.parse.declarative_scan import ARROW_MIN_LINES
from loglake.parse.trials import KT_HINTS, OPTUNA_HINTS, RAY_HINTS, hinted_lines

from .conftest import CORPUS
from .test_optuna import KERAS_TUNER, OPTUNA_MORE, RAY_NEW, RAY_OLD, Parsed

# lines near the hints: a hint's case changed, split by an escape, in unicode, mid-word
FILLER = [
    "trial 3 finished with value: 0.5",
    "TRIAL name | status",
    "Bestial",
    "Tri\u00e1l 4 finished",
    "epoch 3: loss=0.25 (Trial)",
    "Resultfor x:",
    "\u0660\u0661 elapsed",
    "",
    "   ",
    "Exp\u00e9riment",
]


def _padded(text: str) -> str:
    """``text`` twice among filler lines (blocks kept whole), long enough for the Arrow scan."""
    pad = "\n".join(FILLER * (ARROW_MIN_LINES // len(FILLER) + 1))
    return f"{pad}\n{text.rstrip()}\n{pad}\n{text.rstrip()}\n{pad}\n"


def _records(parsed: Parsed) -> dict[str, list[dict[str, object]]]:
    return {k: sorted(v, key=repr) for k, v in parsed.rows.items()}


@pytest.mark.parametrize(
    "sample", [OPTUNA_MORE, RAY_NEW, RAY_OLD, KERAS_TUNER], ids=["optuna", "ray", "ray_old", "kt"]
)
def test_shared_scan_gives_the_records_of_reading_every_line(tmp_path: Path, sample: str) -> None:
    keep = builtin_parsers()  # the declarative parsers' literals join the shared scan too
    path = tmp_path / "job.log"
    path.write_text(_padded(sample))
    every_line = Parsed(path, batch=4)  # batches too small to scan: every line is read
    scanned = Parsed(path, batch=100_000)  # one batch: only the hinted lines are read
    assert _records(scanned) == _records(every_line)
    assert scanned.rows.get("metrics") or scanned.rows.get("params")
    assert keep


def test_corpus_study_reads_the_same_through_the_scan() -> None:
    path = CORPUS / "optuna_study" / "stdout.log"
    assert _records(Parsed(path, batch=100_000)) == _records(Parsed(path, batch=4))


@pytest.mark.parametrize("hints", [OPTUNA_HINTS, RAY_HINTS, KT_HINTS])
def test_hinted_lines_are_the_lines_holding_a_hint(hints: tuple[str, ...]) -> None:
    texts = [*FILLER, "Search: Running Trial #2", "Result for f_1:", "Best Value So Far |x"] * 20
    batch = LineBatch(texts, list(range(len(texts))))
    assert hinted_lines(batch, hints) == [
        i for i, t in enumerate(texts) if any(h in t for h in hints)
    ]


def test_small_or_unscannable_batches_read_every_line() -> None:
    small = ["Trial 1 finished with value: 0.5", "loss=1"]
    assert hinted_lines(LineBatch(small, [0, 1]), OPTUNA_HINTS) == [0, 1]
    odd = ["Trial 1", "bad \ud800 surrogate", "x"] * ARROW_MIN_LINES
    batch = LineBatch(odd, list(range(len(odd))))
    assert hinted_lines(batch, OPTUNA_HINTS) == list(range(len(odd)))
