"""Finding ``name value`` pairs and step/epoch counters in free-form log messages.

Two readings of a message, from strict to loose:

- **explicit** pairs have a separator: ``loss=0.5``, ``val_acc: 0.93``, ``train-auc:0.97``;
- **implicit** pairs are ``word number`` runs (``epoch 1/5 step 10 train_loss 0.5601``,
  ``train loss 10.93``). They are accepted only when a whole segment of the message (split on
  ``|``, tabs, ``, ``, `` - ``) reads as pairs; prose such as ``Loaded 5 files`` never does.

Structured text (dicts, reprs, settings) is read by ``loglake.parse.structured``.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from loglake.parse.prefilter import GAP
from loglake.parse.values import NUMBER, shape_of
from loglake.parse.vocabulary import STOPWORDS, is_metric_name, step_kind


class Pair(NamedTuple):
    """A printed name and number. ``unit`` is ``''``, ``'%'``, a unit (``ms``) or ``'/'`` for
    a ``N/M`` count; ``explicit`` when a ``=``/``:`` tied the name to the number."""

    key: str
    value: float
    unit: str
    explicit: bool


_NUM = rf"(?:{NUMBER})"
_UNIT = r"(?:%|[A-Za-z]+(?:/[A-Za-z]+)?)"
_EXPLICIT_RE = re.compile(
    r"(?<![\w.\-/@'\"])(?P<key>[A-Za-z_][\w.\-/@]*)[ \t]*[=:][ \t]*"
    rf"(?P<num>{_NUM})(?P<unit>{_UNIT})?(?=$|[\s;|)\]}}]|,(?!\d))"
)
# Separators only (no leading \s*): split() tries every position, so a pattern starting
# with \s* would rescan a long run of spaces from each of its characters.
_SEGMENT_SPLIT_RE = re.compile(r"[|│┃\t]|;\s|,\s|\s-\s|\]\s*\[")
_DIGIT_RE = re.compile(r"\d")
_BAR_RE = re.compile(r"\d{1,3}(?:\.\d+)?%\|[^|]{0,300}\|")
_PAREN_RE = re.compile(r"\([^()]*\)")
_EQ_PAD_RE = re.compile(r"(?<!\s)\s*=\s*")
_COLON_PAD_RE = re.compile(r"(?<=\w)\s+:(?=\s)")
_FRAC_PAD_RE = re.compile(r"(?<=\d)\s*/\s*(?=\d)|(?<=\[)\s+|(?<!\s)\s+(?=\])")
# the two subs above change a message only where these find whitespace to remove
_EQ_PADDED_RE = re.compile(r"\s=|=\s")
_FRAC_PADDED_RE = re.compile(r"\s/|/\s|\[\s|\s\]")

_GLUED_RE = re.compile(
    rf"[\"']?(?P<key>[A-Za-z_][\w.\-/@]*)[\"']?[=:][\"']?(?P<num>{_NUM})(?P<unit>{_UNIT})?[\"']?[,;]?"
)
_VALUE_RE = re.compile(rf"(?P<num>{_NUM})(?P<unit>{_UNIT})?[:,;]?")
_FRAC_RE = re.compile(r"\[?(?P<n>\d+)/(?P<of>\d+)\]?[:,]?")
_CELL_EDGES = ("|", "│", "┃")
_WORDS_RE = re.compile(r"[A-Za-z_][\w.\-/@]*(?: [A-Za-z_][\w.\-/@]*){0,3}")
_COUNTER_RE = re.compile(r"\[\d+(?:/\d+)?\]:?")
_WORD_RE = re.compile(r"[\"']?(?P<w>[A-Za-z_][\w.\-/@]*(?:'s)?)[\"']?(?P<sep>[:=])?")
_NUMBER_FIRST = frozenset("+-.nNiI")  # and digits: how a NUMBER (a _VALUE_RE token) starts
_WORD_FIRST = frozenset("\"'_")  # and ASCII letters: how a _WORD_RE token starts

_EPOCH_CTX_RE = re.compile(
    r"(?<![\w.\-/])(?i:epoch)(?:\s*\(\w+\))?\s*(?:[:=#]\s*)?(?:\[\s*)?(?P<n>\d+(?:\.\d+)?)"
    r"(?:\s*/\s*\d+)?\s*\]?(?![\w.%/])"
)
_TRAIN_EPOCH_RE = re.compile(r"(?:Train|Training)\s*:\s*(?P<n>\d+)\s*(?=\[)")  # timm
_STEP_CTX_RE = re.compile(
    r"(?<![\w.\-/])(?P<w>(?i:global[_ ]step|num_updates|iteration|iter|step|update|round|batch))"
    r"\s*(?:[:=#]\s*)?(?:\[\s*)?(?P<n>\d+)(?:\s*/\s*\d+)?\s*\]?(?![\w.%/])"
)
_BRACKET_CTX_RE = re.compile(r"\[\s*(?P<n>\d+)\s*(?:/\s*(?P<of>\d+)\s*)?\]")
_STEP_PRIORITY = {"global_step": 0, "global step": 0, "num_updates": 0, "step": 1, "iteration": 2}

# An RE2 pattern for every line ``find_context`` or a step/epoch-named pair can read a
# counter from (and more), for prefilters (loglake.parse.prefilter). A step or epoch word
# (``vocabulary.step_kind``'s names, ``_EPOCH_CTX_RE``/``_STEP_CTX_RE``'s words) then
# whatever normalize_message may delete or a pair may put between a name and its number
# (spaces, parenthesized notes, quotes, ``=:#``, brackets, cell and segment separators),
# then the start of a number; timm's ``Train: 3``; a bracketed counter ``[12]``/``[3/10]``.
# The word may follow a digit or the ``Z``/``UTC`` of a timestamp glued to the message.
CONTEXT_PATTERN = (
    r"(?:^|[^A-Za-z]|Z|C)(?i:epoch|ep|globalstep|step|iterations|iteration|iter|it|batch|num_updates"
    rf"|update|round)(?:{GAP}|[\-'\"=:#\[\]|│┃;,])*[\pN+.nNiI\-]"
    rf"|Train(?:ing)?{GAP}:{GAP}\pN"
    rf"|\[{GAP}\pN+{GAP}(?:/{GAP}\pN+{GAP})?\]"
)


# A pair as positions in the text it was read from: (spans of the key's words, span of the
# number, unit, explicit). Reading positions rather than strings lets one reading serve every
# line of the same shape (below).
Span = tuple[int, int]
Found = tuple[tuple[Span, ...], Span, str, bool]


def _pair(text: str, found: Found) -> Pair:
    words, (a, b), unit, explicit = found
    key = (
        text[words[0][0] : words[0][1]]
        if len(words) == 1
        else " ".join(text[x:y] for x, y in words)
    )
    return Pair(key, float(text[a:b]), unit, explicit)


def explicit_pairs(text: str) -> list[Pair]:
    """``name=number`` / ``name: number`` pairs anywhere in ``text``."""
    return [_pair(text, f) for f in _explicit(text, 0)]


def _explicit(seg: str, at: int) -> list[Found]:
    out: list[Found] = []
    for m in _EXPLICIT_RE.finditer(seg):
        out.append(
            (
                ((at + m.start("key"), at + m.end("key")),),
                _span(m, "num", at),
                m.group("unit") or "",
                True,
            )
        )
    return out


def _span(m: re.Match[str], group: str, at: int) -> Span:
    return at + m.start(group), at + m.end(group)


_TOKEN_RE = re.compile(r"\S+")  # str.split()'s tokens, with their positions


def _implicit(seg: str, at: int) -> list[Found] | None:
    """A segment read as ``label number`` pairs, or ``None`` if any part is not a pair."""
    pairs: list[Found] = []
    pending: list[Span] = []
    words: list[str] = []
    closed = False
    # Each form is tried only when the token can be it (a first character, a separator):
    # most tokens are words, and a failed fullmatch costs as much as a successful one.
    for t in _TOKEN_RE.finditer(seg):
        tok = t.group()
        c = tok[0]
        base = at + t.start()
        m = _GLUED_RE.fullmatch(tok) if "=" in tok or ":" in tok else None
        if m:
            if pending:
                return None
            pairs.append(
                ((_span(m, "key", base),), _span(m, "num", base), m.group("unit") or "", True)
            )
            continue
        if c in _NUMBER_FIRST or c.isdigit():
            m = _VALUE_RE.fullmatch(tok)
            if m:
                if not pending:
                    return None
                pairs.append((tuple(pending), _span(m, "num", base), m.group("unit") or "", closed))
                pending, words, closed = [], [], False
                continue
        if "/" in tok:
            m = _FRAC_RE.fullmatch(tok)
            if m:
                if not pending or step_kind(words[-1]) is None:
                    return None
                pairs.append((tuple(pending), _span(m, "n", base), "/", closed))
                pending, words, closed = [], [], False
                continue
        if tok in (":", "="):
            if not pending or closed:
                return None
            closed = True
            continue
        if c == "[" and not pairs and not pending and _COUNTER_RE.fullmatch(tok):
            continue  # "[12]" / "[3/10]" opening a line: a counter, read by find_context
        if closed or not (c in _WORD_FIRST or ("a" <= c <= "z") or ("A" <= c <= "Z")):
            return None
        m = _WORD_RE.fullmatch(tok)
        if m is None:
            return None
        word = m.group("w")
        if word.endswith(".") or word.lower() in STOPWORDS:
            return None  # prose: "done.", "took", "with"
        pending.append(_span(m, "w", base))
        words.append(word)
        if len(pending) > 4:
            return None
        closed = m.group("sep") is not None
    if pending:
        return None
    return pairs


def normalize_message(msg: str) -> str:
    """Drop progress bars, parenthesized annotations (running averages, units) and padding
    around ``=``: what is left is names and numbers."""
    if "%|" in msg:
        msg = _BAR_RE.sub(" ", msg)  # tqdm's "45%|████▌     |": a percentage, not a metric
    if "(" in msg:
        msg = _PAREN_RE.sub("", msg)
    if "=" in msg and _EQ_PADDED_RE.search(msg):
        msg = _EQ_PAD_RE.sub("=", msg)
    if " :" in msg:
        msg = _COLON_PAD_RE.sub(":", msg)
    if ("/" in msg or "[" in msg) and _FRAC_PADDED_RE.search(msg):
        msg = _FRAC_PAD_RE.sub(lambda m: "/" if "/" in m.group(0) else "", msg)
    return msg


# Lines of one template (same text, other numbers) read the same way: every test above sees
# digits only as digits, so a message with each digit read as 0 has its pairs at the same
# positions. The reading of that *shape* is cached; a line of a known shape costs one
# translate, one lookup and its float() calls.
ZEROS = str.maketrans("123456789", "000000000")
_SHAPES: dict[bytes, list[Found]] = {}
_SHAPES_SIZE = 4096
_SHAPE_CHARS = 2000  # longer messages are read directly, not cached


def message_pairs(msg: str) -> list[Pair]:
    """Every pair in a normalized message: implicit where a segment is all pairs, else the
    explicit ones of that segment. A two-cell table row (``│ test_acc │ 0.92 │``, Lightning's
    test results) is one pair."""
    return [_pair(msg, f) for f in pair_positions(msg)]


def pair_positions(msg: str) -> list[Found]:
    """``message_pairs`` as positions in ``msg``: (spans of the key's words, span of the
    number, unit, explicit) per pair. Shared by every message of ``msg``'s shape: read only."""
    if len(msg) > _SHAPE_CHARS:
        return _message_pairs(msg)
    shape = shape_of(msg)
    found = _SHAPES.get(shape)
    if found is None:
        if len(_SHAPES) >= _SHAPES_SIZE:
            _SHAPES.clear()
        found = _SHAPES[shape] = _message_pairs(msg.translate(ZEROS))
    return found


