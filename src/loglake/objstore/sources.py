"""Which object-store URLs to list, with the source settings that apply to each.

A URL given on the command line takes the settings of the configured source whose path is
a prefix of it (its template, chunks, parsers, storage options), like a local file inside
a source folder; otherwise the command-line defaults.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from loglake.config import Config, SourceConfig
from loglake.errors import SourceError
from loglake.objstore import is_object_url
from loglake.objstore.chunks import Stream, group
from loglake.objstore.listing import list_objects, static_root
from loglake.objstore.options import merged
from loglake.objstore.staging import Stager


@dataclass(frozen=True)
class RemoteTarget:
    url: str  # as given: a prefix, an object or a glob
    root: str  # templates and chunk names are relative to this
    source: SourceConfig

    def options(self, config: Config) -> dict[str, Any]:
        return merged(config.storage_options, self.source.storage_options)


def remote_targets(args: list[str], config: Config) -> list[RemoteTarget]:
    """The object-store URLs among ``args`` (or in the configured sources when none)."""
    default = SourceConfig(name="command-line", paths=[], template=None)
    out: list[RemoteTarget] = []
    if not args:
        for src in config.sources:
            out.extend(RemoteTarget(p, static_root(p), src) for p in src.paths if is_object_url(p))
        return out
    for arg in args:
        if not is_object_url(arg):
            continue
        best: tuple[int, SourceConfig, str] | None = None
        for src in config.sources:
            for p in src.paths:
                root = static_root(p).rstrip("/")
                inside = arg == root or arg.startswith(root + "/")
                if is_object_url(p) and inside and (best is None or len(root) > best[0]):
                    best = (len(root), src, root)
        if best is not None:
            out.append(RemoteTarget(arg, best[2], best[1]))
        else:
            out.append(RemoteTarget(arg, static_root(arg), default))
    return out


def skip_prefixes(config: Config) -> tuple[str, ...]:
    """The lake never counts as a log source, even under a listed prefix."""
    return (config.lake.rstrip("/"),) if is_object_url(config.lake) else ()


def list_streams(
    target: RemoteTarget,
    config: Config,
    stager: Stager,
    *,
    stop: threading.Event | None = None,
    retry_for: float | None = None,
) -> list[Stream]:
    """The logical logs under one target (raises ``SourceError`` with the URL and a fix)."""
    options = target.options(config)
    fs = stager.fetcher(target.url, options).fs
    objects = list_objects(
        fs,
        target.url,
        include=target.source.include,
        exclude=target.source.exclude,
        skip=skip_prefixes(config),
        storage_options=options,
        stop=stop,
        retry_for=stager.retry_for if retry_for is None else retry_for,
    )
    root = target.root
    if any(o.url == root for o in objects):
        root = root.rsplit("/", 1)[0]  # one named object: its folder, as for a local file
    return group(objects, root, target.source.chunks)


def no_match(target: RemoteTarget) -> SourceError:
    return SourceError(f"{target.url}: no object matches", fix="check the URL or the pattern")
