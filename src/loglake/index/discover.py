"""Expanding ``loglake index`` arguments (files, folders, globs) into files and their source."""

from __future__ import annotations

import fnmatch
import glob
import os
from dataclasses import dataclass

from loglake.config import Config, SourceConfig
from loglake.objstore import is_object_url

_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class Found:
    path: str  # absolute
    root: str  # the folder templates are relative to
    source: SourceConfig


@dataclass(frozen=True)
class Missing:
    arg: str
    message: str


def _source_for(path: str, config: Config, default: SourceConfig) -> tuple[SourceConfig, str]:
    """The configured source whose folder holds ``path`` (its template applies), else default."""
    best: tuple[int, SourceConfig, str] | None = None
    for src in config.sources:
        for p in src.paths:
            if is_object_url(p):
                continue
            root = os.path.abspath(os.path.expanduser(p))
            if path == root or path.startswith(root.rstrip(os.sep) + os.sep):
                if best is None or len(root) > best[0]:
                    best = (len(root), src, root)
    if best:
        return best[1], best[2]
    return default, os.path.dirname(path)


def _wanted(name: str, src: SourceConfig) -> bool:
    if any(fnmatch.fnmatch(name, pat) for pat in src.exclude):
        return False
    return any(fnmatch.fnmatch(name, pat) for pat in src.include)


def _walk(root: str, skip: set[str]) -> list[str]:
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(
            d for d in dirnames if not d.startswith(".") and os.path.join(dirpath, d) not in skip
        )
        for f in sorted(filenames):
            if not f.startswith("."):
                out.append(os.path.join(dirpath, f))
    return out


def discover(args: list[str], config: Config) -> tuple[list[Found], list[Missing]]:
    """Local files to index. With no arguments, every configured source folder.

    Object-store URLs are skipped here: ``loglake.objstore`` lists and stages them.
    """
    default = SourceConfig(name="command-line", paths=[], template=None)
    skip = {os.path.abspath(config.lake)} if "://" not in config.lake else set()
    skip.add(os.path.abspath(str(config.state_path())))
    found: dict[str, Found] = {}
    missing: list[Missing] = []
    targets: list[tuple[str, SourceConfig | None]] = []
    if args:
        targets = [(a, None) for a in args]
    else:
        for src in config.sources:
            targets.extend((p, src) for p in src.paths)

    for arg, src_hint in targets:
        if is_object_url(arg):
            continue  # listed by loglake.objstore (see objstore.sources.remote_targets)
        expanded = os.path.expanduser(arg.removeprefix("file://"))
        if _GLOB_CHARS & set(expanded):
            matches = sorted(glob.glob(expanded, recursive=True))
            if not matches:
                missing.append(Missing(arg, f"{arg}: no file matches this pattern"))
            paths = [os.path.abspath(m) for m in matches]
            named = False
        else:
            paths = [os.path.abspath(expanded)]
            named = True
        for p in paths:
            if os.path.isdir(p):
                src, root = (src_hint, p) if src_hint else _source_for(p, config, default)
                if src_hint is None and src is not default:
                    root = _source_for(p, config, default)[1]
                for f in _walk(p, skip):
                    if _wanted(os.path.basename(f), src):
                        found.setdefault(f, Found(f, root, src))
            elif os.path.isfile(p) or (named and os.path.exists(p)):
                src, root = (
                    (src_hint, os.path.dirname(p)) if src_hint else _source_for(p, config, default)
                )
                found.setdefault(p, Found(p, root, src))
            elif named:
                if src_hint is not None and not args:
                    missing.append(
                        Missing(
                            arg,
                            f"{p}: source folder does not exist — create it or set "
                            f"sources.paths in the config",
                        )
                    )
                else:
                    missing.append(Missing(arg, f"{p}: no such file or directory"))
    return list(found.values()), missing
