"""What the hyperparameter-search parsers share (Optuna, Ray Tune, KerasTuner: one log, many
trials, each trial its own sub-run): the sub-run naming, value reading, line claiming, and the
lines worth reading in a batch.

Their hints are plain literals, so they join the declarative parsers' shared literal scan
(``declarative_scan``) instead of paying a pass over the batch of their own: a full RE2 pass
costs about as much for three literals as for fifty, and most logs hold no trial at all."""

from __future__ import annotations

import re
from typing import Any

from loglake.parse.base import LineBatch
from loglake.parse.declarative_scan import candidate_lines, literal_gate, register
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


class _Hints:
    """Holds the tuner hints in the shared scan for as long as this module is loaded."""


_ALL_HINTS = frozenset(OPTUNA_HINTS + RAY_HINTS + KT_HINTS)
_HINTS_OWNER = _Hints()
register(_HINTS_OWNER, _ALL_HINTS)


def hinted_lines(batch: LineBatch, hints: tuple[str, ...]) -> list[int]:
    """Indices (ascending) of the lines holding one of ``hints``; every line of a batch too
    small for an Arrow scan (what ``LineBatch.matching`` gives there, so small and large
    batches read as before).

    The lines holding any tuner hint are picked once for the three parsers (they are few:
    each parser then tests its own hints on them in Python).
    """
    texts = batch.texts
    arr = batch.arrow()
    if arr is None:
        return list(range(len(texts)))
    lines = candidate_lines(texts, _ALL_HINTS, arr, batch.pattern_mask)
    gate = literal_gate(hints)
    return [i for i in lines if gate(texts[i])]


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
