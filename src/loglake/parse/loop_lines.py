"""Reading a line as the training loop: a step/epoch line or a progress bar (and whether it
shows the loop's last iteration), values printed without a counter, or anything else.

The status parser needs this twice: a log that stops on a loop line short of its end was
killed, one that stops after the loop ended cleanly; and a handled traceback is forgiven
once training lines follow it. The second question is asked of many lines (every line
after a traceback until two training lines are seen), so ``TrainingLines`` rules most of
them out without reading them.
"""

from __future__ import annotations

import re
from typing import Any

from loglake.parse.base import LineBatch
from loglake.parse.kv import find_context, message_pairs, normalize_message
from loglake.parse.timestamps import ShapeSplit, dated_as, message_split, strip_log_prefix
from loglake.parse.values import shape_of
from loglake.parse.vocabulary import is_metric_name, step_kind

State = dict[str, Any]

TAIL_SCAN_LINES = 400  # lines read backwards from a batch end to classify the log's tail

# torchrun's "[rank0]:" / "[default0]:", srun --label's "3: ", Ray's "(pid=12, ip=...)".
_RANK_PREFIX_RE = re.compile(
    r"(?:\[(?:rank|default)\d+\]:|\d{1,4}:(?= )|\((?:[\w.]+ )?pid=\d+(?:, ip=[\d.]+)?\))\s?"
)

EPOCH_HEAD_RE = re.compile(r"^\s*Epoch (?P<k>\d+)/(?P<n>\d+)\s*$")
EPOCH_FRAC_RE = re.compile(r"(?i)\bepoch\s*[:\[]?\s*(?P<k>\d+)\s*/\s*(?P<n>\d+)")
_STEP_FRAC_RE = re.compile(
    r"(?i)\b(?:step|iter(?:ation)?|batch|update|round)\s*[:\[]?\s*(?P<k>\d+)\s*/\s*(?P<n>\d+)"
)
_BAR_RES = (
    re.compile(r"\|\s*(?P<a>\d+)/(?P<b>\d+)\s*\["),  # tqdm
    re.compile(r"[━╸╺]\s+(?P<a>\d+)/(?P<b>\d+)\b"),  # rich
    re.compile(r"^\s*(?P<a>\d+)/(?P<b>\d+)\s+(?:━|\[|-\s)"),  # Keras
)
_PCT_BAR_RE = re.compile(r"(?P<p>\d{1,3})%\|")
_NOISE_RE = re.compile(r"Warning\b|warnings\.warn|^\s+warn\(|^\s*\[W[ \d]")
_DIGIT_RE = re.compile(r"\d")
_QUOTED_KEY_RE = re.compile(r"""['"](?P<k>[A-Za-z_][\w./\-]*)['"]\s*:\s*['"]?-?[\d.]""")
_FINAL_WORDS_RE = re.compile(
    r"(?i)\b(?:final|test|best|total|overall|summary|results?|finished|complete[d]?)\b"
)
_EPOCH_DONE_WORDS_RE = re.compile(r"(?i)\b(?:done|end|ended|finished|complete[d]?|summary)\b")

# Every bar and ``Epoch k/N`` header classify() reads holds one of these: _BAR_RES's
# (Keras' and tqdm's fraction before its bar, rich's after it), _PCT_BAR_RE's, EPOCH_HEAD_RE's.
_BAR_HINT_RE = re.compile(r"\d/\d+\s*(?:━|\[|-\s)|[━╸╺]\s+\d+/\d|%\||Epoch \d+/\d")
# ... and it sees digits only as ``\d`` (no literal digit, no digit in a name), so a line's
# answer is its shape's (every ASCII digit read as 0): asked once per shape. The search
# costs ~2.5 µs on a 100-character line holding a ``/`` (paths, ``tokens/s``); the shape
# and the lookup ~0.2 µs.
_BAR_SHAPES: dict[bytes, bool] = {}


def split_rank_prefix(text: str) -> tuple[str, str]:
    """``(rank prefix, rest)``: lines of several ranks interleave, each with its own state."""
    m = _RANK_PREFIX_RE.match(text)
    if m is None:
        return "", text
    return m.group(0).strip(), text[m.end() :]


def fraction(rx: re.Pattern[str], text: str) -> list[int] | None:
    m = rx.search(text)
    return [int(m.group(1)), int(m.group(2))] if m else None


def bar(text: str) -> list[int] | None:
    """``[done, total]`` of a progress bar on the line (``[p, 100]`` for a percentage)."""
    if "/" in text:
        for rx in _BAR_RES:
            m = rx.search(text)
            if m:
                return [int(m.group("a")), int(m.group("b"))]
    if "%|" in text:
        m = _PCT_BAR_RE.search(text)
        if m:
            return [int(m.group("p")), 100]
    return None


