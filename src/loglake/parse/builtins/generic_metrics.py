"""The fallback metrics parser: numbers any training script prints, with their step/epoch.

Runs after every specific parser and skips the lines they claimed. What it reads:

- JSON lines and Python dict lines (``{'loss': '3.762', 'epoch': '0.05'}`` from HF's
  printer callback; fairseq's and detectron's JSON stats, also after a ``label:``);
- ``key=value`` / ``key: value`` pairs and whole ``word number`` runs
  (``epoch 1/5 step 10 train_loss 0.5601 lr 0.0500``, ``test accuracy: 0.9694``);
- padded tables: fastai's ``epoch  train_loss  valid_loss`` header then its rows, and
  Lightning's two-cell ``│ test_acc │ 0.92 │`` result rows;
- the step/epoch context those lines carry or that an earlier line set
  (``Epoch 3/10`` then a bare ``val_loss: 0.3``).

A number becomes a metric when its name is metric-like (``loss``, ``val_acc``), or when it
sits on a line that also has a metric-like name (``lr`` next to ``train_loss``), or when it is
tied by ``=``/``:`` on a line that names its own step/epoch. Everything else (settings,
counts, sizes, versions, ETA, progress percentages) is left alone: a wrong metric pollutes
every comparison, a missed one is only a gap.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Sequence
from typing import Any

from loglake.parse.base import BaseParser, LineBatch
from loglake.parse.kv import (
    CONTEXT_PATTERN,
    Pair,
    batch_setting,
    find_context,
    message_pairs,
    normalize_message,
)
from loglake.parse.line_recipes import (
    FRAME_RE,
    NOISE_RE,
    QUIET_LEVELS,
    TRACEBACK_HEAD,
    DictPlan,
    PairPlan,
    dict_plan,
    line_recipe,
    message_recipe,
    metric_key,
    names_of,
    pair_plan,
    table_header,
)
from loglake.parse.prefilter import any_literal
from loglake.parse.records import Emitter, MetricRows
from loglake.parse.shape_groups import DictFixed, Fixed
from loglake.parse.shape_walk import walk_shapes
from loglake.parse.structured import flatten, number_of, parse_mapping
from loglake.parse.values import to_int, to_number
from loglake.parse.vocabulary import (
    is_config_label,
    is_metric_name,
    is_skip_key,
    metric_value_pattern,
    step_kind,
)

_DIGIT_RE = re.compile(r"\d")
_LABEL_DICT_RE = re.compile(r"(?P<label>[A-Za-z_][\w .\-/]{0,40}?)\s*[:=]\s*(?P<obj>\{.*\})")

# Prefilter (loglake.parse.prefilter): the lines this parser can act on, outside a traceback
# or a table. A traceback's first line or a frame (they open the skipped region); a padded
# line without digits (a table header); and lines naming a step/epoch counter, holding a
# dict, or naming a metric before a number — a line with none of these gives no metric and no
# context.
# A line another parser claimed gives no metric here, only context: of those, only lines
# naming a counter (or a dict, or opening a traceback or table) can change anything.
# (CONTEXT_CANDIDATES is a part of CANDIDATES: matched only among CANDIDATES' lines.)
CONTEXT_CANDIDATES = "|".join(
    (
        any_literal((TRACEBACK_HEAD, 'File "', "{")),
        r"^[^0-9]*  [^0-9]*$",
        CONTEXT_PATTERN,
    )
)
CANDIDATES = f"{CONTEXT_CANDIDATES}|{metric_value_pattern()}"


class GenericMetricsParser(BaseParser):
    """Metrics from lines no specific parser claimed.

    A line is read through its shape's recipe (``loglake.parse.line_recipes``): lines of one
    template share the reading and pay only for their numbers. A batch whose shapes repeat
    is walked by ``loglake.parse.shape_walk``: the lines of a shape read at fixed places are
    read as Arrow columns, the rest one at a time (``_read``), in order. ``recipes=False``
    reads every line afresh, the reference both are tested against.
    """

    name = "generic"
    version = "1"
    priority = 90

    def __init__(self, *, recipes: bool = True) -> None:
        self.recipes = recipes

    def new_state(self) -> dict[str, Any]:
        return {"step": None, "epoch": None, "tb": False, "cols": None}

    def parse(self, batch: LineBatch, state: dict[str, Any], out: Emitter) -> None:
        rows = MetricRows(out)  # a line's values go onto the columns directly: see MetricRows
        try:
            self._walk(batch, state, out, rows)
        finally:
            rows.close()

    def _walk(
        self, batch: LineBatch, state: dict[str, Any], out: Emitter, rows: MetricRows
    ) -> None:
        candidates = batch.matching(CANDIDATES)
        shapes = batch.shapes() if self.recipes and candidates else None
        if shapes is not None and walk_shapes(
            batch,
            state,
            out,
            rows,
            candidates,
            shapes,
            self._read,
            read_fixed,
            lambda: batch.pattern_mask(CONTEXT_CANDIDATES),
        ):
            return
        self._walk_lines(batch, state, out, rows, candidates)

    def _walk_lines(
        self,
        batch: LineBatch,
        state: dict[str, Any],
        out: Emitter,
        rows: MetricRows,
        candidates: list[int],
    ) -> None:
        """Every line read in order (a batch whose shapes do not repeat, or ``recipes=False``)."""
        texts, offsets = batch.texts, batch.offsets
        context: set[int] | None = None
        claimed = out.claimed
        # prefilter.walk's order, inlined (it asks for the candidates after every line): the
        # candidates while no traceback or table is open, then every line until it closes.
        n, m = len(texts), len(candidates)
        i = k = 0  # the next line; candidates[:k] are all before it
        while True:
            if state["tb"] or state["cols"]:
                if i >= n:
                    return
                mine = offsets[i] in claimed
            else:
                if k < m and candidates[k] < i:
                    k = bisect_left(candidates, i, k)
                if k >= m:
                    return
                i = candidates[k]
                k += 1
                mine = offsets[i] in claimed
                if mine:
                    if context is None:
                        context = set(batch.matching(CANDIDATES, CONTEXT_CANDIDATES))
                    if i not in context:
                        i += 1
                        continue
            self._read(batch, i, mine, state, out, rows)
            i += 1

    def _read(
        self,
        batch: LineBatch,
        i: int,
        claimed: bool,
        state: dict[str, Any],
        out: Emitter,
        rows: MetricRows,
    ) -> None:
        """Line ``i`` read on its own; an error is a ``parse_errors`` row."""
        ts = batch.ts[i] if batch.ts is not None else None
        try:
            self._line(batch, i, ts, claimed, state, rows)
        except Exception as e:  # noqa: BLE001 - one odd line must not stop the file
            out.error(batch.offsets[i], f"generic metrics: {type(e).__name__}: {e}", batch.texts[i])

    def _line(
        self,
        batch: LineBatch,
        i: int,
        ts: float | None,
        claimed: bool,
        state: dict[str, Any],
        rows: MetricRows,
    ) -> None:
        text = batch.texts[i]
        offset = batch.offsets[i]
        if not text:
            return
        if state["tb"]:
            # Frames and source lines of a traceback are indented; the exception line ends it.
            if text[0] in " \t" or not text.strip():
                return
            state["tb"] = False
            return
        line = line_recipe(text) if self.recipes else None
        if (
            line.opens_traceback
            if line is not None
            else text.startswith(TRACEBACK_HEAD) or FRAME_RE.match(text)
        ):
            state["tb"] = True  # a frame line alone (a logged stack) is followed by source
            return
        if not (line.has_digit if line is not None else _DIGIT_RE.search(text)):
            if "  " in text:  # a padded header row opens a table; any other line ends one
                state["cols"] = table_header(text)
            return
        stamp, level, msg = batch.prefix(i)
        if level in QUIET_LEVELS:
            return
        recipe = message_recipe(line, text, msg) if line is not None else None
        if recipe.noise if recipe is not None else NOISE_RE.search(msg):
            return
        if ts is None:
            ts = stamp
        msg = msg.strip()
        if state["cols"]:
            pairs = _table_row(msg, state["cols"])
            if pairs is None:
                state["cols"] = None
            else:
                self._pairs(pairs, None, None, offset, ts, claimed, state, rows)
                return
        if (
            recipe.dict if recipe is not None else "{" in msg and msg.endswith("}")
        ) and self._dict_line(msg, offset, ts, claimed, state, rows):
            return
        if recipe is None:
            self._plain(normalize_message(msg), offset, ts, claimed, state, rows)
            return
        norm = normalize_message(msg) if recipe.normalizes else msg
        at = recipe.step_at
        step = int(norm[at[0] : at[1]]) if at else None
        at = recipe.epoch_at
        epoch = float(norm[at[0] : at[1]]) if at else None
        if claimed and recipe.counters is not None and not recipe.batch:
            # a claimed line only sets the context: its values matter when they are counters
            values = [float(norm[a:b]) for a, b in recipe.nums] if recipe.counters else []
            _context(*_counted(recipe.counters, values, step, epoch), state)
            return
        plan = recipe.plan or pair_plan(names_of(recipe.words, norm), recipe.units, recipe.explicit)
        if recipe.batch and not plan.metric_named:
            self._plain(norm, offset, ts, claimed, state, rows)  # "batch=64" may be a setting
            return
        values = [float(norm[a:b]) for a, b in recipe.nums]
        _apply(plan, values, step, epoch, offset, ts, claimed, state, rows)

    def _plain(
        self,
        norm: str,
        offset: int,
        ts: float | None,
        claimed: bool,
        state: dict[str, Any],
        rows: MetricRows,
    ) -> None:
        """A normalized plain message read pair by pair (what a recipe does in one step)."""
        pairs = message_pairs(norm)
        step, epoch = find_context(norm, leading_counter=bool(pairs))
        if "atch" in norm or "ATCH" in norm:
            step, pairs = batch_setting(norm, pairs, step)
        self._pairs(pairs, step, epoch, offset, ts, claimed, state, rows)

    def _pairs(
        self,
        pairs: list[Pair],
        step: int | None,
        epoch: float | None,
        offset: int,
        ts: float | None,
        claimed: bool,
        state: dict[str, Any],
        rows: MetricRows,
    ) -> None:
        """Emit a line's pairs as metrics (unless claimed), with its step/epoch context."""
        keys, values, units, explicit = zip(*pairs, strict=True) if pairs else ((), (), (), ())
        plan = pair_plan(keys, units, explicit)
        _apply(plan, values, step, epoch, offset, ts, claimed, state, rows)

    def _dict_line(
        self,
        msg: str,
        offset: int,
        ts: float | None,
        claimed: bool,
        state: dict[str, Any],
        rows: MetricRows,
    ) -> bool:
        """A JSON/dict line (maybe after ``label:``); True when the line was read as one."""
        step: int | None = None
        epoch: float | None = None
        if msg.startswith("{"):
            obj = parse_mapping(msg)
        else:
            m = _LABEL_DICT_RE.fullmatch(msg)
            if not m or is_config_label(m.group("label")):
                return False
            obj = parse_mapping(m.group("obj"))
            step, epoch = find_context(m.group("label"))  # "epoch 0: {'accuracy': 0.8}"
        if not obj:
            return False
        values = list(obj.values())
        plan = dict_plan(tuple(obj), tuple(map(type, values))) if self.recipes else None
        if plan is not None:
            nums = [float(v) for v in values]  # an int too large for a float fails here, first
            _apply_dict(plan, nums, step, epoch, offset, ts, claimed, state, rows)
            return True
        keys: list[str] = []
        found: list[float] = []
        for key, value in flatten(obj, "/"):
            kind = step_kind(key)
            num = number_of(value)
            if kind == "step":
                step = to_int(num) if num is not None else None
            elif kind == "epoch":
                epoch = num
            elif num is not None and not is_skip_key(key):
                keys.append(key)
                found.append(num)
        if step is None and epoch is None and not any(map(is_metric_name, keys)):
            return True  # a settings dict: the params parser's business
        at_step, at_epoch = _context(step, epoch, state)
        if not claimed:
            emits = [(metric_key(key), k) for k, key in enumerate(keys)]
            rows.line(emits, found, offset, at_step, at_epoch, ts)
        return True


