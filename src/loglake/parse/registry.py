"""Finding parsers (entry points, parser directories) and choosing them per file.

Built-ins come through the same door as team plugins: the ``loglake.parsers`` entry-point
group (loglake's own ``pyproject.toml`` registers ``builtin``). A parser a route names but
cannot load is a startup error naming the file and the fix; a broken parser no route uses is
a warning, so one team's typo never stops everyone's indexing (fsspec's registry turns an
``ImportError`` into "install s3fs" the same way).
"""

from __future__ import annotations

import fnmatch
import importlib.util
import logging
import os
import re
import sys
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loglake.errors import ParserLoadError
from loglake.parse.base import FileInfo, Parser

if TYPE_CHECKING:
    from loglake.config import Config, SourceConfig

log = logging.getLogger(__name__)

GROUP = "loglake.parsers"
BUILTIN = "builtin"
_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")  # no '@' or ',': rows store "name@version" lists
_NAME_LINE = re.compile(r"""^\s*name\s*=\s*["']([^"'\n]+)["']""", re.MULTILINE)
_REQUIRED = ("name", "version", "priority", "detect", "parse", "new_state", "finalize")


@dataclass
class ParserEntry:
    parser: Parser
    origin: str  # "builtin", "plugin <dist> <version> (entry point <name>)", or a file path


@dataclass
class Broken:
    """A parser source that failed to load, and the names it was probably meant to provide."""

    origin: str
    error: str
    names: frozenset[str] = frozenset()  # empty: unknown (a whole plugin failed to import)


@dataclass
class Registry:
    entries: dict[str, ParserEntry] = field(default_factory=dict)
    broken: dict[str, str] = field(default_factory=dict)  # origin -> one-line error
    failed: list[Broken] = field(default_factory=list)

    def add(self, parser: Parser, origin: str) -> None:
        name = getattr(parser, "name", None)
        for attr in _REQUIRED:
            if not hasattr(parser, attr):
                raise ParserLoadError(
                    f"{origin}: parser {name or parser!r} has no {attr!r}",
                    fix="implement the loglake.Parser protocol (subclass loglake.BaseParser)",
                )
        if not isinstance(name, str) or not _NAME.match(name):
            raise ParserLoadError(
                f"{origin}: parser name {name!r} is not a plain name",
                fix="use letters, digits, '_', '-' or '.' (no '@', ',' or spaces)",
            )
        if not isinstance(parser.version, str) or not parser.version:
            raise ParserLoadError(
                f"{origin}: parser {name!r} has version {parser.version!r}",
                fix='make version a non-empty string, e.g. version = "2"',
            )
        if not isinstance(parser.priority, int):
            raise ParserLoadError(
                f"{origin}: parser {name!r} has priority {parser.priority!r}",
                fix="make priority an int: 10-60 for specific parsers, 90+ for fallbacks",
            )
        if name in self.entries and self.entries[name].origin != origin:
            log.warning(
                "parser %r from %s replaces the one from %s",
                name,
                origin,
                self.entries[name].origin,
            )
        self.entries[name] = ParserEntry(parser, origin)

    def fail(self, origin: str, error: str, names: Iterable[str] = ()) -> None:
        self.broken[origin] = error
        self.failed.append(Broken(origin, error, frozenset(names)))

    def names(self) -> list[str]:
        return sorted(self.entries)

    def get(self, name: str) -> Parser:
        try:
            return self.entries[name].parser
        except KeyError:
            why = [b.error for b in self.failed if name in b.names or not b.names]
            hint = f" ({'; '.join(why)})" if why else ""
            raise ParserLoadError(
                f"parser {name!r} is not installed{hint}",
                fix=f"known parsers: {', '.join(self.names()) or 'none'}; "
                "see `loglake parsers list`",
            ) from None

    def subset(self, names: Iterable[str]) -> Registry:
        """A registry holding only ``names`` (all must be present)."""
        sub = Registry()
        for n in names:
            sub.entries[n] = ParserEntry(self.get(n), self.entries[n].origin)
        return sub

    def select(
        self, info: FileInfo, routed: Iterable[str] = (), *, auto_detect: bool = True
    ) -> list[Parser]:
        """The parsers for one file, in run order: routed ones always, others if they detect it."""
        chosen: dict[str, Parser] = {n: self.get(n) for n in routed}
        if auto_detect:
            for name, entry in self.entries.items():
                if name in chosen:
                    continue
                try:
                    if entry.parser.detect(info):
                        chosen[name] = entry.parser
                except Exception as e:  # noqa: BLE001 - a broken detect() must not stop the batch
                    log.warning("parser %s: detect() failed on %s: %s", name, info.path, e)
        return sorted(chosen.values(), key=lambda p: (p.priority, p.name))


