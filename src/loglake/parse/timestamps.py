"""Reading the timestamp, level and logger name that logging frameworks put before a message.

Runs on every line, so it rejects fast: a timestamp prefix starts with a digit, ``[`` or a
glog level letter followed by a digit; anything else costs one character test.

Formats understood at the start of a line (UTC when the line names no zone):
``2026-11-27 05:15:19,749`` / ``.749`` / ISO 8601 with ``T``, ``Z`` or an offset,
``2026/11/27 05:15:19``, ``11/27/2026 05:15:19`` (HF examples), ``[2026-11-27 05:15:19]``,
Optuna's ``[I 2026-11-27 05:15:16,121]``, detectron2's ``[11/27 05:15:19 d2.engine]:`` and
absl/glog ``I1127 05:15:16.121000 12345 file.py:12]`` (these two print no year: the
current year is assumed, or the previous one when that would put the line in the future).
"""

from __future__ import annotations

import calendar
import re
import time
from typing import Any, NamedTuple

from loglake.parse.values import shape_of

_LEVEL_LETTERS = {
    "D": "DEBUG",
    "I": "INFO",
    "W": "WARNING",
    "E": "ERROR",
    "C": "CRITICAL",
    "F": "FATAL",
}

_TIME = r"(?P<h>\d{2}):(?P<mi>\d{2}):(?P<s>\d{2})(?:[.,](?P<f>\d{1,9}))?"
_ZONE = r"(?:\s?(?P<z>Z|UTC|[+-]\d{2}:?\d{2})(?![\d:]))?"
_YMD = rf"(?P<Y>\d{{4}})(?P<sep>[-/])(?P<M>\d{{2}})(?P=sep)(?P<D>\d{{2}})[T ]{_TIME}{_ZONE}"
_MDY = rf"(?P<M>\d{{2}})/(?P<D>\d{{2}})/(?P<Y>\d{{4}}),? {_TIME}"
_MD = rf"(?P<M>\d{{2}})/(?P<D>\d{{2}}) {_TIME}"

_PLAIN_RES = (re.compile(_YMD), re.compile(_MDY))
_BRACKET_RES = (
    # [2026-11-27 05:15:19,123]  [I 2026-11-27 05:15:16,121]  [2026-11-27 05:15:19 name]
    re.compile(rf"\[(?:(?P<lv>[DIWECF]) )?{_YMD}(?:\s+[\w.\-]+)?\s*\]:?"),
    re.compile(rf"\[{_MDY}(?:\s+[\w.\-]+)?\s*\]:?"),
    re.compile(rf"\[{_MD}(?:\s+[\w.\-]+)?\s*\]:?"),  # detectron2
)
_GLOG_RE = re.compile(rf"(?P<lv>[DIWECF])(?P<M>\d{{2}})(?P<D>\d{{2}}) {_TIME}\s+\d+\s+[^\s\]]+\]")
_SPACE_RE = re.compile(r"\s*")


# epoch seconds of a stamp's minute (None: not a date), by its printed fields: a log's lines
# share a few minutes, and int() and timegm per line cost more than the regex did
_MINUTES: dict[tuple[str, str, str, str, str], int | None] = {}
_UNSEEN = -1


def minute_seconds(year: str, month: str, day: str, hour: str, minute: str) -> int | None:
    """Epoch seconds (UTC) of a stamp's minute from its printed fields; None when they name
    no date (month 13, day 32, year 0: such a stamp is no prefix, the line splits otherwise)."""
    try:
        mo, d, h, mi = int(month), int(day), int(hour), int(minute)
        y = int(year)
    except ValueError:
        return None
    if not (1 <= y and 1 <= mo <= 12 and 1 <= d <= 31 and h < 24 and mi < 60):
        return None  # year 0 too: calendar.timegm rejects it (a stamp, not a time, then)
    return calendar.timegm((y, mo, d, h, mi, 0))


