"""Expanding ``loglake index`` arguments (files, folders, globs) into files and their source.

A source path may be a glob (``/var/log/pods/team-a_*``, ``/shared/*/slurm-*.out``,
``/logs/**``): it covers what the glob matches and everything inside matched folders, and its
template is relative to the folder above the first glob part (the *static root*), so one
pattern gives the same run identities here and in ``loglake watch``, which watches that root
and filters events with the same ``SourcePath``.
"""

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


def _is_glob(part: str) -> bool:
    return bool(_GLOB_CHARS & set(part))


def static_root(pattern: str) -> str:
    """The folder above a path's first glob part (``/logs/*/train`` → ``/logs``)."""
    parts = os.path.abspath(pattern).split(os.sep)
    for i, part in enumerate(parts):
        if _is_glob(part):
            return os.sep.join(parts[:i]) or os.sep
    return os.sep.join(parts)


def _part_matches(pattern: str, name: str) -> bool:
    """One path segment against one glob segment, as ``glob`` matches: wildcards never match
    a hidden name unless the pattern itself starts with a dot."""
    if not _is_glob(pattern):
        return pattern == name
    if name.startswith(".") and not pattern.startswith("."):
        return False
    return fnmatch.fnmatchcase(name, pattern)


@dataclass(frozen=True)
class SourcePath:
    """One local source path: its static root and the glob segments below it (none for a
    plain folder or file). Matching is by text, so a folder deleted since still counts."""

    given: str  # as configured
    root: str
    parts: tuple[str, ...]

    @classmethod
    def parse(cls, path: str) -> SourcePath:
        pattern = os.path.abspath(os.path.expanduser(path.removeprefix("file://")))
        root = static_root(pattern)
        rest = pattern[len(root) :].strip(os.sep)
        return cls(path, root, tuple(p for p in rest.split(os.sep) if p))

    @property
    def is_glob(self) -> bool:
        return bool(self.parts)

    def root_for(self, path: str) -> str:
        """The folder ``path``'s template is relative to: the static root, or the folder of
        a file the source names by itself."""
        return os.path.dirname(path) if path == self.root and not self.parts else self.root

    def _below(self, path: str) -> list[str] | None:
        """``path``'s segments below the root, None when it is not under the root."""
        if path == self.root:
            return []
        prefix = self.root.rstrip(os.sep) + os.sep
        return path[len(prefix) :].split(os.sep) if path.startswith(prefix) else None

    def _closure(self, states: set[int]) -> set[int]:
        """``**`` also matches no segment at all."""
        out, todo = set(states), list(states)
        while todo:
            j = todo.pop()
            if j < len(self.parts) and self.parts[j] == "**" and j + 1 not in out:
                out.add(j + 1)
                todo.append(j + 1)
        return out

    def _step(self, states: set[int], seg: str) -> set[int]:
        nxt: set[int] = set()
        for j in states:
            if j == len(self.parts):
                continue
            part = self.parts[j]
            if part == "**":
                if not seg.startswith("."):
                    nxt.add(j)
            elif _part_matches(part, seg):
                nxt.add(j + 1)
        return self._closure(nxt)

    def holds(self, path: str) -> bool:
        """Whether ``path`` (absolute) is matched by this source path or lies inside a
        folder it matches (hidden names inside a matched folder excepted, as the walk
        skips them)."""
        segs = self._below(path)
        if segs is None:
            return False
        end = len(self.parts)
        states = self._closure({0})
        for i, seg in enumerate(segs):
            if end in states and not any(s.startswith(".") for s in segs[i:]):
                return True
            states = self._step(states, seg)
            if not states:
                return False
        return end in states

    def may_lead_to(self, path: str) -> bool:
        """Whether a folder at ``path`` is on the way to a match (``/pods`` for
        ``/pods/team-a_*/x``) or inside one: a new one may hold files this source follows."""
        segs = self._below(path)
        if segs is None:
            return False
        states = self._closure({0})
        for seg in segs:
            if len(self.parts) in states:
                return self.holds(path)
            states = self._step(states, seg)
            if not states:
                return False
        return True


def source_paths(config: Config) -> list[tuple[SourcePath, SourceConfig]]:
    """Every local source path, longest static root first (a nested source wins), in
    config order among equal roots."""
    out = [
        (SourcePath.parse(p), src)
        for src in config.sources
        for p in src.paths
        if not is_object_url(p)
    ]
    return sorted(out, key=lambda item: -len(item[0].root))