def read_fixed(
    reading: Fixed | DictFixed,
    text: str,
    offset: int,
    ts: float | None,
    claimed: bool,
    state: dict[str, Any],
    rows: MetricRows,
) -> bool:
    """``_line``'s reading of a line whose shape says where everything is
    (``loglake.parse.shape_groups``); False for a line to read the plain way after all (an
    unclaimed line whose names hold digits, a dict number with a leading zero)."""
    if type(reading) is DictFixed:
        return _read_dict(reading, text, offset, ts, claimed, state, rows)
    fixed: Fixed = reading  # type: ignore[assignment]
    if fixed.plan is None and not claimed:
        return False
    at = fixed.step_at
    step = int(text[at[0] : at[1]]) if at else None
    at = fixed.epoch_at
    epoch = float(text[at[0] : at[1]]) if at else None
    values = [float(text[a:b]) for a, b in fixed.nums]
    if claimed:  # a claimed line only sets the context
        _context(*_counted(fixed.counters, values, step, epoch), state)
        return True
    _apply(fixed.plan, values, step, epoch, offset, ts, False, state, rows)  # type: ignore[arg-type]
    return True


def _read_dict(
    fixed: DictFixed,
    text: str,
    offset: int,
    ts: float | None,
    claimed: bool,
    state: dict[str, Any],
    rows: MetricRows,
) -> bool:
    """``_dict_line``'s reading of a flat dict line whose shape says where its numbers are."""
    for at in fixed.zeros:
        if text[at] == "0":
            return False
    nums = [float(text[a:b]) for a, b in fixed.nums]
    _apply_dict(fixed.plan, nums, None, None, offset, ts, claimed, state, rows)
    return True


