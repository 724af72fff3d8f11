"""The generic metrics parser's reading of a line, worked out once per line shape.

A training log prints a few templates thousands of times (``epoch 3 step 120 loss=0.31``,
xgboost's ``[12]\\ttrain-logloss:0.5``). Reading a plain message — is it noise, a dict, where
normalization cuts it, which spans are names and numbers, where its step/epoch counters are —
sees digits only as digits: every pattern involved tests a digit as ``\\d`` (kv's shape
caches rely on the same). So a message with each ASCII digit read as ``0`` (its *shape*,
``values.shape_of``) has the same reading, and a line of a known shape costs a lookup, its
``float()``s and its emits. The raw line's shape tells, before the log prefix is split, whether
it opens a traceback or holds no digit, and where to find its message's reading
(``LineRecipe``). A flat dict of numbers is read once per tuple of keys (``DictPlan``).

What does depend on the digits is kept apart:

- the names themselves (``top1`` is a metric, ``top2`` is not): a name is read from the line,
  and a shape whose names hold digits gets its ``PairPlan`` per tuple of names;
- the counters' values (a step must be an integer; ``batch=64`` among settings is not a step,
  ``batch_setting``): computed per line, or (``batch_setting``) left to the plain reading.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, NamedTuple

from loglake.parse.kv import (
    BATCH_SETTING_RE,
    ZEROS,
    Span,
    context_positions,
    normalize_message,
    pair_positions,
)
from loglake.parse.values import normalize_key, shape_of
from loglake.parse.vocabulary import (
    EPOCH_KEYS,
    STEP_KEYS,
    has_stopword,
    is_metric_name,
    is_skip_key,
    step_kind,
)

TRACEBACK_HEAD = "Traceback (most recent call last)"
FRAME_RE = re.compile(r"\s+File \"[^\"]*\", line \d+")
_DIGIT_RE = re.compile(r"\d")
_COLUMN_RE = re.compile(r"[A-Za-z_][\w.\-/@]*")
#: a line logged at one of these levels gives no metric (a warning quoting a loss)
QUIET_LEVELS = frozenset({"WARNING", "WARN", "ERROR", "CRITICAL", "FATAL"})
# Warnings, stack frames, exception lines ("RuntimeError: ... (32x19 and 20x64)"), URLs.
NOISE_RE = re.compile(
    r"Warning\b|warnings\.warn|^\s*File \"|^\s*at [\w.$]+\(|https?://|Traceback \("
    r"|^(?:[\w.]+\.)?[A-Z]\w*(?:Error|Exception|Interrupt)\b"
)
metric_key = lru_cache(maxsize=8192)(normalize_key)  # the same few names repeat on every line


class PairPlan(NamedTuple):
    """What a line's pairs mean, from their names, units and ``=``/``:`` ties alone.

    ``counters``: (pair index, is a step) of the pairs naming a step/epoch, in order;
    ``emits[own]``: (metric key, pair index) to emit when the line names no step/epoch of its
    own (``own`` False) or does; ``metric_named``: a pair has a metric name.
    """

    counters: tuple[tuple[int, bool], ...]
    emits: tuple[tuple[tuple[str, int], ...], tuple[tuple[str, int], ...]]
    metric_named: bool


@lru_cache(maxsize=4096)
def pair_plan(
    keys: tuple[str, ...], units: tuple[str, ...], explicit: tuple[bool, ...]
) -> PairPlan:
    """Which pairs set the step/epoch and which become metrics under which names.

    A number becomes a metric when its name is metric-like, or when it sits on a line that
    also has a metric-like name, or when it is tied by ``=``/``:`` on a line that names its
    own step/epoch; never a ``N/M`` count, a skip key, a size or duration under a name that
    is not clearly a metric, or a name with a stopword in it.
    """
    counters = counters_of(keys, units)
    values = [i for i, key in enumerate(keys) if _counter_kind(key) is None]
    has_metric = any(is_metric_name(keys[i]) for i in values)

    def emits(own: bool) -> tuple[tuple[str, int], ...]:
        seen: set[str] = set()
        out: list[tuple[str, int]] = []
        for i in values:
            key, unit = keys[i], units[i]
            if unit == "/" or is_skip_key(key):
                continue
            metric_like = is_metric_name(key)
            if unit not in ("", "%") and not metric_like:
                continue  # 12ms, 1.5GB, 433M: sizes and durations unless clearly a metric
            if not (metric_like or has_metric or (own and explicit[i])):
                continue
            if " " in key and has_stopword(key.split()):
                continue
            name = metric_key(key)
            if not name or name in seen:
                continue
            seen.add(name)
            out.append((name, i))
        return tuple(out)

    return PairPlan(counters, (emits(False), emits(True)), any(is_metric_name(k) for k in keys))


def _counter_kind(key: str) -> str | None:
    return step_kind(key) or (step_kind(key.rsplit(" ", 1)[-1]) if " " in key else None)


def counters_of(keys: tuple[str, ...], units: tuple[str, ...]) -> tuple[tuple[int, bool], ...]:
    """(pair index, is a step) of the pairs that count steps/epochs (``PairPlan.counters``)."""
    out: list[tuple[int, bool]] = []
    for i, key in enumerate(keys):
        kind = _counter_kind(key)
        if kind is not None and units[i] in ("", "/"):
            out.append((i, kind == "step"))
    return tuple(out)


# step_kind tests a name by whole-name membership and digit-free suffixes: when no step/epoch
# name holds a digit (checked here), a name's digits never decide whether it counts steps, so
# the pairs that set a claimed line's context are known from its shape even when its names
# hold digits.
_COUNTER_NAMES_DIGIT_FREE = not any(c.isdigit() for k in STEP_KEYS | EPOCH_KEYS for c in k)


class Recipe(NamedTuple):
    """The reading of one message shape (positions are in the stripped, normalized message).

    ``noise``: the line gives nothing; ``dict``: try it as a dict line first;
    ``normalizes``: ``normalize_message`` changes the message (else it is the message);
    ``words``/``nums``: each pair's name spans and number span; ``plan``: the pairs' plan, or
    None when a name holds a digit (then it is found per line, from the line's names);
    ``counters``: ``PairPlan.counters`` (None when a name's digits could change them);
    ``step_at``/``epoch_at``: a counter ``find_context`` reads; ``batch``: a ``batch=N``
    that ``batch_setting`` may drop (then the line is read the plain way).
    """

    noise: bool
    dict: bool
    normalizes: bool
    words: tuple[tuple[Span, ...], ...]
    nums: tuple[Span, ...]
    units: tuple[str, ...]
    explicit: tuple[bool, ...]
    plan: PairPlan | None
    counters: tuple[tuple[int, bool], ...] | None
    step_at: Span | None
    epoch_at: Span | None
    batch: bool


_NOISE = Recipe(True, False, False, (), (), (), (), None, (), None, None, False)
_UNREAD: Any = object()
_RECIPES: dict[bytes, Recipe] = {}
_RECIPES_SIZE = 4096
_RECIPE_CHARS = 2000  # longer messages are read directly (kv's shape caches do the same)


def recipe_of(msg: str) -> Recipe | None:
    """The reading of ``msg`` (a message after its log prefix, not stripped), shared by every
    message of its shape; None for a message too long to cache."""
    if len(msg) > _RECIPE_CHARS:
        return None
    shape = shape_of(msg)
    got = _RECIPES.get(shape)
    if got is None:
        if len(_RECIPES) >= _RECIPES_SIZE:
            _RECIPES.clear()
        got = _RECIPES[shape] = _read(msg.translate(ZEROS))
    return got


def is_dict_message(msg: str) -> bool:
    """Whether ``recipe_of(msg)`` is a dict's recipe (not noise), known without reading the
    message's pairs, which a dict line read as a dict never needs."""
    if len(msg) > _RECIPE_CHARS:
        return False
    stripped = msg.strip()
    return (
        stripped.endswith("}") and "{" in stripped and NOISE_RE.search(msg.translate(ZEROS)) is None
    )


class LineRecipe(NamedTuple):
    """What a whole line's shape tells before its log prefix is split: whether it opens a
    traceback, whether it holds a digit, and its message's ``Recipe`` by where the message
    starts (``split_log_prefix``'s message is a suffix of the line: with the line's shape
    and its start, the message's shape is known)."""

    opens_traceback: bool
    has_digit: bool
    messages: dict[int, Recipe | None]


_LINES: dict[bytes, LineRecipe] = {}


def line_recipe(text: str) -> LineRecipe | None:
    """The reading of a raw line's shape; None for a line too long to cache."""
    if len(text) > _RECIPE_CHARS:
        return None
    shape = shape_of(text)
    got = _LINES.get(shape)
    if got is None:
        if len(_LINES) >= _RECIPES_SIZE:
            _LINES.clear()
        zeroed = text.translate(ZEROS)
        got = _LINES[shape] = LineRecipe(
            zeroed.startswith(TRACEBACK_HEAD) or FRAME_RE.match(zeroed) is not None,
            _DIGIT_RE.search(zeroed) is not None,
            {},
        )
    return got


def message_recipe(line: LineRecipe, text: str, msg: str) -> Recipe | None:
    """``recipe_of(msg)`` for ``msg``, the message split from ``text`` (a line of ``line``'s
    shape), found without reading the message's shape."""
    start = len(text) - len(msg)
    got = line.messages.get(start, _UNREAD)
    if got is _UNREAD:
        got = line.messages[start] = recipe_of(msg)
    return got


def _read(zeroed: str) -> Recipe:
    if NOISE_RE.search(zeroed):
        return _NOISE
    msg = zeroed.strip()
    norm = normalize_message(msg)
    found = pair_positions(norm)
    step_at, epoch_at = context_positions(norm, bool(found))
    batch = ("atch" in norm or "ATCH" in norm) and BATCH_SETTING_RE.search(norm) is not None
    words = tuple(f[0] for f in found)
    units = tuple(f[2] for f in found)
    explicit = tuple(f[3] for f in found)
    plan: PairPlan | None = None
    counters: tuple[tuple[int, bool], ...] | None = None
    if not any("0" in norm[a:b] for spans in words for a, b in spans):
        plan = pair_plan(names_of(words, norm), units, explicit)
        counters = plan.counters
    elif _COUNTER_NAMES_DIGIT_FREE:
        counters = counters_of(names_of(words, norm), units)
    return Recipe(
        False,
        "{" in msg and msg.endswith("}"),
        norm != msg,
        words,
        tuple(f[1] for f in found),
        units,
        explicit,
        plan,
        counters,
        step_at,
        epoch_at,
        batch,
    )


def names_of(words: tuple[tuple[Span, ...], ...], norm: str) -> tuple[str, ...]:
    """The pairs' names as ``norm`` prints them, from their word spans."""
    return tuple(
        norm[w[0][0] : w[0][1]] if len(w) == 1 else " ".join(norm[a:b] for a, b in w) for w in words
    )


class DictPlan(NamedTuple):
    """What a flat dict of plain numbers means, from its keys alone (``_dict_line``'s rules):
    ``counters`` (value index, is a step), ``emits`` (metric key, value index), and whether a
    key names a metric (a dict naming none and no counter is a settings dict)."""

    counters: tuple[tuple[int, bool], ...]
    emits: tuple[tuple[str, int], ...]
    metric_named: bool


_NUMBER_TYPES = frozenset({int, float})  # bool is neither: number_of reads no number in it


@lru_cache(maxsize=1024)
def dict_plan(keys: tuple[object, ...], types: tuple[type, ...]) -> DictPlan | None:
    """The plan of a dict with these keys whose values have these types; None unless every
    value is an int or float (a nested dict, a string or a bool is read value by value)."""
    if not _NUMBER_TYPES.issuperset(types):
        return None
    counters: list[tuple[int, bool]] = []
    emits: list[tuple[str, int]] = []
    metric_named = False
    for i, k in enumerate(keys):
        key = str(k)
        kind = step_kind(key)
        if kind is not None:
            counters.append((i, kind == "step"))
        elif not is_skip_key(key):
            emits.append((metric_key(key), i))
            metric_named = metric_named or is_metric_name(key)
    return DictPlan(tuple(counters), tuple(emits), metric_named)


def table_header(text: str) -> list[str] | None:
    """Column names of a padded table header (fastai: ``epoch  train_loss  valid_loss  time``):
    a line without digits that opens a table."""
    cols = text.split()
    if not 3 <= len(cols) <= 40 or not all(_COLUMN_RE.fullmatch(c) for c in cols):
        return None
    if has_stopword(cols) or not any(is_metric_name(c) for c in cols):
        return None
    return cols