def classify(text: str, st: State) -> tuple[str, bool] | None:
    """``(kind, reached)`` of a line: ``loop`` (a step/epoch line or a progress bar;
    ``reached`` when it shows the loop's declared end), ``metric`` (values without a
    counter), ``end`` (anything else), or ``None`` for noise (blank lines, warnings)."""
    msg = _message(text)
    return _kind(msg, st) if msg else None


def _message(text: str) -> str | None:
    """The message classify() reads: ``None`` for noise, ``""`` for a bare prefix."""
    if not text or text.isspace():
        return None
    _, body = split_rank_prefix(text)
    if ("Warning" in body or "warn" in body or "[W" in body) and _NOISE_RE.search(body):
        return None  # (every _NOISE_RE match holds one of these: a substring test is ~50x faster)
    return strip_log_prefix(body).strip()


def _kind(msg: str, st: State) -> tuple[str, bool]:
    if not _DIGIT_RE.search(msg):
        return "end", False
    got = bar(msg)
    if got is not None:
        epoch = fraction(EPOCH_FRAC_RE, msg) or st.get("epoch")
        return "loop", got[0] >= got[1] and (epoch is None or epoch[0] >= epoch[1])
    if EPOCH_HEAD_RE.match(msg):
        return "loop", False
    if msg.startswith("{"):
        keys = [k.group("k") for k in _QUOTED_KEY_RE.finditer(msg)]
        metric = any(is_metric_name(k) for k in keys)
        if metric and any(step_kind(k) for k in keys):
            return "loop", False
        if metric and not _FINAL_WORDS_RE.search(msg):
            return "metric", False
        return "end", False
    norm = normalize_message(msg)
    step, epoch = find_context(norm)
    pairs = [p for p in message_pairs(norm) if p.unit != "/" and not step_kind(p.key)]
    if step is not None or epoch is not None:
        if pairs:
            return "loop", _reached(msg, step, epoch, st.get("totals") or {})
        return "end", False
    if any(is_metric_name(p.key) for p in pairs) and not _FINAL_WORDS_RE.search(msg):
        return "metric", False
    return "end", False


# Whether a message reads as training, by message *shape* (each ASCII digit read as 0).
# Every test in _kind sees digits only as digits (its regexes; kv's readings, cached by
# shape themselves) except the vocabulary's judgement of key names (is_metric_name,
# step_kind), which may hinge on a digit (``top1``). A key (a dict's quoted key, a pair's
# words) is always a whole run of name characters starting with a letter or ``_``, so a
# message (and its normalized form) without such a run holding an ASCII digit has the same
# keys, hence the same answer, as every message of its shape: only those are cached.
# Whether a message has one is itself a property of its shape.
_TRAINING_SHAPES: dict[bytes, bool] = {}
_SHAPES_SIZE = 4096
_SHAPE_CHARS = 2000  # longer messages are read directly, as kv does
_DIGIT_NAME_RE = re.compile(r"(?<![\w.\-/@])[A-Za-z_][\w.\-/@]*[0-9]")


# ... and, a step before, by *line* shape: the rank prefix and the noise test see digits
# only as digits too, and so does the log prefix's split but for whether the line's stamp
# is a valid date, which ``dated_as`` reads at the places ``message_split`` found for the
# shape. A line whose answer is cached by message shape and whose split is its shape's
# leaves the answer under its line shape, with that split: a line of the shape then costs a
# translate, a lookup and the date check (~1 µs) instead of the prefix split (~2 µs).
_LINE_SHAPES: dict[bytes, tuple[int, ShapeSplit, bool]] = {}


def is_training(text: str, st: State) -> bool:
    """Whether classify() reads the line as the loop or its values."""
    line_shape = shape_of(text) if len(text) <= _SHAPE_CHARS else None
    if line_shape is not None:
        known = _LINE_SHAPES.get(line_shape)
        if known is not None:
            at, how, got = known
            if dated_as(text[at:] if at else text, how):
                return got
    got, by_shape = _training(text, st)
    if by_shape and line_shape is not None:
        _remember_line(text, line_shape, got)
    return got


def _training(text: str, st: State) -> tuple[bool, bool]:
    """is_training's answer, and whether it holds for every message of the line's message
    shape (it was or could be cached by it)."""
    msg = _message(text)
    if not msg:
        return False, msg == ""
    if len(msg) > _SHAPE_CHARS:
        return _kind(msg, st)[0] in ("loop", "metric"), False
    shape = shape_of(msg)
    got = _TRAINING_SHAPES.get(shape)
    if got is not None:
        return got, True
    got = _kind(msg, st)[0] in ("loop", "metric")
    if _DIGIT_NAME_RE.search(msg) or _DIGIT_NAME_RE.search(normalize_message(msg)):
        return got, False
    if len(_TRAINING_SHAPES) >= _SHAPES_SIZE:
        _TRAINING_SHAPES.clear()
    _TRAINING_SHAPES[shape] = got
    return got, True


