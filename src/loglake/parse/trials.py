"""What the hyperparameter-search parsers share (Optuna, Ray Tune, KerasTuner: one log, many
trials, each trial its own sub-run): the sub-run naming, value reading, line claiming, and one
prefilter pass over a batch that serves all three parsers — each then matches its own hints
among the few lines it kept."""

from __future__ import annotations

import re
from typing import Any

from loglake.parse.base import LineBatch
from loglake.parse.prefilter import any_literal
from loglake.parse.records import Emitter
from loglake.parse.timestamps import leading_timestamp
from loglake.parse.values import to_number

OPTUNA_HINTS = ("Trial", "tudy", "Best")
RAY_HINTS = ("Trial", "Result for", "experiment", "Result logdir")
KT_HINTS = ("Trial", "So Far", "elapsed")
TUNERS = any_literal(OPTUNA_HINTS + RAY_HINTS + KT_HINTS)
# ``  key: value`` lines of a trial's or a study's indented block
BLOCK_KV_RE = re.compile(r"^\s+(?P<k>[\w.\-/]+)\s*:\s*(?P<v>.*?)\s*$")


def trial_sub(number: int | str) -> str:
    """The sub-run name of a search trial: ``trial-3``."""
    return f"trial-{number}"


def line_ts(batch: LineBatch, i: int, text: str) -> float | None:
    t = batch.ts[i] if batch.ts is not None else None
    return t if t is not None else leading_timestamp(text)[0]


def claim(out: Emitter, offset: int) -> None:
    if out.claim_lines:
        out.claimed.add(offset)


def scalar(text: str) -> Any:
    """A value as printed in a table or ``key: value`` line: a number when it is one."""
    num = to_number(text)
    if num is not None and not text.strip().lower().startswith(("nan", "inf", "+", "-i")):
        return int(num) if re.fullmatch(r"-?\d+", text.strip()) else num
    return text.strip().strip("'\"")