def _segments(msg: str) -> list[Span]:
    spans: list[Span] = []
    start = 0
    for m in _SEGMENT_SPLIT_RE.finditer(msg):
        spans.append((start, m.start()))
        start = m.end()
    spans.append((start, len(msg)))
    return spans


def _stripped(msg: str, a: int, b: int) -> Span:
    seg = msg[a:b]
    return a + len(seg) - len(seg.lstrip()), b - (len(seg) - len(seg.rstrip()))


def _message_pairs(msg: str) -> list[Found]:
    segments = [_stripped(msg, a, b) for a, b in _segments(msg)]
    if msg[:1] in _CELL_EDGES:
        cells = [(a, b) for a, b in segments if b > a]
        if len(cells) == 2 and _WORDS_RE.fullmatch(msg, *cells[0]):
            m = _VALUE_RE.fullmatch(msg[cells[1][0] : cells[1][1]])
            if m and not m.group("unit"):
                return [((cells[0],), _span(m, "num", cells[1][0]), "", True)]
    out: list[Found] = []
    for a, b in segments:
        seg = msg[a:b]
        if seg[:1] == "[" and "]" not in seg:
            a += 1  # "[D loss: 0.512] [G loss: 0.734]" split at "] ["
            seg = seg[1:]
        if seg[-1:] == "]" and "[" not in seg:
            b -= 1
            seg = seg[:-1]
        if not seg or not _DIGIT_RE.search(seg):
            continue
        got = _implicit(seg, a)
        out.extend(got if got is not None else _explicit(seg, a))
    return out


