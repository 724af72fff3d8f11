"""What a matched declarative rule turns into: one emitter per record kind.

``runner`` builds, per rule, the function the hot path calls with a match. Metric rules get
a specialised one: every group lookup resolved ahead of time, step/epoch/sub computed once
per line instead of once per value, ``float()`` straight on ``{NUMBER}`` groups, and values
appended straight onto the Emitter's columns (``records.MetricRows``, re-exported here).
The other kinds are rare and go through the generic ``EMIT`` functions.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from loglake.parse import timestamps
from loglake.parse.bounded import remember
from loglake.parse.declarative_compile import CompiledRule, Position
from loglake.parse.declarative_template import LINE, Access, Template
from loglake.parse.records import Emitter, MetricRows
from loglake.parse.timestamps import leading_timestamp, strip_log_prefix
from loglake.parse.values import to_int, to_number

Getter = Callable[[str], str | None]
# (match, line after the log prefix, raw line, offset, line ts, state, out, rows) -> emitted
Runner = Callable[[Any, str, str, int, "float | None", dict, Emitter, MetricRows], bool]


def to_step(text: str) -> int | None:
    if text.isascii() and text.isdigit():
        return int(text)
    return to_int(text.replace(",", "").strip())


def to_epoch(text: str) -> float | None:
    if text.isascii() and text.isdigit():
        return float(text)
    return to_number(text.replace(",", ""))


class Stamp:
    """The line's time: the envelope's, else one printed at the line start, computed lazily."""

    __slots__ = ("done", "text", "ts")

    def __init__(self, ts: float | None, text: str) -> None:
        self.ts, self.text, self.done = ts, text, ts is not None

    def get(self) -> float | None:
        if not self.done:
            self.ts, self.done = leading_timestamp(self.text)[0], True
        return self.ts


def getter(m: Any, pm: Any, line: str) -> Getter:
    """Group lookup for templates: the pairs match first, then the rule's match, ``{0}`` line."""
    pm_names = pm.re.groupindex if pm is not None else {}

    def get(name: str) -> str | None:
        if name == LINE:
            return line
        if name in pm_names:
            return pm.group(name)  # type: ignore[no-any-return]
        return m.group(int(name) if name.isdigit() else name)  # type: ignore[no-any-return]

    return get


def _render(tpl: Template | None, get: Getter) -> str | None:
    return tpl.render(get) if tpl is not None else None


def first_time(st: dict[str, Any], sig: str) -> bool:
    """True the first time ``sig`` is seen in this file; the memory is bounded."""
    seen: dict[str, int] = st["seen"]
    if sig in seen:
        return False
    remember(seen, sig)
    return True


def declare_sub(
    rule: CompiledRule, get: Getter, offset: int, st: dict[str, Any], out: Emitter
) -> str | None:
    """The rule's sub-run for this match, declared (``out.subrun``) the first time it appears."""
    if rule.sub is None:
        return None
    sub = rule.sub.render(get)
    if sub and first_time(st, f"sub\x1f{sub}"):
        out.subrun(
            sub,
            offset,
            name=_render(rule.sub_name, get),
            experiment=_render(rule.extra["experiment"], get),
        )
    return sub or None


def _param(
    rule: CompiledRule, get: Getter, offset: int, stamp: Stamp, st: dict, out: Emitter
) -> bool:
    sub = declare_sub(rule, get, offset, st, out)
    emitted = False
    for key_t, value_t in rule.items:
        key = key_t.render(get)
        value = value_t.render(get)
        if not key or value is None:
            continue
        if rule.once and not first_time(st, f"p\x1f{sub}\x1f{key}"):
            continue
        out.param(key.strip(), value.strip(), offset, sub=sub)
        emitted = True
    return emitted


def _status(
    rule: CompiledRule, get: Getter, offset: int, stamp: Stamp, st: dict, out: Emitter
) -> bool:
    sub = declare_sub(rule, get, offset, st, out)
    if rule.once and not first_time(st, f"s\x1f{sub}\x1f{rule.status}"):
        return False
    out.status(
        rule.status or "unknown",
        offset,
        reason=_render(rule.extra["reason"], get),
        error=_render(rule.extra["error"], get),
        sub=sub,
    )
    return True