def _apply_dict(
    plan: DictPlan,
    nums: list[float],
    step: int | None,
    epoch: float | None,
    offset: int,
    ts: float | None,
    claimed: bool,
    state: dict[str, Any],
    rows: MetricRows,
) -> None:
    """Emit a flat dict's numbers by its keys' plan (unless claimed) with its counters or the
    running context; a dict naming no metric and no counter is a settings dict (the params
    parser's business): nothing, not even context."""
    for k, is_step in plan.counters:
        if is_step:
            step = to_int(nums[k])
        else:
            epoch = nums[k]
    if step is None and epoch is None and not plan.metric_named:
        return
    at_step, at_epoch = _context(step, epoch, state)
    if not claimed:
        rows.line(plan.emits, nums, offset, at_step, at_epoch, ts)


def _table_row(msg: str, cols: list[str]) -> list[Pair] | None:
    """The numbers of a row under a table header, paired with their columns."""
    cells = msg.split()
    if len(cells) != len(cols):
        return None
    pairs = []
    for col, cell in zip(cols, cells, strict=True):
        num = to_number(cell)
        if num is not None:
            pairs.append(Pair(col, num, "", True))
    return pairs or None


def _counted(
    counters: tuple[tuple[int, bool], ...],
    values: Sequence[float],
    step: int | None,
    epoch: float | None,
) -> tuple[int | None, float | None]:
    """A line's step/epoch once its step/epoch-named pairs are read (a step only when its
    value is an integer)."""
    for k, is_step in counters:
        v = values[k]
        if not is_step:
            epoch = v
        elif v.is_integer():
            step = int(v)
    return step, epoch