def _remember_line(text: str, line_shape: bytes, got: bool) -> None:
    """Cache ``got`` under the line's shape, if the line's split is its shape's."""
    m = _RANK_PREFIX_RE.match(text)
    at = m.end() if m is not None else 0
    body = text[at:]
    how = message_split(body)
    if how is None or not dated_as(body, how):
        return  # this line's split is its own: lines of its shape may split otherwise
    if body[how.message_at :] != strip_log_prefix(body):
        return  # (never, by message_split's contract; checked as it costs only here)
    if len(_LINE_SHAPES) >= _SHAPES_SIZE:
        _LINE_SHAPES.clear()
    _LINE_SHAPES[line_shape] = (at, how, got)


def read_tail(batch: LineBatch, st: State) -> None:
    """Classify the batch's last meaningful line (a loop line or a clean-end line) into
    ``st["last"]``; ``st["data"]`` once any training output was seen."""
    texts, offsets = batch.texts, batch.offsets
    found = -1
    for i in range(len(texts) - 1, max(-1, len(texts) - 1 - TAIL_SCAN_LINES), -1):
        kind = classify(texts[i], st)
        if kind is None:
            continue
        if kind[0] != "end":
            st["data"] = True
        if kind[0] == "metric":
            continue  # values printed after a loop line belong to that loop
        st["last"] = [kind[0], offsets[i], kind[1]]
        found = i
        break
    if found > 0 and not st["data"]:
        for j in range(found - 1, max(-1, found - 1 - TAIL_SCAN_LINES), -1):
            kind = classify(texts[j], st)
            if kind is not None and kind[0] != "end":
                st["data"] = True
                return


def _reached(msg: str, step: int | None, epoch: float | None, totals: dict[str, int]) -> bool:
    """Whether a loop line shows the loop's last iteration."""
    efrac = fraction(EPOCH_FRAC_RE, msg)
    sfrac = fraction(_STEP_FRAC_RE, msg)
    if sfrac is not None:
        return sfrac[0] >= sfrac[1] and (efrac is None or efrac[0] >= efrac[1])
    if efrac is not None:
        if efrac[0] < efrac[1]:
            return False
        return step is None or bool(_EPOCH_DONE_WORDS_RE.search(msg))
    if epoch is not None and step is None and "epoch" in totals:
        return epoch >= totals["epoch"] - 1
    if step is not None and "step" in totals:
        return step >= totals["step"] - 1
    return bool(_FINAL_WORDS_RE.search(msg))


def bar_hint(text: str) -> bool:
    """Whether the line may hold a bar or an ``Epoch k/N`` header classify() reads."""
    if "/" not in text and "%|" not in text:
        return False
    if len(text) > _SHAPE_CHARS:
        return _BAR_HINT_RE.search(text) is not None
    shape = shape_of(text)
    got = _BAR_SHAPES.get(shape)
    if got is None:
        if len(_BAR_SHAPES) >= _SHAPES_SIZE:
            _BAR_SHAPES.clear()
        got = _BAR_SHAPES[shape] = _BAR_HINT_RE.search(text) is not None
    return got


class TrainingLines:
    """The lines of a batch that ``is_training`` may accept: a superset, asked by index.

    Beyond a bar, classify() reads a line as training only through a dict, a step/epoch
    counter (``find_context``) or a metric-named number (``message_pairs`` and
    ``is_metric_name``). ``pattern`` is an RE2 prefilter selecting every such line: the
    generic metrics parser's is one (tests/test_prefilter.py), and as that parser has
    already run its pass over the batch, its mask costs a lookup, not a pass of its own.
    Bars are asked of the line (``bar_hint``).
    """

    __slots__ = ("_batch", "_flags", "_pattern")

    def __init__(self, batch: LineBatch, pattern: str) -> None:
        self._batch = batch
        self._pattern = pattern
        self._flags: bytes | None = None

    def flags(self) -> bytes:
        """Per line, 1 when ``pattern`` selected it: for a loop asking ``flags[i] or
        bar_hint(text)`` itself, as ``in`` does, without a method call per line. (The
        mask as bytes: a set of the selected indices costs ~25x more to build.)"""
        flags = self._flags
        if flags is None:
            flags = self._flags = self._read_flags()
        return flags

    def _read_flags(self) -> bytes:
        import pyarrow as pa  # here: importing loglake.parse must stay light for plugins

        batch = self._batch
        try:
            mask = batch.pattern_mask(self._pattern)
        except pa.ArrowException:  # a pattern RE2 rejects: as matching(), every line
            mask = None
        if mask is None:  # too small a batch to scan: every line, as matching() says
            return b"\x01" * len(batch.texts)
        if mask.null_count:
            mask = mask.fill_null(True)
        return mask.cast(pa.uint8()).buffers()[1].to_pybytes()[: len(mask)]

    def __contains__(self, i: int) -> bool:
        return bool(self.flags()[i]) or bar_hint(self._batch.texts[i])