def _fact(
    rule: CompiledRule, get: Getter, offset: int, stamp: Stamp, st: dict, out: Emitter
) -> bool:
    key = _render(rule.extra["fact"], get)
    value = _render(rule.extra["value"], get)
    if not key or value is None:
        return False
    sub = declare_sub(rule, get, offset, st, out)
    if rule.once and not first_time(st, f"f\x1f{sub}\x1f{key}"):
        return False
    out.fact(key, value.strip(), offset, sub=sub)
    return True


def _dataset(
    rule: CompiledRule, get: Getter, offset: int, stamp: Stamp, st: dict, out: Emitter
) -> bool:
    f = {
        k.removeprefix("dataset."): _render(t, get)
        for k, t in rule.extra.items()
        if k.startswith("dataset.")
    }
    rows_text, cols_text = f.get("rows"), f.get("cols")
    rows = to_step(rows_text) if rows_text else None
    cols = to_step(cols_text) if cols_text else None
    if not (f.get("name") or f.get("path") or rows is not None or cols is not None):
        return False
    sig = f"d\x1f{f.get('name')}\x1f{f.get('path')}\x1f{f.get('split')}\x1f{rows}\x1f{cols}"
    if rule.once and not first_time(st, sig):
        return False
    out.dataset(
        offset,
        name=f.get("name"),
        path=f.get("path"),
        split=f.get("split"),
        rows=rows,
        cols=cols,
        fingerprint=f.get("fingerprint"),
        sub=declare_sub(rule, get, offset, st, out),
    )
    return True


def _artifact(
    rule: CompiledRule, get: Getter, offset: int, stamp: Stamp, st: dict, out: Emitter
) -> bool:
    path = _render(rule.extra["artifact.path"], get)
    if not path or not path.strip():
        return False
    sub = declare_sub(rule, get, offset, st, out)
    out.artifact(path.strip(), offset, kind=_render(rule.extra["artifact.kind"], get), sub=sub)
    return True


def _package(
    rule: CompiledRule, get: Getter, offset: int, stamp: Stamp, st: dict, out: Emitter
) -> bool:
    name = _render(rule.extra["package.name"], get)
    version = _render(rule.extra["package.version"], get)
    if not name or not version:
        return False
    if rule.once and not first_time(st, f"k\x1f{name}"):
        return False
    out.package(name, version, offset, sub=declare_sub(rule, get, offset, st, out))
    return True


def _subrun(
    rule: CompiledRule, get: Getter, offset: int, stamp: Stamp, st: dict, out: Emitter
) -> bool:
    return declare_sub(rule, get, offset, st, out) is not None


EMIT: dict[str, Callable[[CompiledRule, Getter, int, Stamp, dict, Emitter], bool]] = {
    "param": _param,
    "status": _status,
    "fact": _fact,
    "dataset": _dataset,
    "artifact": _artifact,
    "package": _package,
    "subrun": _subrun,
}


# -- runners: what the hot path calls with a match --------------------------------------------

# A line starting like an xgboost/LightGBM round ("[12]\t"), a bare number ("12 ", "12:\t")
# or a Keras bar ("23/23 ") cannot start with a timestamp or level prefix (see the formats in
# loglake.parse.timestamps), so the hot path need not try them.
NO_PREFIX = re.compile(r"\[\d+\]|\d+(?:[^\d\-/:]|:\t|/\d+\s|$)").match
# A line starting with a capital is only a prefixed one when it is a glog stamp ("I1127 …")
# or names a logging level somewhere ("INFO …", "trainer INFO …").
_LEVEL_WORD = re.compile(
    getattr(timestamps, "_LEVELS", "DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL|NOTICE|TRACE")
).search