# -- routing ----------------------------------------------------------------------------------


def route_file(
    config: Config, source: SourceConfig, path: str, root: str, namespace: str | None
) -> tuple[tuple[str, ...], bool]:
    """The parsers routed to one file and whether auto-detection still applies to it.

    The source's own ``parsers`` plus every ``[[parsers.route]]`` whose conditions all hold;
    ``auto_detect`` is off if the source or any matching route turns it off.
    """
    names = list(source.parsers)
    auto = source.auto_detect
    rel = os.path.relpath(path, root) if root else path
    rel = rel.replace(os.sep, "/")
    for r in config.parsers.route:
        if r.source is not None and r.source != source.name:
            continue
        if r.namespace is not None and not fnmatch.fnmatchcase(namespace or "", r.namespace):
            continue
        if r.match and not any(_path_matches(path, rel, pat) for pat in r.match):
            continue
        names.extend(n for n in r.parsers if n not in names)
        auto = auto and r.auto_detect
    return tuple(names), auto


def _path_matches(path: str, rel: str, pattern: str) -> bool:
    # fnmatch's '*' crosses '/', so "team-a/**" and "team-a/*" both mean "anything under it".
    if pattern.startswith("/"):
        return fnmatch.fnmatchcase(path, pattern)
    return fnmatch.fnmatchcase(rel, pattern) or fnmatch.fnmatchcase(rel, f"*/{pattern}")


def routed_names(config: Config) -> set[str]:
    """Every parser name any source or route names (these must load, or startup fails)."""
    names = {n for s in config.sources for n in s.parsers}
    names.update(n for r in config.parsers.route for n in r.parsers)
    return names


def registry_for(config: Config) -> Registry:
    """The registry the config asks for, with its routes checked."""
    return load_registry(
        config.parsers.dirs,
        disable=config.parsers.disable,
        regex_timeout=config.parsers.regex_timeout,
        routed=routed_names(config),
    )


# -- loading ----------------------------------------------------------------------------------


def _as_parsers(obj: object) -> list[Parser]:
    if isinstance(obj, type) or (callable(obj) and not hasattr(obj, "parse")):
        obj = obj()  # a class, or a factory function returning parsers
    if isinstance(obj, list | tuple):
        return [p() if isinstance(p, type) else p for p in obj]
    return [obj]  # type: ignore[list-item]


def _load_python_file(path: Path) -> list[Parser]:
    mod_name = f"loglake_team_parser_{path.stem}_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise ParserLoadError(f"{path}: cannot import", fix="check the file is a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception:
        sys.modules.pop(mod_name, None)
        raise
    parsers = getattr(module, "PARSERS", None)
    if parsers is None:
        raise ParserLoadError(
            f"{path}: defines no PARSERS", fix="add `PARSERS = [MyParser()]` at module level"
        )
    return _as_parsers(parsers)


def intended_names(path: Path) -> set[str]:
    """Names a parser file that failed to load was probably meant to provide.

    A broken file's real names are unknowable, so take its stem and any ``name = "..."``
    it spells out (the TOML key, or a Python class attribute).
    """
    names = {path.stem}
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return names
    if path.suffix == ".toml":
        try:
            value = tomllib.loads(text).get("name")
            if isinstance(value, str):
                names.add(value)
        except tomllib.TOMLDecodeError:
            pass
    names.update(_NAME_LINE.findall(text))
    return names


def load_parser_path(path: str | Path, *, regex_timeout: float = 0.05) -> list[Parser]:
    """The parsers in one team file: a declarative ``*.toml`` or a ``*.py`` with ``PARSERS``."""
    from loglake.parse.declarative import load_parser_file

    f = Path(path)
    if f.suffix == ".toml":
        return [load_parser_file(f, trusted=False, regex_timeout=regex_timeout)]
    if f.suffix == ".py":
        return _load_python_file(f)
    raise ParserLoadError(f"{f}: not a parser file", fix="use a *.toml or *.py file")


