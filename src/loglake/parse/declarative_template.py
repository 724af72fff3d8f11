"""Templates of declarative rules: ``"{split}_{key|snake}"`` filled from a regex match.

A template is parsed once; ``bind`` then turns it into a plain function of the match objects
with every group lookup resolved ahead of time (which pattern holds the group, its index), so
the hot path renders a key with one or two ``group()`` calls and no dictionaries.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import Any

from loglake.parse.values import normalize_key

LINE = "0"  # template field for the whole line
_TEMPLATE_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}|]*)((?:\|[a-z]+)*)\}")
_NON_WORD = re.compile(r"[^0-9a-z]+")


def _snake(text: str) -> str:
    return _NON_WORD.sub("_", text.strip().lower()).strip("_")


def _digits(text: str) -> str:
    return text.replace(",", "").replace("_", "").strip()


def _short_hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:10]


FILTERS: dict[str, Callable[[str], str]] = {
    "snake": _snake,
    "norm": normalize_key,
    "lower": str.lower,
    "strip": str.strip,
    "int": _digits,
    "hash": _short_hash,
}

Filters = tuple[Callable[[str], str], ...]
Part = str | tuple[str, Filters]
# (rule match, pairs match or None, the line) -> text, or None when a group did not take part
Access = Callable[[Any, Any, str], "str | None"]


def _line(m: Any, pm: Any, line: str) -> str:
    return line


def _none(m: Any, pm: Any, line: str) -> None:
    return None


def field_access(name: str, main: frozenset[str], pairs: frozenset[str]) -> Access:
    """Where a field's text comes from: the pairs match first, then the rule's match."""
    if name == LINE:
        return _line
    if name in pairs:
        return lambda m, pm, line: pm.group(name)
    if name in main:
        group: int | str = int(name) if name.isdigit() else name
        return lambda m, pm, line: m.group(group)
    return _none


class Template:
    """A compiled ``"{split}_{key|snake}"``; ``render`` gives None if a field's group is absent."""

    __slots__ = ("const", "fields", "parts", "single", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.parts: list[Part] = []
        self.fields: list[str] = []
        pos = 0
        for m in _TEMPLATE_TOKEN.finditer(source):
            if m.start() > pos:
                self.parts.append(source[pos : m.start()])
            pos = m.end()
            if m.group(0) in ("{{", "}}"):
                self.parts.append(m.group(0)[0])
                continue
            name = m.group(1).strip()
            if not name:
                raise ValueError(f"empty field '{{}}' in template {source!r}")
            names = [f for f in m.group(2).split("|") if f]
            bad = [f for f in names if f not in FILTERS]
            if bad:
                raise ValueError(
                    f"unknown filter |{bad[0]} in template {source!r}; "
                    f"filters: {', '.join(FILTERS)}"
                )
            self.parts.append((name, tuple(FILTERS[f] for f in names)))
            self.fields.append(name)
        if pos < len(source):
            self.parts.append(source[pos:])
        self.const = (
            "".join(p for p in self.parts if isinstance(p, str)) if not self.fields else None
        )
        only = self.parts[0] if len(self.parts) == 1 else None
        self.single = only[0] if isinstance(only, tuple) and not only[1] else None

    def render(self, get: Callable[[str], str | None]) -> str | None:
        if self.single is not None:
            return get(self.single)
        if self.const is not None:
            return self.const
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            text = get(part[0])
            if text is None:
                return None
            for f in part[1]:
                text = f(text)
            out.append(text)
        return "".join(out)

    def uses(self, names: frozenset[str]) -> bool:
        return any(f in names for f in self.fields)

    def bind(self, main: frozenset[str], pairs: frozenset[str] = frozenset()) -> Access:
        """This template as a function of (match, pairs match, line); see ``field_access``."""
        if self.const is not None:
            const = self.const
            return lambda m, pm, line: const
        bound: list[str | tuple[Access, Filters]] = [
            p if isinstance(p, str) else (field_access(p[0], main, pairs), p[1]) for p in self.parts
        ]
        fields = [p for p in self.parts if not isinstance(p, str)]
        if len(fields) > 1 and not any(f[1] for f in fields) and LINE not in self.fields:
            same = _one_source(self.fields, main, pairs)
            if same is not None:  # "{set}-{metric}": one group() call, one % format
                fmt = "".join(
                    p.replace("%", "%%") if isinstance(p, str) else "%s" for p in self.parts
                )
                return _formatted(fmt, tuple(self.fields), from_pairs=same)
        first = bound[0]
        if len(bound) == 1 and not isinstance(first, str):
            get, filters = first
            if not filters:
                return get

            def filtered(m: Any, pm: Any, line: str) -> str | None:
                text = get(m, pm, line)
                if text is None:
                    return None
                for f in filters:
                    text = f(text)
                return text

            return filtered

        def joined(m: Any, pm: Any, line: str) -> str | None:
            out: list[str] = []
            for part in bound:
                if isinstance(part, str):
                    out.append(part)
                    continue
                text = part[0](m, pm, line)
                if text is None:
                    return None
                for f in part[1]:
                    text = f(text)
                out.append(text)
            return "".join(out)

        return joined


def _one_source(names: list[str], main: frozenset[str], pairs: frozenset[str]) -> bool | None:
    """True when every field is a named group of the pairs match, False when every one is a
    named group of the rule's match only, None when they mix (or are numbered)."""
    if all(n in pairs for n in names):
        return True
    if all(n in main and n not in pairs and not n.isdigit() for n in names):
        return False
    return None


def _formatted(fmt: str, names: tuple[str, ...], *, from_pairs: bool) -> Access:
    def render(m: Any, pm: Any, line: str) -> str | None:
        texts = (pm if from_pairs else m).group(*names)
        return None if None in texts else fmt % texts

    return render
