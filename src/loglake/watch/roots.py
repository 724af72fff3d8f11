"""Which configured source a path belongs to, and whether the daemon wants it.

Filesystem events name paths anywhere under the watched folders (the lake itself may live
there); this decides cheaply which of them are worth a rescan, with the same rules the
listing applies (source folders, include/exclude patterns, hidden names skipped).
"""

from __future__ import annotations

import fnmatch
import os

from loglake.config import Config, SourceConfig


class SourceRoots:
    """The local folders of every source, longest first (a nested source wins)."""

    def __init__(self, config: Config) -> None:
        roots: list[tuple[str, SourceConfig]] = []
        for src in config.sources:
            for p in src.paths:
                if "://" in p and not p.startswith("file://"):
                    continue
                roots.append((static_root(os.path.expanduser(p.removeprefix("file://"))), src))
        self.roots = sorted(roots, key=lambda r: -len(r[0]))
        skip = [os.path.abspath(str(config.state_path()))]
        if "://" not in config.lake:
            skip.append(os.path.abspath(os.path.expanduser(config.lake)))
        self.skip = tuple(s.rstrip(os.sep) + os.sep for s in skip)

    def source_of(self, path: str) -> tuple[SourceConfig, str] | None:
        """The source whose folder holds ``path``, and that folder."""
        for root, src in self.roots:
            if path == root or path.startswith(root.rstrip(os.sep) + os.sep):
                return src, root
        return None

    def wanted(self, path: str, is_dir: bool = False) -> bool:
        """Whether a file (or a new folder) at ``path`` may hold logs the daemon follows."""
        path = os.path.abspath(path)
        if path.startswith(self.skip) or (path + os.sep).startswith(self.skip):
            return False
        hit = self.source_of(path)
        if hit is None:
            return False
        src, root = hit
        rel = os.path.relpath(path, root)
        if rel != "." and any(part.startswith(".") for part in rel.split(os.sep)):
            return False
        if is_dir:
            return True
        name = os.path.basename(path)
        if any(fnmatch.fnmatch(name, pat) for pat in src.exclude):
            return False
        return any(fnmatch.fnmatch(name, pat) for pat in src.include)

    def available(self, path: str) -> bool:
        """Whether the source folder holding ``path`` can be listed now (an NFS mount that
        is away must not make its files look deleted)."""
        hit = self.source_of(path)
        return True if hit is None else os.path.isdir(hit[1])


def static_root(pattern: str) -> str:
    """The folder above a source path's first glob part (``/logs/*/train`` → ``/logs``)."""
    parts = os.path.abspath(pattern).split(os.sep)
    for i, part in enumerate(parts):
        if any(c in part for c in "*?["):
            return os.sep.join(parts[:i]) or os.sep
    return os.sep.join(parts)
