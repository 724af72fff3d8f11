"""Listing a source URL: every wanted object under it, with its size, ETag and mtime.

A source path is a prefix (``s3://logs/team-a``) or a glob (``s3://logs/*/train/**.gz``).
The listing starts at the static part before the first glob character and filters the
keys, so one paginated listing covers the pattern. Hidden names (``.x``) are skipped like
local ones, and so is the lake itself when it lives under the same prefix.
"""

from __future__ import annotations

import fnmatch
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from loglake.errors import SourceError
from loglake.objstore.filesystem import call
from loglake.objstore.options import S3_PROTOCOLS, endpoint_of

if TYPE_CHECKING:
    import fsspec

_GLOB = set("*?[")


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    url: str  # full URL, e.g. s3://bucket/a/b.log
    size: int
    etag: str
    mtime: float  # seconds since the epoch (the store's clock)


def split_url(url: str) -> tuple[str, str]:
    """``("s3", "bucket/key…")`` without a trailing slash."""
    parsed = urlparse(url)
    return parsed.scheme, f"{parsed.netloc}{parsed.path}".rstrip("/")


def static_root(url: str) -> str:
    """The URL above the first glob part (``s3://b/logs/*/x.log`` → ``s3://b/logs``)."""
    protocol, path = split_url(url)
    parts = path.split("/")
    for i, part in enumerate(parts):
        if _GLOB & set(part):
            return f"{protocol}://{'/'.join(parts[:i])}"
    return f"{protocol}://{path}"


def object_mtime(info: dict[str, Any]) -> float:
    """An object's modification time from an fsspec ``info``/``ls`` entry, whatever the
    backend calls it (s3fs ``LastModified``, local ``mtime``, gcsfs ``updated``); 0 if none."""
    for name in ("mtime", "LastModified", "last_modified", "updated", "created"):
        value = info.get(name)
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value).timestamp()
            except ValueError:
                continue
    return 0.0


def wanted(rel: str, include: list[str], exclude: list[str]) -> bool:
    """The local rule: hidden parts are skipped; the name must match include, not exclude."""
    parts = rel.split("/")
    if any(p.startswith(".") for p in parts):
        return False
    name = parts[-1]
    if any(fnmatch.fnmatch(name, pat) for pat in exclude):
        return False
    return any(fnmatch.fnmatch(name, pat) for pat in include)


def list_objects(
    fs: fsspec.AbstractFileSystem,
    url: str,
    *,
    include: list[str],
    exclude: list[str],
    skip: tuple[str, ...] = (),
    storage_options: dict[str, Any] | None = None,
    stop: threading.Event | None = None,
    retry_for: float | None = None,
) -> list[ObjectInfo]:
    """Every wanted object under ``url`` (a prefix, an object or a glob), sorted by URL.

    ``skip`` holds URL prefixes never listed (the lake, the archive). A bucket that does
    not exist is a ``SourceError``; an empty prefix is an empty list.
    """
    protocol, _ = split_url(url)
    root = static_root(url)
    _, root_path = split_url(root)
    pattern = split_url(url)[1] if root != url.rstrip("/") else None
    extra = {} if retry_for is None else {"retry_for": retry_for}

    def find() -> dict[str, dict[str, Any]]:
        return fs.find(root_path, detail=True)  # type: ignore[no-any-return]

    try:
        found = call(find, url, storage_options, stop=stop, **extra)
    except FileNotFoundError as exc:
        endpoint = endpoint_of(storage_options) if protocol in S3_PROTOCOLS else None
        where = f" at {endpoint}" if endpoint else ""
        raise SourceError(
            f"{url}: the bucket does not exist{where}",
            fix="create it or fix the bucket name in sources.paths",
        ) from exc
    out: list[ObjectInfo] = []
    skip_paths = tuple(split_url(s)[1] + "/" for s in skip)
    for path, detail in found.items():
        if detail.get("type") == "directory":
            continue
        path = path.rstrip("/")
        if skip_paths and (path + "/").startswith(skip_paths):
            continue
        if pattern is not None and not fnmatch.fnmatchcase(path, pattern):
            continue
        rel = path[len(root_path) + 1 :] if path.startswith(root_path + "/") else path
        if not rel or not wanted(rel, include, exclude):
            continue
        etag = str(detail.get("ETag") or detail.get("etag") or detail.get("md5") or "")
        out.append(
            ObjectInfo(
                f"{protocol}://{path}",
                int(detail.get("size") or 0),
                etag.strip('"'),
                object_mtime(detail),
            )
        )
    out.sort(key=lambda o: o.url)
    return out
