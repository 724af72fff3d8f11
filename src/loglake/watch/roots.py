"""Which configured source a path belongs to, and whether the daemon wants it.

Filesystem events name paths anywhere under the watched folders (the lake itself may live
there, and a glob source's static root holds other daemons' folders); this decides cheaply
which of them are worth a rescan, with the same rules the listing applies (the source paths
and their globs, include/exclude patterns, hidden names skipped: ``index.discover``).
"""

from __future__ import annotations

import fnmatch
import os

from loglake.config import Config, SourceConfig
from loglake.index.discover import source_for, source_paths


class SourceRoots:
    """The local source paths of every source, longest static root first (a nested
    source wins)."""

    def __init__(self, config: Config) -> None:
        self.paths = source_paths(config)
        skip = [os.path.abspath(str(config.state_path()))]
        if "://" not in config.lake:
            skip.append(os.path.abspath(os.path.expanduser(config.lake)))
        self.skip = tuple(s.rstrip(os.sep) + os.sep for s in skip)

    @property
    def roots(self) -> list[str]:
        """The folders to watch: each source path's static root, once."""
        return list(dict.fromkeys(sp.root for sp, _ in self.paths))

    def source_of(self, path: str) -> tuple[SourceConfig, str] | None:
        """The source whose path covers ``path``, and the folder its template is relative to."""
        hit = source_for(path, self.paths)
        return None if hit is None else (hit[1], hit[0].root_for(path))

    def _skipped(self, path: str) -> bool:
        return path.startswith(self.skip) or (path + os.sep).startswith(self.skip)

    def wanted(self, path: str, is_dir: bool = False) -> bool:
        """Whether a file (or a new folder) at ``path`` may hold logs the daemon follows."""
        path = os.path.abspath(path)
        if self._skipped(path):
            return False
        if is_dir:
            return any(sp.may_lead_to(path) for sp, _ in self.paths)
        hit = source_for(path, self.paths)
        if hit is None:
            return False
        sp, src = hit
        name = os.path.basename(path)
        if any(fnmatch.fnmatch(name, pat) for pat in src.exclude):
            return False
        if not sp.is_glob and path == sp.root:
            return True  # a file the source names by itself
        return any(fnmatch.fnmatch(name, pat) for pat in src.include)

    def available(self, path: str) -> bool:
        """Whether the source folder holding ``path`` can be listed now (an NFS mount that
        is away must not make its files look deleted)."""
        hit = source_for(path, self.paths)
        return True if hit is None else os.path.isdir(hit[0].root_for(path))
