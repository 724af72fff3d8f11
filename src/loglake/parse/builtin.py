"""Built-in parsers, offered through the same entry point door as team plugins.

``pyproject.toml`` registers ``builtin = "loglake.parse.builtin:builtin_parsers"`` in the
``loglake.parsers`` group, exactly as a team's package would register its own.
"""

from __future__ import annotations

import importlib
import pkgutil
from importlib import resources
from pathlib import Path

from loglake.parse.base import Parser


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
        module = importlib.import_module(f"{builtins.__name__}.{mod.name}")
        found.extend(getattr(module, "PARSERS", []))
    return found


def builtin_parsers() -> list[Parser]:
    """Every built-in parser: Python ones plus the declarative files shipped in the wheel."""
    from loglake.parse.declarative import load_parser_dir

    return [*builtin_python_parsers(), *load_parser_dir(builtin_parser_dir(), trusted=True)]