def find_context(msg: str, *, leading_counter: bool = True) -> tuple[int | None, float | None]:
    """(step, epoch) a message names: ``Epoch 3/10``, ``step=500``, ``Iteration 20``,
    ``[3/10]``, ``Epoch [1][50/7330]``, xgboost's ``[12]``. ``None`` where it names none.

    ``leading_counter=False`` ignores a bare ``[N]``/``[N/M]`` opening the message, which
    only counts when the line also carries values (ninja's ``[2/3] c++ ...`` does not).
    """
    step_at, epoch_at = context_positions(msg, leading_counter)
    step = int(msg[step_at[0] : step_at[1]]) if step_at else None
    epoch = float(msg[epoch_at[0] : epoch_at[1]]) if epoch_at else None
    if epoch is not None and epoch.is_integer():
        epoch = float(int(epoch))
    return step, epoch


_CONTEXTS: dict[tuple[bytes, bool], tuple[Span | None, Span | None]] = {}


def context_positions(msg: str, leading_counter: bool) -> tuple[Span | None, Span | None]:
    """Where ``find_context``'s step and epoch numbers are in ``msg`` (read once per shape,
    as ``pair_positions`` does)."""
    if len(msg) > _SHAPE_CHARS:
        return _context(msg, leading_counter)
    key = (shape_of(msg), leading_counter)
    spans = _CONTEXTS.get(key)
    if spans is None:
        if len(_CONTEXTS) >= _SHAPES_SIZE:
            _CONTEXTS.clear()
        spans = _CONTEXTS[key] = _context(msg.translate(ZEROS), leading_counter)
    return spans