def stampless(raw: str) -> bool:
    """Whether ``raw`` cannot start with a timestamp: it does not start with a digit, a
    ``[`` or a glog level letter followed by a digit (``I1127``), or it starts like a round
    or a bar (``NO_PREFIX``). Digit-blind: the same for every line of one shape."""
    return not (raw[:1].isdigit() or raw[:1] == "[" or raw[1:2].isdigit()) or bool(NO_PREFIX(raw))


def line_ts(raw: str) -> float | None:
    """The timestamp printed at the start of a line (``leading_timestamp``), quickly."""
    return None if stampless(raw) else leading_timestamp(raw)[0]


def prefixed(raw: str) -> bool:
    """Whether ``raw`` may carry a log prefix (``strip_log_prefix`` is tried on it).

    Digit-blind: the same for every line of one shape (the tests read a digit as any digit).
    """
    if not raw:
        return False
    c = raw[0]
    if c.isdigit() or c == "[":
        return not NO_PREFIX(raw)
    return c.isupper() and ((c in "DIWECF" and raw[1:2].isdigit()) or bool(_LEVEL_WORD(raw)))


def log_message(raw: str) -> str:
    """``strip_log_prefix(raw)``, without trying on lines that cannot carry a prefix."""
    return strip_log_prefix(raw) if prefixed(raw) else raw


def runner(rule: CompiledRule, *, share_context: bool = True) -> Runner | None:
    """The function that turns one match of ``rule`` into records; None for context/skip.

    ``share_context=False`` reads a metric's step/epoch template again instead of taking
    the context the match has just set (the same value; kept to test that it is).
    """
    if rule.kind == "metric":
        return _metric_runner(rule, share_context)
    emit = EMIT.get(rule.kind)
    if emit is None:
        return None
    finditer, pairs_in = rule.pairs, rule.pairs_in

    def run(
        m: Any,
        text: str,
        raw: str,
        offset: int,
        ts: float | None,
        st: dict,
        out: Emitter,
        rows: MetricRows,
    ) -> bool:
        stamp = Stamp(ts, raw)
        if finditer is None:
            return emit(rule, getter(m, None, text), offset, stamp, st, out)
        segment = m.group(pairs_in) if pairs_in else text[m.end() :]
        emitted = False
        for pm in finditer(segment or ""):
            emitted |= emit(rule, getter(m, pm, text), offset, stamp, st, out)
        return emitted

    return run


_NONE, _CONTEXT, _TEMPLATE = 0, 1, 2
_PAIRS, _MAIN, _ACCESS = 0, 1, 2


def _source(tpl: Template, main: frozenset[str], pairs: frozenset[str]) -> tuple[int, Any]:
    """How the runner reads a template: one group of the pairs match or of the rule's match
    (a direct ``group()`` call, the common ``"{key}"``), else through its bound function."""
    name = tpl.single
    if name is not None and name in pairs:
        return _PAIRS, name
    if name is not None and name != LINE and name in main:
        return _MAIN, int(name) if name.isdigit() else name
    return _ACCESS, tpl.bind(main, pairs)


def _position(
    pos: Position, main: frozenset[str], pairs: frozenset[str], set_context: bool
) -> tuple[int, Any, bool]:
    """(how, access, per pair): a step/epoch from nowhere, the context, or a template.

    A template read from the rule's own match (not a pair's) of a ``set_context`` rule is
    the context itself by the time the runner reads it: the parser has just moved the
    context with that very template (``context_setters``), leaving it as it was when the
    template gives nothing, which is also where the runner falls back to.
    """
    if pos == "none":
        return _NONE, None, False
    if pos == "context" or not isinstance(pos, Template):
        return _CONTEXT, None, False
    if set_context and not pos.uses(pairs):
        return _CONTEXT, None, False
    return _TEMPLATE, pos.bind(main, pairs), pos.uses(pairs)


