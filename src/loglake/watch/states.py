"""Checkpoint entries without the parser states that say nothing: smaller, and lossless.

Every parser chosen for a file keeps a state in the file's entry, with its health counters
(lines seen, errors). Most of them never match a line of a given file (the framework
parsers on another framework's log), so their state stays what ``new_state()`` gave and
their health counts every line and nothing else: ~4 KB of JSON per entry, ~80 % of it, at
10,000 files megabytes to write. ``shrink`` leaves such states out and names them under
``"fresh"`` with their parser's version (and healths that are only a line count under
``"plain_health"``, ``true`` for all of them); ``expand`` puts back exactly what was there, so parsers resume as if
nothing had been dropped. A reader that does not expand (``loglake index`` on the daemon's
state dir) gets fresh states for those parsers anyway, which is what they held.
"""

from __future__ import annotations

import json
from typing import Any

from loglake.parse.registry import Registry

HEALTH = "__health__"
FRESH = "fresh"
PLAIN_HEALTH = "plain_health"


def _plain(lines: Any) -> dict[str, Any]:
    """The health of a parser that saw ``lines`` lines and never failed."""
    return {"lines": lines, "errors": 0, "rows": 0, "capped": False, "off": False}


def _plain_names(entry: dict[str, Any]) -> list[str]:
    """The parsers whose health is only a line count (``True``: every parser of the file)."""
    plain = entry.get(PLAIN_HEALTH)
    if plain is True:
        return [str(n) for n in entry.get("parser_names") or ()]
    return [str(n) for n in plain or ()]


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


class StateShrinker:
    """Knows each parser's fresh state (cached per parser version)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._fresh: dict[tuple[str, str], str | None] = {}
        self._fresh_obj: dict[tuple[str, str], Any] = {}  # the same, as JSON gives it back

    def _fresh_json(self, name: str, version: str) -> str | None:
        """The JSON of ``name``'s fresh state; None when unknown or not always the same."""
        key = (name, version)
        if key not in self._fresh:
            entry = self.registry.entries.get(name)
            text = None
            if entry is not None and str(entry.parser.version) == version:
                try:
                    first = _json(entry.parser.new_state())
                    text = first if _json(entry.parser.new_state()) == first else None
                except (TypeError, ValueError):
                    text = None
            self._fresh[key] = text
            self._fresh_obj[key] = None if text is None else json.loads(text)
        return self._fresh[key]

    def _is_fresh(self, name: str, version: str, state: Any) -> bool:
        if self._fresh_json(name, version) is None:
            return False
        key = (name, version)
        # ``==`` first, cheap and mostly decisive; then the JSON text, since ``==`` takes
        # ``1`` for ``True`` and ``1.0``, which JSON keeps apart.
        return bool(state == self._fresh_obj[key]) and _json(state) == self._fresh[key]

    def shrink(self, entry: dict[str, Any]) -> dict[str, Any]:
        """``entry`` without fresh states and plain healths (a new dict; ``entry`` is not
        changed: its states may be a parser's live objects)."""
        states = entry.get("parsers")
        if not isinstance(states, dict) or not states:
            return entry
        lines = entry.get("lines")
        health = states.get(HEALTH)
        health = dict(health) if isinstance(health, dict) else {}
        fresh = dict(entry.get(FRESH) or {})
        plain = set(_plain_names(entry))
        kept: dict[str, Any] = {}
        for name, saved in states.items():
            if name == HEALTH:
                continue
            version = saved.get("__version__") if isinstance(saved, dict) else None
            h = health.get(name)
            if (
                isinstance(version, str)
                and (h is None or h == _plain(lines))
                and self._is_fresh(name, version, saved.get("state"))
            ):
                fresh[name] = version
                if h is not None:
                    plain.add(name)
                    del health[name]
                continue
            kept[name] = saved
            if h is not None and h == _plain(lines):
                plain.add(name)
                del health[name]
        if health:
            kept[HEALTH] = health
        out = {k: v for k, v in entry.items() if k not in ("parsers", FRESH, PLAIN_HEALTH)}
        out["parsers"] = kept
        if fresh:
            out[FRESH] = fresh
        if plain:
            everyone = plain == set(entry.get("parser_names") or ()) and not health
            out[PLAIN_HEALTH] = True if everyone else sorted(plain)
        return out

    def expand(self, entry: dict[str, Any]) -> dict[str, Any]:
        """The entry ``shrink`` was given (changed in place: a fresh copy is expected)."""
        plain = _plain_names(entry)
        fresh = entry.pop(FRESH, None) or {}
        entry.pop(PLAIN_HEALTH, None)
        if not fresh and not plain:
            return entry
        states = entry.get("parsers")
        if not isinstance(states, dict):
            states = entry["parsers"] = {}
        health = states.get(HEALTH)
        if not isinstance(health, dict):
            health = states[HEALTH] = {}
        lines = entry.get("lines")
        for name in plain:
            health[name] = _plain(lines)
        for name, version in fresh.items():
            text = self._fresh_json(name, str(version))
            if text is None:
                # That parser is gone or was upgraded: it would start afresh from its saved
                # state too (a state of another version is not trusted).
                health.pop(name, None)
                continue
            states[name] = {"__version__": version, "state": json.loads(text)}
        if not health:
            del states[HEALTH]
        return entry
