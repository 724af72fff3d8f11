"""The status parser's tight loops over the lines a traceback makes it read.

While a traceback is open every line matters to the status parser (``builtins/status.py``),
but two runs of them matter only in one simple way, so they are walked here without the
full per-line reading: the frames (``  File "x.py", line 3``: counted) and the few lines
after the exception's message (counted until the traceback is forgotten, and asked whether
training resumed while a traceback is pending). Once it is forgotten but still pending, the
lines between the prefilter's candidates are asked only that (``resumes``). Each loop stops
at the first line the full reading could treat otherwise; tests/test_status_fastpath.py
checks that both ways agree.
"""

from __future__ import annotations

import re
from typing import Any

from loglake.parse.base import LineBatch
from loglake.parse.loop_lines import TrainingLines, bar_hint, is_training, split_rank_prefix
from loglake.parse.records import Emitter
from loglake.parse.timestamps import dated_as, leading_timestamp, shape_split

State = dict[str, Any]

RESUMED_LINES = 2  # training lines after a traceback that show it was handled
AFTER_LINES = 5  # lines read after an exception message (or a chain) before the traceback ends
TB_HEAD = "Traceback (most recent call last)"
FRAME_START = (" ", "\t", "│", "┃", "╭", "╰", "|", "^", "~")
CHAIN_RE = re.compile(
    r"During handling of the above exception|The above exception was the direct cause"
)
_CHAIN_WORDS = "above exception"  # in every CHAIN_RE match


def chained(text: str) -> bool:
    """Whether the line announces a chained traceback (``CHAIN_RE``): asked of every line
    after a traceback's message, so a substring test rules out nearly all first."""
    return _CHAIN_WORDS in text and CHAIN_RE.search(text) is not None


def record_starts(text: str) -> bool:
    """Whether a log record's stamp starts the line (``leading_timestamp(text)[0] is not
    None``): asked of the line after an exception's message, which goes on over lines until
    a new record starts. Where the line shape's split has its stamp at the start, the stamp
    patterns (which see a digit only as a digit) match every line of the shape there with
    the same pattern, so only the line's date is its own (``dated_as``); other lines are
    read by ``leading_timestamp``."""
    how = shape_split(text)
    if how is not None and how.stamp_at == 0 and how.pattern is not None:
        return dated_as(text, how)
    return leading_timestamp(text)[0] is not None


def frames_end(texts: list[str], i: int) -> int:
    """The end of the run of traceback frame lines (``  File "x.py", line 3, in f``, the
    code under it, rich's boxed frames) from ``i``: lines that cannot open a traceback
    (no ``Traceback (most recent call last)``) nor close a message (not blank), so all an
    open traceback's frames phase does with them is count them."""
    n = len(texts)
    while i < n:
        text = texts[i]
        if not text.startswith(FRAME_START) or text.isspace() or TB_HEAD in text:
            return i
        i += 1
    return i


def only_after(st: State) -> bool:
    """Whether the one thing that makes every line matter is a traceback's "after" phase
    (one traceback, no rank prefixes, no report or marker awaiting its next line)."""
    return (
        len(st["tb"]) == 1
        and not st["ignored"]
        and st["child"] is None
        and st["cancel_wrap"] is None
        and st["terminate"] is None
    )


def after_end(
    batch: LineBatch,
    start: int,
    stop: int,
    tb: State,
    training: TrainingLines,
    st: State,
    out: Emitter,
) -> int:
    """What the status parser's ``_line`` does with the lines from ``start`` (no candidate
    before ``stop``) while a traceback without a rank prefix is in its "after" phase: count
    them until the traceback is forgotten, and count the training among them while a
    traceback is pending. Returns where ``_line`` must take over: a line with a rank
    prefix or a chained traceback's announcement, the first after the traceback, or
    ``stop``."""
    texts, offsets = batch.texts, batch.offsets
    claimed = out.claimed
    flags = training.flags()
    j = start
    while j < stop:
        text = texts[j]
        if not text or text.isspace():
            j += 1  # a blank line only ends a "msg" phase
            continue
        prefix, body = split_rank_prefix(text)
        if prefix or chained(body):
            return j
        try:
            tb["n"] += 1
            if tb["n"] > AFTER_LINES:
                del st["tb"][""]
            if st["pending"] is not None and (
                offsets[j] in claimed or ((flags[j] or bar_hint(text)) and is_training(body, st))
            ):
                st["resumed"] += 1
                if st["resumed"] >= RESUMED_LINES:
                    st["pending"] = None
        except Exception as e:  # noqa: BLE001 - as the parser's _read
            out.error(offsets[j], f"status: {type(e).__name__}: {e}", text)
        j += 1
        if not st["tb"]:
            return j
    return j


def resumes(
    batch: LineBatch,
    start: int,
    stop: int,
    training: TrainingLines,
    st: State,
    out: Emitter,
) -> None:
    """What the status parser's ``_line`` does with the lines ``start:stop``, none of them
    a candidate, while a traceback is pending: count those that show training resumed (a
    line a specific parser claimed, or one classify() reads as the loop: status runs
    last, claims are in). Most lines are neither claimed nor kept by ``training``: those
    cost two lookups and two substring tests here."""
    texts, offsets = batch.texts, batch.offsets
    claimed = out.claimed
    flags = training.flags()
    for j in range(start, stop):
        if offsets[j] in claimed:
            st["resumed"] += 1
        elif flags[j] or bar_hint(texts[j]):
            try:
                if not is_training(split_rank_prefix(texts[j])[1], st):
                    continue
            except Exception as e:  # noqa: BLE001 - as the parser's _read
                out.error(offsets[j], f"status: {type(e).__name__}: {e}", texts[j])
                continue
            st["resumed"] += 1
        else:
            continue
        if st["resumed"] >= RESUMED_LINES:
            st["pending"] = None
            return
