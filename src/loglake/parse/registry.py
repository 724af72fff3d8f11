"""Finding parsers (entry points, parser directories) and choosing them per file.

Names are registered, modules imported lazily, failures turned into a fix (fsspec's registry):
a parser a route names but cannot load is a startup error; one nobody routes to is a warning.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path

from loglake.errors import ParserLoadError
from loglake.parse.base import FileInfo, Parser

log = logging.getLogger(__name__)

GROUP = "loglake.parsers"


@dataclass
class ParserEntry:
    parser: Parser
    origin: str  # "builtin", "entry point <name> (<dist>)", or a file path


@dataclass
class Registry:
    entries: dict[str, ParserEntry] = field(default_factory=dict)
    broken: dict[str, str] = field(default_factory=dict)  # origin -> error

    def add(self, parser: Parser, origin: str) -> None:
        name = getattr(parser, "name", None)
        for attr in ("name", "version", "priority", "detect", "parse", "new_state", "finalize"):
            if not hasattr(parser, attr):
                raise ParserLoadError(
                    f"{origin}: parser {name or parser!r} has no {attr!r}",
                    fix="implement the loglake.Parser protocol (subclass loglake.BaseParser)",
                )
        if name in self.entries and self.entries[name].origin != origin:
            log.warning(
                "parser %r from %s replaces the one from %s", name, origin, self.entries[name].origin
            )
        self.entries[name] = ParserEntry(parser, origin)

    def names(self) -> list[str]:
        return sorted(self.entries)

    def get(self, name: str) -> Parser:
        try:
            return self.entries[name].parser
        except KeyError:
            hint = f" ({'; '.join(self.broken.values())})" if self.broken else ""
            raise ParserLoadError(
                f"parser {name!r} is not installed{hint}",
                fix=f"known parsers: {', '.join(self.names()) or 'none'}; "
                "see `loglake parsers list`",
            ) from None

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
                except Exception as e:  # a broken detect() must not stop the batch
                    log.warning("parser %s: detect() failed on %s: %s", name, info.path, e)
        return sorted(chosen.values(), key=lambda p: (p.priority, p.name))


def _as_parsers(obj: object) -> list[Parser]:
    if callable(obj) and not hasattr(obj, "parse"):
        obj = obj()
    if isinstance(obj, type):
        obj = obj()
    if isinstance(obj, list | tuple):
        return [p() if isinstance(p, type) else p for p in obj]
    return [obj]  # type: ignore[list-item]


def _load_python_file(path: Path) -> list[Parser]:
    mod_name = f"loglake_team_parser_{abs(hash(str(path)))}"
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise ParserLoadError(f"{path}: cannot import", fix="check the file is a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    spec.loader.exec_module(module)
    parsers = getattr(module, "PARSERS", None)
    if parsers is None:
        raise ParserLoadError(
            f"{path}: defines no PARSERS", fix="add `PARSERS = [MyParser()]` at module level"
        )
    return _as_parsers(parsers)


def load_registry(
    dirs: Iterable[str | Path] = (),
    *,
    disable: Iterable[str] = (),
    regex_timeout: float = 0.05,
    routed: Iterable[str] = (),
) -> Registry:
    """Load every parser: entry points (built-ins included), then team parser directories."""
    from loglake.parse.declarative import load_parser_file

    reg = Registry()
    for ep in entry_points(group=GROUP):
        dist = getattr(ep.dist, "name", "?") if ep.dist else "?"
        origin = "builtin" if ep.value.startswith("loglake.") else f"entry point {ep.name} ({dist})"
        try:
            for p in _as_parsers(ep.load()):
                reg.add(p, origin)
        except Exception as e:  # noqa: BLE001 - any plugin failure becomes a message
            reg.broken[origin] = f"{origin}: {type(e).__name__}: {e}"
    for d in dirs:
        path = Path(d).expanduser()
        if not path.is_dir():
            reg.broken[str(path)] = f"{path}: parser directory does not exist"
            continue
        for f in sorted(path.iterdir()):
            try:
                if f.suffix == ".toml":
                    try:
                        p = load_parser_file(f, trusted=False, regex_timeout=regex_timeout)
                    except TypeError:
                        p = load_parser_file(f, trusted=False)
                    reg.add(p, str(f))
                elif f.suffix == ".py" and not f.name.startswith("_"):
                    for p in _load_python_file(f):
                        reg.add(p, str(f))
            except ParserLoadError as e:
                reg.broken[str(f)] = e.one_line()
            except Exception as e:  # noqa: BLE001
                reg.broken[str(f)] = f"{f}: {type(e).__name__}: {e}"
    if not reg.entries and not reg.broken:
        # Not installed as a distribution (e.g. run from a source tree): load built-ins directly.
        from loglake.parse.builtin import builtin_parsers

        for p in builtin_parsers():
            reg.add(p, "builtin")
    for name in disable:
        reg.entries.pop(name, None)
    wanted = set(routed)
    for origin, err in reg.broken.items():
        if any(name in origin for name in wanted):
            raise ParserLoadError(err, fix="fix the parser or remove it from the route")
        log.warning("parser not loaded (no route uses it): %s", err)
    missing = [n for n in wanted if n not in reg.entries]
    if missing:
        reg.get(missing[0])
    return reg