def source_for(
    path: str, paths: list[tuple[SourcePath, SourceConfig]]
) -> tuple[SourcePath, SourceConfig] | None:
    """The source path covering ``path`` (absolute), from ``source_paths``."""
    for sp, src in paths:
        if sp.holds(path):
            return sp, src
    return None


def _wanted(name: str, src: SourceConfig) -> bool:
    if any(fnmatch.fnmatch(name, pat) for pat in src.exclude):
        return False
    return any(fnmatch.fnmatch(name, pat) for pat in src.include)


def _under(path: str, folders: set[str]) -> bool:
    while True:
        if path in folders:
            return True
        parent = os.path.dirname(path)
        if parent == path:
            return False
        path = parent


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


def _glob(pattern: str, skip: set[str]) -> list[str]:
    """What ``pattern`` matches, minus anything inside a matched folder (walked anyway:
    ``/logs/**`` would otherwise list every file once per folder above it)."""
    out: list[str] = []
    folders: set[str] = set()
    for m in sorted(glob.glob(pattern, recursive=True)):  # a folder sorts before its files
        m = os.path.abspath(m)
        if _under(m, folders) or _under(m, skip):
            continue
        out.append(m)
        if os.path.isdir(m):
            folders.add(m)
    return out


def _contested(sp: SourcePath, paths: list[tuple[SourcePath, SourceConfig]]) -> bool:
    """Whether another source path may claim files under ``sp`` (nested roots, or globs
    side by side in one folder): then each file's source is looked up on its own."""
    inside = sp.root.rstrip(os.sep) + os.sep
    return any(
        other is not sp and (other.root == sp.root or other.root.startswith(inside))
        for other, _ in paths
    )


def discover(args: list[str], config: Config) -> tuple[list[Found], list[Missing]]:
    """Local files to index. With no arguments, every configured source path.

    A file takes the source whose path covers it (the longest static root; the first in the
    config among equal ones), and that source's template root, whether it was found by listing the
    sources or named on the command line. Object-store URLs are skipped here:
    ``loglake.objstore`` lists and stages them.
    """
    default = SourceConfig(name="command-line", paths=[], template=None)
    skip = {os.path.abspath(config.lake)} if "://" not in config.lake else set()
    skip.add(os.path.abspath(str(config.state_path())))
    paths = source_paths(config)
    found: dict[str, Found] = {}
    missing: list[Missing] = []
    targets: list[tuple[str, SourcePath | None, SourceConfig | None]] = []
    if args:
        targets = [(a, None, None) for a in args]
    else:
        # Which source a file gets does not depend on the order they are listed in.
        targets = [(sp.given, sp, src) for sp, src in paths]

    for arg, sp, src_hint in targets:
        if is_object_url(arg):
            continue  # listed by loglake.objstore (see objstore.sources.remote_targets)
        expanded = os.path.abspath(os.path.expanduser(arg.removeprefix("file://")))
        named = not _is_glob(expanded)
        if named:
            matches = [expanded]
        else:
            matches = _glob(expanded, skip)
            if not matches:
                missing.append(Missing(arg, f"{arg}: no file matches this pattern"))
        contested = sp is not None and _contested(sp, paths)
        for p in matches:
            if os.path.isdir(p):
                files, check = _walk(p, skip), True
            elif os.path.isfile(p) or (named and os.path.exists(p)):
                # A file named by itself is taken as named; one a source's glob matched
                # passes include/exclude like the files of a matched folder.
                files, check = [p], not named and sp is not None
            else:
                if named:
                    missing.append(Missing(arg, _absent(p, configured=sp is not None)))
                continue
            for f in files:
                if f in found:
                    continue
                if sp is not None and src_hint is not None and not contested:
                    src, root = src_hint, sp.root_for(f)
                else:
                    hit = source_for(f, paths)
                    if hit is not None:
                        src, root = hit[1], hit[0].root_for(f)
                    elif sp is not None and src_hint is not None:
                        src, root = src_hint, sp.root_for(f)
                    else:
                        src, root = default, p if os.path.isdir(p) else os.path.dirname(f)
                if check and not _wanted(os.path.basename(f), src):
                    continue
                found[f] = Found(f, root, src)
    return list(found.values()), missing


def _absent(p: str, *, configured: bool) -> str:
    if configured:
        return f"{p}: source folder does not exist — create it or set sources.paths in the config"
    return f"{p}: no such file or directory"