def _load_entry_points(reg: Registry) -> bool:
    """Load every ``loglake.parsers`` entry point; True if loglake's own built-ins were among."""
    saw_builtin = False
    for ep in entry_points(group=GROUP):
        builtin = ep.value.startswith("loglake.")
        saw_builtin |= builtin
        if builtin:
            origin = BUILTIN
        else:
            dist = ep.dist
            label = f"{dist.name} {dist.version}" if dist is not None else "?"
            origin = f"plugin {label} (entry point {ep.name})"
        try:
            for p in _as_parsers(ep.load()):
                reg.add(p, origin)
        except Exception as e:  # noqa: BLE001 - any plugin failure becomes a message
            err = e.one_line() if isinstance(e, ParserLoadError) else f"{type(e).__name__}: {e}"
            names = () if builtin else {ep.name}
            reg.fail(origin, f"{origin}: {err}", names)
    return saw_builtin


def _load_dir(reg: Registry, path: Path, regex_timeout: float) -> None:
    if not path.is_dir():
        reg.fail(
            str(path), f"{path}: parser directory does not exist — create it or fix parsers.dirs"
        )
        return
    for f in sorted(path.iterdir()):
        if f.suffix not in (".toml", ".py") or f.name.startswith(("_", ".")):
            continue
        try:
            for p in load_parser_path(f, regex_timeout=regex_timeout):
                reg.add(p, str(f))
        except ParserLoadError as e:
            reg.fail(str(f), e.one_line(), intended_names(f))
        except Exception as e:  # noqa: BLE001
            reg.fail(str(f), f"{f}: {type(e).__name__}: {e}", intended_names(f))


def load_registry(
    dirs: Iterable[str | Path] = (),
    *,
    disable: Iterable[str] = (),
    regex_timeout: float = 0.05,
    routed: Iterable[str] = (),
) -> Registry:
    """Load every parser: entry points (built-ins included), then team parser directories.

    Raises ParserLoadError when a ``routed`` name is missing (its load error, if any, is the
    message); logs one warning per broken parser nobody routes to.
    """
    reg = Registry()
    if not _load_entry_points(reg):
        # Run from a source tree that was never installed: load the built-ins directly.
        from loglake.parse.builtin import builtin_parsers

        for p in builtin_parsers():
            reg.add(p, BUILTIN)
    for d in dirs:
        _load_dir(reg, Path(d).expanduser(), regex_timeout)
    disabled = set(disable)
    for name in disabled:
        reg.entries.pop(name, None)
    _check_routes(reg, set(routed), disabled)
    return reg


def _check_routes(reg: Registry, wanted: set[str], disabled: set[str]) -> None:
    off = sorted(wanted & disabled)
    if off:
        raise ParserLoadError(
            f"parser {off[0]!r} is routed to but listed in parsers.disable",
            fix="remove it from parsers.disable or from the routes and [[sources]] parsers",
        )
    missing = sorted(n for n in wanted if n not in reg.entries)
    for name in missing:
        culprit = next((b for b in reg.failed if name in b.names), None)
        if culprit is None:
            culprit = next((b for b in reg.failed if not b.names), None)
        if culprit is not None:
            raise ParserLoadError(
                f"parser {name!r} is routed to but cannot load: {culprit.error}",
                fix="fix the parser (check it with `loglake parsers test --embedded`) or "
                "remove it from the route",
            )
        reg.get(name)  # raises "not installed" with the known names
    for b in reg.failed:
        log.warning("parser not loaded (no route uses it): %s", b.error)


def embedded_test_failures(parsers: Iterable[Parser]) -> dict[str, list[Any]]:
    """Run every parser's embedded tests (``run_embedded_tests()``, when it has them).

    Keys are the parser names that carry tests; an empty list means all of them passed.
    """
    results: dict[str, list[Any]] = {}
    for p in parsers:
        run = getattr(p, "run_embedded_tests", None)
        if callable(run):
            results[p.name] = list(run())
    return results