def zone_seconds(zone: str | None) -> int:
    """Seconds a printed zone (``Z``, ``UTC``, ``+05:30``, ``-0130``) is ahead of UTC."""
    if not zone or zone in ("Z", "UTC"):
        return 0
    sign = -1 if zone[0] == "-" else 1
    digits = zone[1:].replace(":", "")
    return sign * (int(digits[:2]) * 3600 + int(digits[2:4]) * 60)


def _dated_seconds(
    key: tuple[str, str, str, str, str], sec_text: str, frac_text: str | None, zone: str | None
) -> float | None:
    """Epoch seconds of a stamp with a year, from its printed fields."""
    base = _MINUTES.get(key, _UNSEEN)
    if base == _UNSEEN:
        if len(_MINUTES) >= 4096:
            _MINUTES.clear()
        base = _MINUTES[key] = minute_seconds(*key)
    try:
        sec = int(sec_text)
    except ValueError:
        return None
    if base is None or sec >= 61:
        return None
    frac = float("0." + frac_text) if frac_text else 0.0
    return base + sec + frac - zone_seconds(zone)


def _epoch_seconds(m: re.Match[str]) -> float | None:
    names = m.re.groupindex
    year_text = m.group("Y") if "Y" in names else None
    if year_text:
        key = (year_text, *m.group("M", "D", "h", "mi"))
        zone = m.group("z") if "z" in names else None
        return _dated_seconds(key, m.group("s"), m.group("f"), zone)  # type: ignore[arg-type]
    g = m.groupdict()
    try:
        month_n, day_n = int(g["M"]), int(g["D"])
        hour_n, minute_n, sec = int(g["h"]), int(g["mi"]), int(g["s"])
    except (TypeError, ValueError):
        return None
    if not (1 <= month_n <= 12 and 1 <= day_n <= 31 and hour_n < 24 and minute_n < 60):
        return None
    if sec >= 61:
        return None
    frac = float("0." + g["f"]) if g.get("f") else 0.0
    now = time.time()
    year = time.gmtime(now).tm_year
    ts = calendar.timegm((year, month_n, day_n, hour_n, minute_n, sec)) + frac
    if ts > now + 2 * 86400:  # a December line read in January
        ts = calendar.timegm((year - 1, month_n, day_n, hour_n, minute_n, sec)) + frac
    return ts


def _match(text: str) -> tuple[float | None, int, str | None]:
    """(epoch seconds, prefix length incl. trailing spaces, level named inside the stamp)."""
    m = _stamp(text)
    return (None, 0, None) if m is None else _read(text, m)


def _read(text: str, m: re.Match[str]) -> tuple[float | None, int, str | None]:
    """``_match``'s answer for the stamp pattern's match ``m`` at the start of ``text``."""
    ts = _epoch_seconds(m)
    if ts is None:
        return None, 0, None
    end = _SPACE_RE.match(text, m.end()).end()  # type: ignore[union-attr]
    letter = m.group("lv") if "lv" in m.re.groupindex else None
    return ts, end, _LEVEL_LETTERS.get(letter) if letter else None


def _stamp(text: str) -> re.Match[str] | None:
    """The stamp pattern's match at the start of ``text`` (its date not checked yet)."""
    if not text:
        return None
    c = text[0]
    m: re.Match[str] | None = None
    if "0" <= c <= "9":
        for rx in _PLAIN_RES:
            m = rx.match(text)
            if m:
                break
    elif c == "[":
        if len(text) > 1 and (
            text[1].isdigit() or (text[1] in _LEVEL_LETTERS and text[2:3] == " ")
        ):
            for rx in _BRACKET_RES:
                m = rx.match(text)
                if m:
                    break
    elif c in _LEVEL_LETTERS and len(text) > 1 and text[1].isdigit():
        m = _GLOG_RE.match(text)
    return m


def leading_timestamp(text: str) -> tuple[float | None, int]:
    """Epoch seconds of a timestamp at the start of ``text`` and the prefix length consumed.

    ``(None, 0)`` when the line does not start with a timestamp.
    """
    ts, end, _ = _match(text)
    return ts, end


