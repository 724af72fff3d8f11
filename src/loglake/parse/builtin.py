"""Built-in parsers, offered through the same entry point door as team plugins.

``pyproject.toml`` registers ``builtin = "loglake.parse.builtin:builtin_parsers"`` in the
``loglake.parsers`` group, exactly as a team's package would register its own.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from importlib import resources
from pathlib import Path

from loglake.parse.base import Parser

log = logging.getLogger(__name__)


def builtin_parser_dir() -> Path:
    """Where the shipped declarative parsers live: inside the wheel, or ``parsers/`` in a checkout."""
    packaged = resources.files("loglake") / "builtin_parsers"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[3] / "parsers"


def builtin_python_parsers() -> list[Parser]:
    from loglake.parse import builtins

    found: list[Parser] = []
    for mod in sorted(pkgutil.iter_modules(builtins.__path__), key=lambda m: m.name):
        try:
            module = importlib.import_module(f"{builtins.__name__}.{mod.name}")
        except Exception as e:  # noqa: BLE001 - one broken module must not drop every built-in
            log.warning("built-in parser module %s failed to load: %s", mod.name, e)
            continue
        found.extend(getattr(module, "PARSERS", []))
    return found


def builtin_parsers() -> list[Parser]:
    """Every built-in parser: Python ones plus the declarative files shipped in the wheel."""
    from loglake.errors import ParserLoadError
    from loglake.parse.declarative import load_parser_file

    parsers = builtin_python_parsers()
    for path in sorted(builtin_parser_dir().glob("*.toml")):
        try:
            parsers.append(load_parser_file(path, trusted=True))
        except ParserLoadError as e:
            log.warning("built-in parser %s failed to load: %s", path.name, e.one_line())
    return parsers
