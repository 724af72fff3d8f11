"""Finding ``name value`` pairs and step/epoch counters in free-form log messages.

Two readings of a message, from strict to loose:

- **explicit** pairs have a separator: ``loss=0.5``, ``val_acc: 0.93``, ``train-auc:0.97``;
- **implicit** pairs are ``word number`` runs (``epoch 1/5 step 10 train_loss 0.5601``,
  ``train loss 10.93``). They are accepted only when a whole segment of the message (split on
  ``|``, tabs, ``, ``, `` - ``) reads as pairs; prose such as ``Loaded 5 files`` never does.

Also the structured-text helpers the parsers share: Python/JSON mappings on one line,
``Name(k=v, ...)`` reprs, balanced brackets, flattening, and ``key: value`` settings text.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any, NamedTuple

from loglake.parse.values import NUMBER
from loglake.parse.vocabulary import STOPWORDS, is_metric_name, step_kind

MAX_MAPPING_CHARS = 200_000


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

_GLUED_RE = re.compile(
    rf"[\"']?(?P<key>[A-Za-z_][\w.\-/@]*)[\"']?[=:][\"']?(?P<num>{_NUM})(?P<unit>{_UNIT})?[\"']?[,;]?"
)
_VALUE_RE = re.compile(rf"(?P<num>{_NUM})(?P<unit>{_UNIT})?[:,;]?")
_FRAC_RE = re.compile(r"\[?(?P<n>\d+)/(?P<of>\d+)\]?[:,]?")
_CELL_EDGES = ("|", "│", "┃")
_WORDS_RE = re.compile(r"[A-Za-z_][\w.\-/@]*(?: [A-Za-z_][\w.\-/@]*){0,3}")
_COUNTER_RE = re.compile(r"\[\d+(?:/\d+)?\]:?")
_WORD_RE = re.compile(r"[\"']?(?P<w>[A-Za-z_][\w.\-/@]*(?:'s)?)[\"']?(?P<sep>[:=])?")

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


def explicit_pairs(text: str) -> list[Pair]:
    """``name=number`` / ``name: number`` pairs anywhere in ``text``."""
    out = []
    for m in _EXPLICIT_RE.finditer(text):
        out.append(Pair(m.group("key"), float(m.group("num")), m.group("unit") or "", True))
    return out


def _implicit(segment: str) -> list[Pair] | None:
    """A segment read as ``label number`` pairs, or ``None`` if any part is not a pair."""
    pairs: list[Pair] = []
    pending: list[str] = []
    closed = False
    for tok in segment.split():
        m = _GLUED_RE.fullmatch(tok)
        if m:
            if pending:
                return None
            pairs.append(Pair(m.group("key"), float(m.group("num")), m.group("unit") or "", True))
            continue
        m = _VALUE_RE.fullmatch(tok)
        if m:
            if not pending:
                return None
            num = float(m.group("num"))
            pairs.append(Pair(" ".join(pending), num, m.group("unit") or "", closed))
            pending, closed = [], False
            continue
        m = _FRAC_RE.fullmatch(tok)
        if m:
            if not pending or step_kind(pending[-1]) is None:
                return None
            pairs.append(Pair(" ".join(pending), float(m.group("n")), "/", closed))
            pending, closed = [], False
            continue
        if tok in (":", "="):
            if not pending or closed:
                return None
            closed = True
            continue
        if not pairs and not pending and _COUNTER_RE.fullmatch(tok):
            continue  # "[12]" / "[3/10]" opening a line: a counter, read by find_context
        m = _WORD_RE.fullmatch(tok)
        if m is None or closed:
            return None
        word = m.group("w")
        if word.endswith(".") or word.lower() in STOPWORDS:
            return None  # prose: "done.", "took", "with"
        pending.append(word)
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
    if "=" in msg:
        msg = _EQ_PAD_RE.sub("=", msg)
    if " :" in msg:
        msg = _COLON_PAD_RE.sub(":", msg)
    if "/" in msg or "[" in msg:
        msg = _FRAC_PAD_RE.sub(lambda m: "/" if "/" in m.group(0) else "", msg)
    return msg


def message_pairs(msg: str) -> list[Pair]:
    """Every pair in a normalized message: implicit where a segment is all pairs, else the
    explicit ones of that segment. A two-cell table row (``│ test_acc │ 0.92 │``, Lightning's
    test results) is one pair."""
    segments = _SEGMENT_SPLIT_RE.split(msg)
    if msg[:1] in _CELL_EDGES:
        cells = [c.strip() for c in segments if c.strip()]
        if len(cells) == 2 and _WORDS_RE.fullmatch(cells[0]):
            m = _VALUE_RE.fullmatch(cells[1])
            if m and not m.group("unit"):
                return [Pair(cells[0], float(m.group("num")), "", True)]
    out: list[Pair] = []
    for seg in segments:
        seg = seg.strip()
        if seg[:1] == "[" and "]" not in seg:
            seg = seg[1:]  # "[D loss: 0.512] [G loss: 0.734]" split at "] ["
        if seg[-1:] == "]" and "[" not in seg:
            seg = seg[:-1]
        if not seg or not _DIGIT_RE.search(seg):
            continue
        got = _implicit(seg)
        out.extend(got if got is not None else explicit_pairs(seg))
    return out


def find_context(msg: str, *, leading_counter: bool = True) -> tuple[int | None, float | None]:
    """(step, epoch) a message names: ``Epoch 3/10``, ``step=500``, ``Iteration 20``,
    ``[3/10]``, ``Epoch [1][50/7330]``, xgboost's ``[12]``. ``None`` where it names none.

    ``leading_counter=False`` ignores a bare ``[N]``/``[N/M]`` opening the message, which
    only counts when the line also carries values (ninja's ``[2/3] c++ ...`` does not).
    """
    epoch: float | None = None
    step: int | None = None
    epoch_end = -1
    m = _EPOCH_CTX_RE.search(msg)
    if m is None:
        m = _TRAIN_EPOCH_RE.match(msg)
    if m:
        epoch = float(m.group("n"))
        epoch_end = m.end()
    best = 99
    if any(w in msg for w in ("tep", "ter", "TEP", "TER", "atch", "pdate", "ound")):
        for sm in _STEP_CTX_RE.finditer(msg):
            word = sm.group("w").lower()
            prio = _STEP_PRIORITY.get(word, 3 if word in ("iter", "update", "round") else 4)
            if prio < best:
                best, step = prio, int(sm.group("n"))
    if step is None and "[" in msg:
        if epoch_end >= 0:
            bm = _BRACKET_CTX_RE.search(msg, epoch_end)
            if bm and bm.group("of"):
                step = int(bm.group("n"))
        elif leading_counter:
            bm = _BRACKET_CTX_RE.match(msg.lstrip())
            if bm:
                if bm.group("of"):
                    epoch = float(bm.group("n"))
                else:
                    step = int(bm.group("n"))
    if epoch is not None and epoch.is_integer():
        epoch = float(int(epoch))
    return step, epoch


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
    if find_context(norm, leading_counter=bool(pairs)) != (None, None):
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


# -- structured text ------------------------------------------------------------------------

_OPEN = {"(": ")", "[": "]", "{": "}"}
_CLOSE = {")", "]", "}"}
_SCALAR_WRAP_RE = re.compile(
    r"\b(?:np\.|numpy\.)?(?:float|int|uint)(?:8|16|32|64|128)?\(([^()]*)\)|\btensor\(([^(),]*)(?:,[^()]*)?\)"
)
_BARE_NONFINITE_RE = re.compile(r"(?<=[:\s\[,])(-?(?:nan|inf))(?=\s*[,}\]])")


def find_closing(text: str, start: int) -> int:
    """Index of the bracket closing the one at ``start`` (quotes respected), or -1."""
    depth = 0
    quote = ""
    i = start
    n = len(text)
    while i < n:
        c = text[i]
        if quote:
            if c == "\\":
                i += 2
                continue
            if c == quote:
                quote = ""
        elif c in ("'", '"'):
            quote = c
        elif c in _OPEN:
            depth += 1
        elif c in _CLOSE:
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def bracket_depth(text: str, depth: int = 0) -> int:
    """Bracket depth after ``text`` starting from ``depth`` (for multi-line dumps)."""
    quote = ""
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if quote:
            if c == "\\":
                i += 2
                continue
            if c == quote:
                quote = ""
        elif c in ("'", '"'):
            quote = c
        elif c in _OPEN:
            depth += 1
        elif c in _CLOSE:
            depth -= 1
        i += 1
    return depth


def split_top_level(text: str, sep: str = ",") -> list[str]:
    """Split on ``sep`` outside brackets and quotes."""
    parts: list[str] = []
    depth = 0
    quote = ""
    start = 0
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if quote:
            if c == "\\":
                i += 2
                continue
            if c == quote:
                quote = ""
        elif c in ("'", '"'):
            quote = c
        elif c in _OPEN:
            depth += 1
        elif c in _CLOSE:
            depth -= 1
        elif c == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def parse_mapping(text: str) -> dict[str, Any] | None:
    """A one-line JSON object or Python dict repr (numpy/torch scalars unwrapped), or None."""
    s = text.strip()
    if len(s) < 2 or s[0] != "{" or s[-1] != "}" or len(s) > MAX_MAPPING_CHARS:
        return None
    if '"' in s and "'" not in s:
        try:
            v = json.loads(s)
            return v if isinstance(v, dict) else None
        except ValueError:
            pass
    if "(" in s:
        s = _SCALAR_WRAP_RE.sub(lambda m: m.group(1) if m.group(1) is not None else m.group(2), s)
    if "nan" in s or "inf" in s:
        s = _BARE_NONFINITE_RE.sub(r"'\1'", s)
    try:
        v = ast.literal_eval(s)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    return v if isinstance(v, dict) else None


def flatten(obj: dict[str, Any], sep: str, prefix: str = "") -> list[tuple[str, Any]]:
    """Leaves of nested mappings with joined keys (``optimizer.lr``, ``train/loss``)."""
    out: list[tuple[str, Any]] = []
    for k, v in obj.items():
        key = f"{prefix}{sep}{k}" if prefix else str(k)
        if isinstance(v, dict) and v:
            out.extend(flatten(v, sep, key))
        else:
            out.append((key, v))
    return out


def number_of(value: Any) -> float | None:
    """A metric number from a parsed value: numbers and numeric strings (``'3.762'``,
    ``'100%'``), never booleans."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        s = value.strip()
        s = s.removesuffix("%")
        m = _VALUE_ONLY_RE.fullmatch(s)
        if m:
            return float(s)
    return None


_VALUE_ONLY_RE = re.compile(_NUM)

_REPR_HEAD_RE = re.compile(r"(?P<name>[A-Za-z_][\w.]*)\s*\(")
_KWARG_RE = re.compile(r"(?P<k>[A-Za-z_]\w*)\s*=(?!=)\s*(?P<v>.*)", re.DOTALL)


def parse_kwargs_repr(text: str) -> tuple[str, list[tuple[str, str]]] | None:
    """``Name(k=v, k2=v2)`` → ``('Name', [('k', 'v'), ...])`` when every argument is a keyword
    argument (dataclass and argparse ``Namespace`` reprs); else ``None``."""
    s = text.strip()
    m = _REPR_HEAD_RE.match(s)
    if not m or not s.endswith(")"):
        return None
    open_at = m.end() - 1
    if find_closing(s, open_at) != len(s) - 1:
        return None
    items = []
    for part in split_top_level(s[open_at + 1 : -1]):
        km = _KWARG_RE.fullmatch(part)
        if not km:
            return None
        items.append((km.group("k"), km.group("v").strip().rstrip(",").strip()))
    return m.group("name"), items


# -- settings text ----------------------------------------------------------------------------

_LEADER_SEP_RE = re.compile(r"[:=]|\s\.{3,}(?=\s)")
_SEP_RE = re.compile(r"[:=]")
_CALL_HEAD_RE = re.compile(r"[A-Za-z_][\w.]*\(")


def split_key_value(body: str, *, leader: bool) -> tuple[str, str] | None:
    """``key: value`` / ``key = value`` (/ ``key ..... value``) split at the first separator;
    None when the first ``:`` is not followed by a space (``http://``, ``binary:logistic``)."""
    m = (_LEADER_SEP_RE if leader else _SEP_RE).search(body)
    if m is None or m.start() == 0:
        return None
    sep = m.group(0)
    if sep == ":" and body[m.end() : m.end() + 1] not in ("", " ", "\t"):
        return None
    key = body[: m.start()].strip()
    return (key, body[m.end() :].strip()) if key else None


def is_scalar_text(value: str) -> bool:
    """Whether text reads as one setting value (a token, a quoted string, a bracketed list or
    dict, a ``Name(...)`` call) rather than prose (``True (cuda), used: True``)."""
    if len(value) > 300:
        return False
    if value[0] in "[{(\"'":
        end = find_closing(value, 0) if value[0] in "[{(" else value.find(value[0], 1)
        return end == len(value) - 1
    if " " not in value:
        return True
    m = _CALL_HEAD_RE.match(value)
    return bool(m) and find_closing(value, m.end() - 1) == len(value) - 1


def strip_comment(text: str) -> str:
    """``0.1  # peak lr`` → ``0.1`` (YAML and Python config comments)."""
    v = text.strip()
    if v[:1] not in ("'", '"') and " #" in v:
        v = v.split(" #", 1)[0].rstrip()
    return v


def clean_value(text: str) -> str:
    """A printed value without comments, trailing commas or surrounding quotes."""
    v = strip_comment(text).rstrip(",").strip()
    if len(v) >= 2 and v[0] == v[-1] and v[0] in ("'", '"'):
        try:
            inner = ast.literal_eval(v)
            if isinstance(inner, str):
                return inner
        except (ValueError, SyntaxError):
            return v[1:-1]
    return v