_LEVELS = r"DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL|NOTICE|TRACE|SUCCESS"
# torchrun's "[rank0]:", Lightning's "[rank: 0]", and srun --label's "0: " before a stamp
_RANK_RE = re.compile(
    r"(?:\[(?:rank\s*(?::\s*)?\d+|default\d+)\]:?|\d{1,4}: ?(?=\d{4}-\d\d-\d\d|\[))\s*"
)
# No two \s* side by side with only optional text between: they would split a long run
# of spaces every possible way before failing.
_LEVEL_RE = re.compile(
    r"(?:[|:\-]\s*)?"
    # a logger name before the level: "mmdet - INFO", "[__main__][INFO]", "d2.engine INFO:"
    rf"(?:\[?[A-Za-z_][\w.\-]*\]?\s*(?:[|\-]\s*)?(?=\[?(?:{_LEVELS})\b))?"
    # transformers' own format: "[INFO|configuration_utils.py:731] 2026-... >> msg"
    rf"\[?(?P<level>{_LEVELS})\b(?:\|[^\]\s]*)?\]?"
    r"(?:(?P<py>:)(?=[\w<])|\s*(?:[|:\-]\s*)?)"
)
_ARROW_RE = re.compile(r">>\s*")
# After a level: "__main__ - ", "fairseq.trainer | ", "__main__:main:10 - ", "[trainer] "
_LOGGER_SEP_RE = re.compile(r"(?:\[[\w.\-]+\]:?\s*|[\w.\-<>]+(?::[\w.\-<>]+)*\s*(?:\s-\s|\|)\s*)")
_LOGGER_PY_RE = re.compile(r"[\w.\-<>]+:")
# "trainer: epoch 1/5 ..." — a name, a colon, then prose (not a number, dict or single value)
_LOGGER_COLON_RE = re.compile(r"[A-Za-z_][\w.\-]*:\s+(?=[^\s\d+\-.{\['\"(]\S*\s+\S)")


# Lines of one template (same text, other digits) split the same way: every pattern above
# sees a digit only as a digit, so only the stamp's date (a valid month, day, second...)
# depends on which digits. The split of a line *shape* (each ASCII digit read as 0) is
# cached as a ``ShapeSplit``; a line of a known shape costs a translate, a lookup and
# reading the stamp's fields at known places (a dated stamp) or the stamp's own match (the
# others). A shape's split is learnt only from a line whose stamp, if its pattern matched,
# was a valid date; a line of a known shape whose date is not valid is split afresh.
Span = tuple[int, int]


class StampFields(NamedTuple):
    """Where a dated stamp's fields are in its line (a line of the same shape has them at
    the same places): the text from year to minute, the seconds, the fraction and zone (if
    printed), and the year, month, day, hour and minute each."""

    minute_start: int
    minute_end: int
    sec_start: int
    sec_end: int
    frac: Span | None
    zone: Span | None
    parts: tuple[Span, ...]


class ShapeSplit(NamedTuple):
    """How ``split_log_prefix`` splits every line of one shape whose stamp is a valid date."""

    end: int  # where the prefix ends (0: the line has none, its message is the whole line)
    message_at: int  # where the message starts: ``end`` and the spaces after it
    level: str | None
    stamp_at: int  # where the stamp starts
    pattern: re.Pattern[str] | None  # the stamp's pattern (None: the line has no stamp)
    fields: StampFields | None  # a dated stamp's fields (None: no stamp, or no year)


# epoch seconds of a minute by its text from year to minute ("2026-11-27 05:15",
# "11/27/2026, 05:15"): the year-first and month-first layouts never print the same text
_MINUTE_TEXTS: dict[str, int | None] = {}
_SPLITS: dict[bytes, ShapeSplit | None] = {}
_NEW: Any = object()
_UNPREFIXED = ShapeSplit(0, 0, None, 0, None, None)
_NOT_A_DATE: Any = object()
_SPLITS_SIZE = 4096
_SPLIT_CHARS = 2000  # longer lines are split directly, not cached


