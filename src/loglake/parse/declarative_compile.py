"""Turning a validated parser spec into what runs: patterns, templates, prefilters.

Semantic mistakes the schema cannot see (a bad regex, a template naming a group the pattern
does not define) are raised here as ParserLoadError naming the file, the rule and the fix.
Trusted (built-in) patterns compile with stdlib ``re``; team patterns with ``regex``, and
every search they run carries ``timeout=``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from re import _constants as sre_constants  # type: ignore[attr-defined]
from re import _parser as sre_parser  # type: ignore[attr-defined]
from typing import Any

import regex

from loglake.errors import ParserLoadError
from loglake.parse.declarative_scan import Gate, literal_gate
from loglake.parse.declarative_spec import RuleSpec, SectionSpec, TableSpec
from loglake.parse.declarative_template import LINE, Template
from loglake.parse.values import NUMBER

MACROS = {"{NUMBER}": f"(?:{NUMBER})", "{INT}": r"\d+"}
_NUMERIC_GROUP = re.compile(r"\(\?P<(\w+)>\{NUMBER\}\)")


def expand_macros(source: str) -> str:
    for macro, pattern in MACROS.items():
        source = source.replace(macro, pattern)
    return source


def compile_pattern(source: str, *, trusted: bool, where: str) -> Any:
    """Compile with stdlib ``re`` (trusted built-ins) or ``regex`` (team files, timeouts)."""
    expanded = expand_macros(source)
    engine: Any = re if trusted else regex
    try:
        return engine.compile(expanded)
    except (re.error, regex.error) as e:
        pos = getattr(e, "pos", None)
        at = f" at position {pos}" if pos is not None else ""
        note = " (counted after {NUMBER}/{INT} expansion)" if expanded != source and at else ""
        raise ParserLoadError(
            f"{where}: bad regex {source!r}: {getattr(e, 'msg', e)}{at}{note}",
            fix="fix the pattern (TOML 'single quotes' keep backslashes as written)",
        ) from None


def required_literal(source: str) -> str | None:
    """The longest literal every match must contain (``'train-'``), when it is easy to see.

    Used as a cheap ``in`` prefilter before the regex runs; ``None`` when the pattern has no
    obvious required text (alternations, case-insensitive flags, regex-package syntax).
    """
    try:
        parsed = sre_parser.parse(expand_macros(source))
    except Exception:  # noqa: BLE001 - regex-package syntax: no prefilter, still correct
        return None
    if parsed.state.flags & re.IGNORECASE:
        return None
    best = ""
    run: list[str] = []

    def flush() -> None:
        nonlocal best
        text = "".join(run)
        if len(text) > len(best):
            best = text
        run.clear()

    def walk(items: Any) -> None:
        for op, arg in items:
            if op is sre_constants.LITERAL:
                run.append(chr(arg))
            elif op is sre_constants.SUBPATTERN and not (arg[1] & re.IGNORECASE):
                walk(arg[3])
            else:
                flush()

    walk(parsed)
    flush()
    return best if len(best) >= 2 else None


def numeric_groups(source: str) -> set[str]:
    """Groups written exactly ``(?P<name>{NUMBER})``: their text always parses with float()."""
    return set(_NUMERIC_GROUP.findall(source))


Position = Template | str  # a template, "context" or "none"


@dataclass(slots=True)
class CompiledRule:
    label: str
    kind: str
    search: Callable[..., Any]
    alts: tuple[str, ...] | None
    section: str | None
    pairs: Callable[..., Any] | None
    pairs_in: str | None
    items: list[tuple[Template, Template]]
    step: Position
    epoch: Position
    sub: Template | None
    sub_name: Template | None
    once: bool
    stop: bool
    set_context: bool
    clear: tuple[str, ...]
    marks_framework: bool
    status: str | None
    extra: dict[str, Template | None]  # reason, error, fact, value, dataset.*, artifact.* …
    redraws: bool = False
    main_groups: frozenset[str] = frozenset()  # names and numbers of match's groups
    pairs_groups: frozenset[str] = frozenset()  # named groups of pairs (looked up first)
    numeric: frozenset[str] = frozenset()  # groups written (?P<g>{NUMBER}): float() reads them
    gate: Gate | None = None  # the alts as a line test


@dataclass(slots=True)
class CompiledSection:
    name: str
    start: Callable[..., Any]
    alts: tuple[str, ...] | None
    end: Callable[..., Any] | None
    max_lines: int
    bind: str | None = None
    end_alts: tuple[str, ...] | None = None


@dataclass(slots=True)
class CompiledTable:
    name: str
    header: Callable[..., Any]
    alts: tuple[str, ...] | None
    columns: re.Pattern[str]
    cells: re.Pattern[str]
    step: str | None
    epoch: str | None
    skip: frozenset[str]
    key: Template
    max_gap: int


_OUTPUT_FIELDS = {
    "dataset": ("name", "path", "split", "rows", "cols", "fingerprint"),
    "artifact": ("path", "kind"),
    "package": ("name", "version"),
}


class Compiler:
    """Compiles one file's patterns and templates; ``where`` prefixes every error."""

    def __init__(self, where: str, *, trusted: bool, timeout: float) -> None:
        self.where = where
        self.trusted = trusted
        self.timeout = timeout

    def pattern(self, source: str, where: str, *, finditer: bool = False) -> Callable[..., Any]:
        compiled = compile_pattern(source, trusted=self.trusted, where=f"{self.where}: {where}")
        method = compiled.finditer if finditer else compiled.search
        if self.trusted:
            return method
        return functools.partial(method, timeout=self.timeout)

    def groups(self, source: str, *, numbers: bool = True) -> set[str]:
        compiled = compile_pattern(source, trusted=self.trusted, where=self.where)
        named = set(compiled.groupindex)
        return named | {str(i) for i in range(1, compiled.groups + 1)} if numbers else named

    @staticmethod
    def alts(contains: list[str] | None, pattern: str) -> tuple[str, ...] | None:
        if contains:
            return tuple(contains)
        lit = required_literal(pattern)
        return (lit,) if lit else None

    def template(self, source: str, where: str, attr: str, known: set[str]) -> Template:
        try:
            tpl = Template(source)
        except ValueError as e:
            raise ParserLoadError(
                f"{self.where}: {where}: {attr}= {e}", fix=f"fix {attr}="
            ) from None
        for field in tpl.fields:
            if field not in known and field != LINE:
                named = sorted(k for k in known if not k.isdigit())
                raise ParserLoadError(
                    f"{self.where}: {where}: group {field!r} is used in {attr}= but not defined "
                    "in match",
                    fix=f"name a group (?P<{field}>...) or fix {attr}= "
                    f"(groups: {', '.join(named) or 'none'})",
                )
        return tpl

    def section(self, s: SectionSpec) -> CompiledSection:
        where = f"section {s.name!r}"
        return CompiledSection(
            name=s.name,
            start=self.pattern(s.start, f"{where}: start"),
            alts=self.alts(s.contains, s.start),
            end=self.pattern(s.end, f"{where}: end") if s.end else None,
            max_lines=s.max_lines,
            bind=s.bind,
            end_alts=self.alts(None, s.end) if s.end else (),
        )

    def table(self, t: TableSpec) -> CompiledTable:
        where = f"table {t.name!r}"
        for attr in ("columns", "cells"):
            compile_pattern(getattr(t, attr), trusted=True, where=f"{self.where}: {where}: {attr}")
        return CompiledTable(
            name=t.name,
            header=self.pattern(t.header, f"{where}: header"),
            alts=self.alts(t.contains, t.header),
            columns=re.compile(t.columns),
            cells=re.compile(t.cells),
            step=t.step,
            epoch=t.epoch,
            skip=frozenset(t.skip),
            key=self.template(t.key, where, "key", {"column"}),
            max_gap=t.max_gap,
        )

    def rule(self, index: int, r: RuleSpec) -> CompiledRule:
        label = f"rule {r.name!r}" if r.name else f"rule #{index + 1}"
        search = self.pattern(r.match, f"{label}: match")
        groups = self.groups(r.match)
        pairs = None
        known = set(groups)
        if r.pairs:
            pairs = self.pattern(r.pairs, f"{label}: pairs", finditer=True)
            known |= self.groups(r.pairs)
            if r.pairs_in and r.pairs_in not in groups:
                raise ParserLoadError(
                    f"{self.where}: {label}: pairs_in={r.pairs_in!r} is not a group of match",
                    fix=f"name a group (?P<{r.pairs_in}>...) in match or fix pairs_in=",
                )

        def tpl(source: str | None, attr: str) -> Template | None:
            return None if source is None else self.template(source, label, attr, known)

        def position(spec: str | None, attr: str) -> Position:
            if spec is None:
                return Template("{" + attr + "}") if attr in known else "context"
            if spec in ("context", "none"):
                return spec
            if spec.startswith("group:"):
                spec = "{" + spec.removeprefix("group:") + "}"
            return self.template(spec, label, attr, known)

        items: list[tuple[Template, Template]] = []
        if r.emit in ("metric", "param"):
            pairs_of = [(i.key, i.value) for i in r.items] or [(r.key or "", r.value or "")]
            items = [
                (self.template(k, label, "key", known), self.template(v, label, "value", known))
                for k, v in pairs_of
            ]
        extra = {
            "reason": tpl(r.reason, "reason"),
            "error": tpl(r.error, "error"),
            "fact": tpl(r.fact, "fact"),
            "value": tpl(r.value, "value"),
            "experiment": tpl(r.experiment, "experiment"),
        }
        fields = _OUTPUT_FIELDS.get(r.emit, ())
        given = getattr(r, r.emit) if fields else None
        for f in fields:
            source = getattr(given, f) if given is not None else None
            if source is None and f in known:
                source = "{" + f + "}"
            extra[f"{r.emit}.{f}"] = tpl(source, f"{r.emit}.{f}")
        if fields and r.emit != "dataset" and extra[f"{r.emit}.{fields[0]}"] is None:
            raise ParserLoadError(
                f"{self.where}: {label}: emit={r.emit!r} needs a {fields[0]}",
                fix=f"name a group (?P<{fields[0]}>...) or set it in [rule.{r.emit}]",
            )
        if r.emit == "subrun" and r.sub is None:
            raise ParserLoadError(
                f"{self.where}: {label}: emit='subrun' needs sub=", fix='add sub = "trial-{n}"'
            )
        alts = self.alts(r.contains, r.match)
        pairs_groups = frozenset(self.groups(r.pairs, numbers=False)) if r.pairs else frozenset()
        numeric = numeric_groups(r.pairs or "") | {
            g for g in numeric_groups(r.match) if g not in pairs_groups
        }
        return CompiledRule(
            label=label,
            kind=r.emit,
            search=search,
            alts=alts,
            section=r.section,
            pairs=pairs,
            pairs_in=r.pairs_in,
            items=items,
            step=position(r.step, "step"),
            epoch=position(r.epoch, "epoch"),
            sub=tpl(r.sub, "sub"),
            sub_name=tpl(r.sub_name, "sub_name"),
            once=r.once,
            stop=r.stop,
            set_context=r.set_context,
            clear=tuple(r.clear),
            marks_framework=(
                r.framework if r.framework is not None else r.emit not in ("context", "skip")
            ),
            status=r.status,
            extra=extra,
            redraws=r.redraws,
            main_groups=frozenset(groups),
            pairs_groups=pairs_groups,
            numeric=frozenset(numeric),
            gate=literal_gate(alts) if alts else None,
        )


def build_prefilter(holders: list[Any]) -> tuple[str, ...] | None:
    """Every literal a line must hold (one of) to interest the parser, if all holders have one.

    A literal that contains a shorter one is dropped: the shorter finds its lines too.
    """
    alts: set[str] = set()
    for holder in holders:
        if holder.alts is None:
            return None
        alts.update(holder.alts)
    kept = [a for a in alts if a and not any(b != a and b in a for b in alts)]
    return tuple(sorted(kept)) or None
