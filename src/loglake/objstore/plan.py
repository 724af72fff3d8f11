"""Remote logs with something new, as tasks for the batch indexer's ``index_file``.

The same decisions as for a local file (``index.runner.plan``): identity by fingerprint, a
checkpoint at the same size is unchanged, a log idle past ``job_end_timeout`` is finished.
The difference is only where the bytes come from: each task reads a staged local copy.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from loglake.config import Config, parse_duration
from loglake.errors import SourceError
from loglake.index.job import FileTask
from loglake.objstore.chunks import Stream
from loglake.objstore.sources import RemoteTarget, list_streams, no_match, remote_targets
from loglake.objstore.staging import RemoteIdentity, Stager
from loglake.parse.registry import route_file
from loglake.runs.identity import RunIdentity, resolve

logger = logging.getLogger(__name__)


@dataclass
class RemoteLog:
    """A listed remote log and what it resolves to."""

    stream: Stream
    target: RemoteTarget
    ident: RemoteIdentity
    identity: RunIdentity


def unchanged(cp: dict[str, Any] | None, size: int, idle: bool) -> bool:
    return bool(cp) and cp.get("size") == size and bool(cp.get("idle_final") or not idle)  # type: ignore[union-attr]


def shrunk(cp: dict[str, Any] | None, ident: RemoteIdentity, url: str) -> str | None:
    """Why a log must not be read now: its object is shorter than what was already read.

    An object is never truncated in place, only replaced; one that comes back shorter with
    the same first bytes is almost always an older copy uploaded again (a sync race, a
    restored version). Reading it from the start would put its rows in the lake twice, so it
    is left alone, and reading goes on from the saved offset once the object is longer again.
    """
    if not cp or ident.compressed:
        return None  # a compressed object's offsets are in its text, not its bytes
    offset = int(cp.get("offset") or 0)
    if ident.size >= offset:
        return None
    return (
        f"{url}: the object shrank to {ident.size} bytes, below the {offset} already read; "
        "it is not read again (no row is doubled) — if it is a new log, give it a new key"
    )


def resolve_log(
    stream: Stream, target: RemoteTarget, ident: RemoteIdentity
) -> RemoteLog | SourceError:
    identity = resolve(
        stream.path,
        root=stream.root,
        template=target.source.template,
        namespace=target.source.namespace,
    )
    if identity is None:
        return SourceError(
            f"{stream.path}: does not match the source template {target.source.template!r}",
            fix="fix the template or exclude the object",
        )
    return RemoteLog(stream, target, ident, identity)


def make_task(
    config: Config,
    log: RemoteLog,
    stager: Stager,
    cp: dict[str, Any] | None,
    *,
    idle: bool,
    max_line: int,
    flush_records: int,
) -> FileTask:
    """Stage the bytes a read from ``cp`` needs and describe the read."""
    options = log.target.options(config)
    offset = int((cp or {}).get("offset") or 0)
    local = stager.stage(log.stream, log.ident, offset, options)
    routed, auto = route_file(
        config, log.target.source, log.stream.path, log.stream.root, log.identity.namespace
    )
    return FileTask(
        path=log.stream.path,
        fp=log.ident.fp,
        fp_len=log.ident.fp_len,
        size=log.ident.size,
        mtime=log.stream.mtime,
        identity=log.identity,
        routed=routed,
        auto_detect=auto,
        checkpoint=cp,
        idle=idle,
        max_line=max_line,
        flush_records=flush_records,
        compressed=log.ident.compressed,
        source=local,
    )


def plan_remote(
    config: Config,
    args: list[str],
    checkpoints: dict[str, dict[str, Any]],
    stager: Stager,
    *,
    finished: bool,
    now: float,
    stop: threading.Event | None = None,
) -> tuple[list[FileTask], list[str], int]:
    """Tasks for remote logs with something new; failures (one line each); unchanged count."""
    timeout = parse_duration(config.index.job_end_timeout)
    tasks: list[FileTask] = []
    failures: list[str] = []
    unchanged_n = 0
    for target in remote_targets(args, config):
        try:
            streams = list_streams(target, config, stager, stop=stop)
        except SourceError as e:
            failures.append(e.one_line())
            continue
        if not streams and args:
            failures.append(no_match(target).one_line())
        for stream in streams:
            try:
                ident = stager.identify(stream, target.options(config))
                if ident is None:
                    continue  # empty: nothing to say yet
                log = resolve_log(stream, target, ident)
                if isinstance(log, SourceError):
                    failures.append(log.one_line())
                    continue
                cp = checkpoints.get(ident.fp)
                idle = finished or ident.compressed or now - stream.mtime >= timeout
                if unchanged(cp, ident.size, idle):
                    unchanged_n += 1
                    continue
                why = shrunk(cp, ident, stream.path)
                if why:
                    logger.warning("%s", why)
                    unchanged_n += 1
                    continue
                tasks.append(
                    make_task(
                        config,
                        log,
                        stager,
                        cp,
                        idle=idle,
                        max_line=config.index.max_line_bytes,
                        flush_records=config.index.flush_records,
                    )
                )
            except SourceError as e:
                failures.append(e.one_line())
            except FileNotFoundError:
                continue  # deleted since the listing: the next run will not list it
        stager.save()
    return tasks, failures, unchanged_n