def split_log_prefix(text: str) -> tuple[float | None, str | None, str]:
    """(timestamp, level, message) of a log line; the message keeps its indentation when the
    line has no prefix, so indented config blocks stay recognizable."""
    how = _SPLITS.get(shape_of(text), _NEW) if len(text) <= _SPLIT_CHARS else None
    if how is _NEW:
        got, how = split_shape(text)
        _remember(text, how)
        return got
    if how is not None:
        ts = _stamp_as(text, how)
        if ts is not _NOT_A_DATE:
            return (ts, how.level, text[how.message_at :]) if how.end else (None, None, text)
    return _split_afresh(text, how)


def message_at(text: str) -> int:
    """Where ``split_log_prefix(text)``'s message starts in ``text`` (the message is
    ``text[message_at(text):]``), without computing the timestamp: only whether the
    stamp is a valid date (that decides the split) is read."""
    how = shape_split(text)
    if how is not None and dated_as(text, how):
        return how.message_at  # type: ignore[no-any-return]
    return len(text) - len(_split_afresh(text, how)[2])


def _split_afresh(text: str, known: ShapeSplit | None) -> tuple[float | None, str | None, str]:
    """``split_shape(text)``'s split of a line its shape's split did not serve; a shape known
    only from a line whose stamp was no date learns its split from this one if it can."""
    got, how = split_shape(text)
    if known is None and how is not None and len(text) <= _SPLIT_CHARS:
        _remember(text, how)
    return got


def shape_split(text: str) -> ShapeSplit | None:
    """How lines of ``text``'s shape split (cached per shape); None when they must be split
    one by one (``split_shape``): a line too long to cache, or a shape whose first line's
    stamp was not a date. A line of the shape splits so only if ``dated_as`` it."""
    if len(text) > _SPLIT_CHARS:
        return None
    how = _SPLITS.get(shape_of(text), _NEW)
    if how is _NEW:
        how = split_shape(text)[1]
        _remember(text, how)
    return how  # type: ignore[no-any-return]


def message_split(text: str) -> ShapeSplit | None:
    """``shape_split`` as ``strip_log_prefix`` reads a line: one that cannot start with a
    prefix (its first character, fixed by its shape, says so) keeps its whole text."""
    c = text[:1]
    if not (c.isdigit() or c == "[" or c.isupper()):
        return _UNPREFIXED
    return shape_split(text)


def _remember(text: str, how: ShapeSplit | None) -> None:
    if len(_SPLITS) >= _SPLITS_SIZE:
        _SPLITS.clear()
    _SPLITS[shape_of(text)] = how


def dated_as(text: str, how: ShapeSplit) -> bool:
    """Whether a line of ``how``'s shape splits as ``how`` says: its stamp is a valid date."""
    fields = how.fields
    if fields is None:
        return how.pattern is None or _stamp_as(text, how) is not _NOT_A_DATE
    k0, k1, s0, s1, _, _, parts = fields
    base = minute_at(text, k0, k1, parts)
    try:
        return base is not None and int(text[s0:s1]) < 61
    except ValueError:
        return False


def _stamp_as(text: str, how: ShapeSplit) -> Any:
    """Epoch seconds of the stamp of a line of ``how``'s shape (None: it has none), or
    ``_NOT_A_DATE`` when its stamp is not a valid date (then it splits otherwise)."""
    fields = how.fields
    if fields is None:
        if how.pattern is None:
            return None
        at = how.stamp_at
        m = how.pattern.match(text[at:] if at else text)
        ts = _epoch_seconds(m) if m is not None else None
        return _NOT_A_DATE if ts is None else ts
    k0, k1, s0, s1, f, z, parts = fields
    base = minute_at(text, k0, k1, parts)
    try:
        sec = int(text[s0:s1])
    except ValueError:
        return _NOT_A_DATE
    if base is None or sec >= 61:
        return _NOT_A_DATE
    ts = base + sec + (float("0." + text[f[0] : f[1]]) if f else 0.0)
    if z is not None:
        ts -= zone_seconds(text[z[0] : z[1]])
    return ts