def _metric_runner(rule: CompiledRule, share_context: bool = True) -> Runner:
    main, pairs = rule.main_groups, rule.pairs_groups
    finditer, pairs_in, once = rule.pairs, rule.pairs_in, rule.once
    items = [
        (*_source(value, main, pairs), *_source(key, main, pairs), value.single in rule.numeric)
        for key, value in rule.items
    ]
    shared = rule.set_context and share_context
    step_how, step_get, step_pp = _position(rule.step, main, pairs, shared)
    epoch_how, epoch_get, epoch_pp = _position(rule.epoch, main, pairs, shared)
    sub_t = rule.sub
    sub_get = sub_t.bind(main, pairs) if sub_t is not None else None
    name_t, exp_t = rule.sub_name, rule.extra["experiment"]
    name_get = name_t.bind(main, pairs) if name_t is not None else None
    exp_get = exp_t.bind(main, pairs) if exp_t is not None else None
    per_pair = step_pp or epoch_pp or (sub_t is not None and sub_t.uses(pairs))

    def declare(m: Any, pm: Any, text: str, offset: int, st: dict, out: Emitter) -> str | None:
        sub = sub_get(m, pm, text)  # type: ignore[misc]
        if sub and first_time(st, f"sub\x1f{sub}"):
            out.subrun(
                sub,
                offset,
                name=name_get(m, pm, text) if name_get else None,
                experiment=exp_get(m, pm, text) if exp_get else None,
            )
        return sub or None

    def run(
        m: Any,
        text: str,
        raw: str,
        offset: int,
        ts: float | None,
        st: dict,
        out: Emitter,
        rows: MetricRows,
    ) -> bool:
        ctx = st["ctx"]
        if finditer is None:
            pms: Any = (None,)
        else:
            segment = m.group(pairs_in) if pairs_in else text[m.end() :]
            pms = finditer(segment or "")
        ts_pending = ts is None
        emitted = fresh = False
        step = epoch = sub = None
        head = tail = ""
        seen = st["seen"]
        add_sub, add_key, add_value, add_step, add_epoch, add_ts, add_offset = rows.appends
        for pm in pms:
            if not fresh or per_pair:
                fresh = True
                if step_how == _TEMPLATE:
                    got = step_get(m, pm, text)
                    step = to_step(got) if got is not None else None
                    if step is None:
                        step = ctx["step"]
                else:
                    step = ctx["step"] if step_how == _CONTEXT else None
                if epoch_how == _TEMPLATE:
                    got = epoch_get(m, pm, text)
                    epoch = to_epoch(got) if got is not None else None
                    if epoch is None:
                        epoch = ctx["epoch"]
                else:
                    epoch = ctx["epoch"] if epoch_how == _CONTEXT else None
                sub = declare(m, pm, text, offset, st, out) if sub_get is not None else None
                if once:  # the once= signature around the key: f"m␟{sub}␟{key}␟{step}␟{epoch}"
                    head, tail = f"m\x1f{sub}\x1f", f"\x1f{step}\x1f{epoch}"
            for value_how, value_src, key_how, key_src, numeric in items:
                if value_how == _PAIRS:
                    got = pm.group(value_src)
                elif value_how == _MAIN:
                    got = m.group(value_src)
                else:
                    got = value_src(m, pm, text)
                if got is None:
                    continue
                if key_how == _PAIRS:
                    key = pm.group(key_src)
                elif key_how == _MAIN:
                    key = m.group(key_src)
                else:
                    key = key_src(m, pm, text)
                if not key:
                    continue
                value = float(got) if numeric else to_number(got)
                if value is None:
                    continue
                if once:
                    sig = head + key + tail
                    if sig in seen:
                        continue
                    remember(seen, sig)
                if ts_pending:
                    ts, ts_pending = line_ts(raw), False
                add_sub(sub)
                add_key(key)
                add_value(value)
                add_step(step)
                add_epoch(epoch)
                add_ts(ts)
                add_offset(offset)
                emitted = True
        return emitted

    return run


def context_setters(rule: CompiledRule) -> tuple[tuple[str, Access, Any], ...]:
    """How a match of ``rule`` moves the step/epoch context: its step/epoch templates, read
    from the rule's own match."""
    setters = []
    for name, pos, conv in (("step", rule.step, to_step), ("epoch", rule.epoch, to_epoch)):
        if isinstance(pos, Template):
            setters.append((name, pos.bind(rule.main_groups), conv))
    return tuple(setters)
