"""What a matched declarative rule turns into: one emitter per record kind.

Also the other direction, records as plain dicts (``records_of``), which the embedded
``[[test]]`` blocks and ``loglake parsers test`` compare and print.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from loglake.parse.declarative_compile import LINE, CompiledRule, Position, Template
from loglake.parse.records import Emitter
from loglake.parse.values import to_int, to_number

SEEN_CAP = 20_000  # bound on the once/sub-run memory kept in the JSON state

Getter = Callable[[str], str | None]


def to_step(text: str) -> int | None:
    return to_int(text.replace(",", "").strip())


def to_epoch(text: str) -> float | None:
    return to_number(text.replace(",", ""))


class Stamp:
    """The line's time: the envelope's, else one printed at the line start, computed lazily."""

    __slots__ = ("done", "text", "ts")

    def __init__(self, ts: float | None, text: str) -> None:
        self.ts, self.text, self.done = ts, text, ts is not None

    def get(self) -> float | None:
        if not self.done:
            from loglake.parse.timestamps import leading_timestamp

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


def resolve(pos: Position, get: Getter, ctx: Any, conv: Callable[[str], Any]) -> Any:
    """A step/epoch: from the template, else the context (the last one seen)."""
    if pos == "none":
        return None
    if pos == "context":
        return ctx
    raw = pos.render(get)  # type: ignore[union-attr]
    value = conv(raw) if raw is not None else None
    return ctx if value is None else value


def _render(tpl: Template | None, get: Getter) -> str | None:
    return tpl.render(get) if tpl is not None else None


def first_time(st: dict[str, Any], sig: str) -> bool:
    """True the first time ``sig`` is seen in this file; the memory is bounded."""
    seen: dict[str, int] = st["seen"]
    if sig in seen:
        return False
    if len(seen) >= SEEN_CAP:
        for old in list(seen)[: SEEN_CAP // 2]:
            del seen[old]
    seen[sig] = 1
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


def _metric(
    rule: CompiledRule, get: Getter, offset: int, stamp: Stamp, st: dict, out: Emitter
) -> bool:
    ctx = st["ctx"]
    step = resolve(rule.step, get, ctx["step"], to_step)
    epoch = resolve(rule.epoch, get, ctx["epoch"], to_epoch)
    sub = declare_sub(rule, get, offset, st, out)
    emitted = False
    for key_t, value_t in rule.items:
        key = key_t.render(get)
        raw = value_t.render(get)
        value = to_number(raw) if raw is not None else None
        if not key or value is None:
            continue
        if rule.once and not first_time(st, f"m\x1f{sub}\x1f{key}\x1f{step}\x1f{epoch}"):
            continue
        out.metric(key, value, offset, step=step, epoch=epoch, ts=stamp.get(), sub=sub)
        emitted = True
    return emitted


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
    rows = to_step(f["rows"]) if f.get("rows") else None
    cols = to_step(f["cols"]) if f.get("cols") else None
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
    "metric": _metric,
    "param": _param,
    "status": _status,
    "fact": _fact,
    "dataset": _dataset,
    "artifact": _artifact,
    "package": _package,
    "subrun": _subrun,
}


# -- records as dicts --------------------------------------------------------------------------

_KIND_OF_TABLE = {
    "metrics": "metric",
    "params": "param",
    "statuses": "status",
    "facts": "fact",
    "datasets": "dataset",
    "artifacts": "artifact",
    "packages": "package",
    "subruns": "subrun",
    "errors": "error",
}


def records_of(out: Emitter, line_offsets: list[int] | None = None) -> list[dict[str, Any]]:
    """Everything an Emitter holds as ``{"kind": ..., field: value}`` dicts, in line order.

    ``line`` is the index of the record's line in ``line_offsets`` when given (else the byte
    offset); an artifact's own kind is ``artifact_kind``.
    """
    index = {o: i for i, o in enumerate(line_offsets or ())}
    recs: list[dict[str, Any]] = []
    for table, cols in out.tables().items():
        kind = _KIND_OF_TABLE[table]
        for row in range(len(cols)):
            rec: dict[str, Any] = {"kind": kind}
            for name in cols.names:
                value = cols.data[name][row]
                if name in ("parser", "ts") or (name == "sub" and value is None):
                    continue
                if name == "offset":
                    rec["line"] = index.get(value, value)
                elif name == "kind":
                    rec["artifact_kind"] = value
                else:
                    rec[name] = value
            recs.append(rec)
    recs.sort(key=lambda r: r["line"])
    return recs


def _same(want: Any, got: Any) -> bool:
    number = (int, float)
    both_numbers = isinstance(want, number) and isinstance(got, number)
    if both_numbers and (isinstance(want, float) or isinstance(got, float)):
        if math.isnan(want) and math.isnan(got):
            return True
        return math.isclose(want, got, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(want, str) and isinstance(got, number) and not isinstance(got, bool):
        return want == str(got)
    return bool(want == got)


def record_matches(want: dict[str, Any], got: dict[str, Any]) -> bool:
    """Whether an actual record has every field an expectation names, with the same value."""
    return want["kind"] == got["kind"] and all(
        _same(v, got.get(k)) for k, v in want.items() if k != "kind"
    )