def minute_at(text: str, k0: int, k1: int, parts: tuple[Span, ...]) -> int | None:
    """Epoch seconds of the minute a dated stamp's fields name (``text[k0:k1]``, from its
    year to its minute; ``parts``: where year, month, day, hour and minute are in ``text``);
    None when they are no date. Cached by that text: a log's lines share a few minutes."""
    base = _MINUTE_TEXTS.get(text[k0:k1], _UNSEEN)
    return _minute_of(text, k0, k1, parts) if base == _UNSEEN else base


def _minute_of(text: str, k0: int, k1: int, parts: tuple[Span, ...]) -> int | None:
    if len(_MINUTE_TEXTS) >= 4096:
        _MINUTE_TEXTS.clear()
    base = _MINUTE_TEXTS[text[k0:k1]] = minute_seconds(*(text[a:b] for a, b in parts))
    return base


def split_shape(
    text: str,
) -> tuple[tuple[float | None, str | None, str], ShapeSplit | None]:
    """``split_log_prefix`` of ``text`` computed afresh, and how every line of its shape
    splits (None when a stamp's pattern matched but its date was not valid: that outcome
    depends on the digits)."""
    at = 0
    rx: re.Pattern[str] | None = None
    fields: StampFields | None = None
    valid = True

    def stamp(start: int) -> tuple[float | None, int, str | None]:
        nonlocal at, rx, fields, valid
        rest = text[start:] if start else text
        m = _stamp(rest)
        if m is None:
            return None, 0, None
        got = _read(rest, m)
        if got[0] is None:
            valid = False
        else:
            at, rx = start, m.re
            if "Y" in rx.groupindex:
                fields = _fields(m, start)
        return got

    pos = 0
    m = _RANK_RE.match(text)
    if m:
        pos = m.end()
    ts, n, level = stamp(pos)
    pos += n
    m = _RANK_RE.match(text, pos)
    if m:
        pos = m.end()
    stamped = pos > 0
    pycolon = False
    m = _LEVEL_RE.match(text, pos)
    if m and (stamped or m.start() == 0):
        level = m.group("level")
        pycolon = m.group("py") is not None
        pos = m.end()
        if ts is None and pos < len(text) and text[pos].isdigit():
            ts, n, _ = stamp(pos)  # the stamp after the level (transformers)
            pos += n
            m2 = _ARROW_RE.match(text, pos)
            if m2:
                pos = m2.end()
        if pycolon:
            m2 = _LOGGER_PY_RE.match(text, pos)
            if m2:
                pos = m2.end()
        else:
            m2 = _LOGGER_SEP_RE.match(text, pos)
            if m2:
                pos = m2.end()
        stamped = True
    if stamped and not pycolon:
        m2 = _LOGGER_COLON_RE.match(text, pos)
        if m2:
            pos = m2.end()
    msg = text[pos:].lstrip() if pos else text
    how = ShapeSplit(pos, len(text) - len(msg), level, at, rx, fields) if valid else None
    if pos == 0:
        return (None, None, text), how
    return (ts, level, msg), how


def _fields(m: re.Match[str], start: int) -> StampFields:
    """Where a dated stamp's fields are in its line (a line of the same shape has them at
    the same places: the stamp patterns see a digit only as a digit)."""

    def span(name: str) -> Span | None:
        if name not in m.re.groupindex or m.start(name) < 0:
            return None
        return m.start(name) + start, m.end(name) + start

    parts = tuple(span(name) for name in ("Y", "M", "D", "h", "mi"))
    k0 = min(p[0] for p in parts)  # type: ignore[index]
    k1 = max(p[1] for p in parts)  # type: ignore[index]
    s0, s1 = span("s")  # type: ignore[misc]
    return StampFields(k0, k1, s0, s1, span("f"), span("z"), parts)  # type: ignore[arg-type]


def strip_log_prefix(text: str) -> str:
    """The message of a log line without its timestamp, level and logger name."""
    if not text:
        return text
    c = text[0]
    if not (c.isdigit() or c == "[" or c.isupper()):
        return text
    return split_log_prefix(text)[2]