def _context(msg: str, leading_counter: bool) -> tuple[Span | None, Span | None]:
    """Where find_context's step and epoch numbers are in ``msg``."""
    epoch: Span | None = None
    step: Span | None = None
    epoch_end = -1
    m = _EPOCH_CTX_RE.search(msg)
    if m is None:
        m = _TRAIN_EPOCH_RE.match(msg)
    if m:
        epoch = m.span("n")
        epoch_end = m.end()
    best = 99
    if any(w in msg for w in ("tep", "ter", "TEP", "TER", "atch", "pdate", "ound")):
        for sm in _STEP_CTX_RE.finditer(msg):
            word = sm.group("w").lower()
            prio = _STEP_PRIORITY.get(word, 3 if word in ("iter", "update", "round") else 4)
            if prio < best:
                best, step = prio, sm.span("n")
    if step is None and "[" in msg:
        if epoch_end >= 0:
            bm = _BRACKET_CTX_RE.search(msg, epoch_end)
            if bm and bm.group("of"):
                step = bm.span("n")
        elif leading_counter:
            lead = len(msg) - len(msg.lstrip())
            bm = _BRACKET_CTX_RE.match(msg, lead)
            if bm:
                if bm.group("of"):
                    epoch = bm.span("n")
                else:
                    step = bm.span("n")
    return step, epoch


# "hyper: lr=0.0003 batch=64": a batch *size* among settings, not the batch counter
BATCH_SETTING_RE = re.compile(r"(?i)(?<![\w.\-/])batch\s*[=:]\s*(?P<n>\d+)(?![\w.%/])")


def batch_setting(norm: str, pairs: list[Pair], step: int | None) -> tuple[int | None, list[Pair]]:
    """Drop ``batch=64`` as a step on a line of settings (no metric-named value): it is a
    batch size there (``hyper: lr=0.0003 batch=64``), while ``epoch=1 batch=12 loss=0.3``
    counts batches."""
    m = BATCH_SETTING_RE.search(norm)
    if m is None or any(is_metric_name(p.key) for p in pairs):
        return step, pairs
    size = float(m.group("n"))
    kept = [p for p in pairs if not (p.explicit and p.key.lower() == "batch" and p.value == size)]
    return (None if step == int(size) else step), kept


_QUOTED_PAIR_RE = re.compile(
    rf"[\"'](?P<key>[\w./\-@ ]{{1,80}})[\"']\s*:\s*[\"']?(?P<num>{_NUM})[\"']?\s*[,}}]"
)


def has_training_signal(msg: str) -> bool:
    """Whether a message shows training under way: a step/epoch counter or a metric-named
    number. Settings printed before training never do; neither do progress bars alone
    (model downloads and dataset ``Map: 100%|...`` bars come before training)."""
    if not _DIGIT_RE.search(msg):
        return False
    norm = normalize_message(msg)
    pairs = message_pairs(norm)
    step, epoch = find_context(norm, leading_counter=bool(pairs))
    if "atch" in norm or "ATCH" in norm:
        step, pairs = batch_setting(norm, pairs, step)
    if (step, epoch) != (None, None):
        return True
    for p in pairs:
        if p.unit in ("", "%") and (is_metric_name(p.key) or step_kind(p.key)):
            return True
    if "{" in msg:
        for m in _QUOTED_PAIR_RE.finditer(msg):
            key = m.group("key")
            if is_metric_name(key) or step_kind(key):
                return True
    return False