def _apply(
    plan: PairPlan,
    values: Sequence[float],
    step: int | None,
    epoch: float | None,
    offset: int,
    ts: float | None,
    claimed: bool,
    state: dict[str, Any],
    rows: MetricRows,
) -> None:
    """Emit a line's values by its pairs' plan (unless claimed), with its step/epoch context:
    its own counters (a step only when it is an integer) or the running ones."""
    step, epoch = _counted(plan.counters, values, step, epoch)
    at_step, at_epoch = _context(step, epoch, state)
    if not claimed:
        emits = plan.emits[step is not None or epoch is not None]
        rows.line(emits, values, offset, at_step, at_epoch, ts)


def _context(
    step: int | None, epoch: float | None, state: dict[str, Any]
) -> tuple[int | None, float | None]:
    """Step/epoch for a line's values, updating the running context.

    A line with its own step keeps the current epoch (epochs are coarser); a line with only
    its own epoch gets no step (the last step seen belongs to a finer series, and an epoch
    summary is numbered by its epoch); a line with neither takes both from context.
    """
    if step is None and epoch is None:
        return state["step"], state["epoch"]
    if step is not None:
        state["step"] = step
        if epoch is None:
            return step, state["epoch"]
    if epoch is not None:
        state["epoch"] = epoch
    return step, epoch


PARSERS: list[BaseParser] = [GenericMetricsParser()]
