"""Chunked shipping layouts: many objects that are one stream, put back in order.

Log shippers do not append to objects (S3 cannot); they upload a stream as a series of
objects: Fluent Bit's S3 output as ``<prefix>/<tag>/2026/01/01/12/00/<name>-object000001.gz``,
Vector's as ``<prefix>/date=2026-01-01/1700000000-<uuid>.log.gz``, Logstash's with a UUID
and a part number. Each such series is one logical stream (one log file, one checkpoint),
made of its objects' decompressed bytes in key order, which these layouts make time order.

A source's ``chunks`` setting says which objects belong together:

- ``"auto"`` (the default): an object is a chunk when its key has a time partition
  (``2026/01/01/12``, ``date=2026-01-01``, ``hour=12``…) or its name carries a chunk
  marker (``-object…``, a UUID, a leading epoch timestamp, an ISO timestamp); its stream is
  the key with those parts removed. Keys with none of them are plain files, so
  ``rank0.log`` and ``rank1.log`` stay two logs.
- ``"none"``: every object is its own log.
- a regex with a ``(?P<stream>…)`` group, matched against the key relative to the source
  path: objects with the same ``stream`` text are one stream, named ``<source path>/<stream>``;
  keys that do not match are plain files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from loglake.objstore.listing import ObjectInfo

AUTO = "auto"
NONE = "none"

_COMPRESSED = (".gz", ".zst", ".zstd")
# A run of path parts that is a date: 2026/01/01[/12[/00[/00]]].
_DATE_DIRS = re.compile(r"(?:^|/)((?:19|20)\d\d)(?:/\d{1,2}){1,5}(?=/|$)")
_PARTITION = re.compile(
    r"^(?:date|dt|ds|day|year|month|hour|minute|time|timestamp)=[^/]*$", re.IGNORECASE
)
_ISO_DIR = re.compile(r"^\d{4}-\d{2}-\d{2}(?:[T_ -]?\d{2}(?:[:-]?\d{2}){0,2}Z?)?$")
_NAME_MARKERS = (
    re.compile(r"[-_.]?object[0-9A-Za-z]+", re.IGNORECASE),  # Fluent Bit
    re.compile(
        r"[-_.]?[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE
    ),
    re.compile(r"^\d{10,13}(?=[-_.]|$)"),  # epoch seconds or ms (Vector)
    re.compile(r"[-_.]?\d{4}-?\d{2}-?\d{2}[T_-]\d{2}[:-]?\d{2}(?:[:-]?\d{2})?(?:\.\d+)?Z?"),
    re.compile(r"[-_.]part[-_]?\d+", re.IGNORECASE),  # Logstash
)


@dataclass
class Stream:
    """One logical log: a plain object, or the ordered chunks of a shipped stream."""

    path: str  # the URL rows are attributed to (a chunked stream's name is synthetic)
    root: str  # the source path it was listed under (templates are relative to it)
    objects: list[ObjectInfo] = field(default_factory=list)
    chunked: bool = False

    @property
    def mtime(self) -> float:
        return max((o.mtime for o in self.objects), default=0.0)


def natural_key(text: str) -> tuple[object, ...]:
    """``object9`` before ``object10``; everything else in plain string order."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text))


def _strip_compression(name: str) -> str:
    for ext in _COMPRESSED:
        if name.endswith(ext) and len(name) > len(ext):
            return name[: -len(ext)]
    return name


def auto_stream(rel: str) -> str | None:
    """The stream a key belongs to by the common shipper layouts; None for a plain file."""
    parts = rel.split("/")
    name, dirs = parts[-1], "/".join(parts[:-1])
    changed = False
    stripped = _DATE_DIRS.sub("", dirs)
    if stripped != dirs:
        changed = True
    kept = []
    for part in stripped.split("/"):
        if part and (_PARTITION.match(part) or _ISO_DIR.match(part)):
            changed = True
        elif part:
            kept.append(part)
    stem = _strip_compression(name)
    for marker in _NAME_MARKERS:
        new = marker.sub("", stem)
        if new != stem:
            changed, stem = True, new
    if not changed:
        return None
    stem = stem.strip("-_ ")
    if stem.startswith("."):
        stem = "stream" + stem
    return "/".join([*kept, stem or "stream.log"])


def group(objects: list[ObjectInfo], root: str, chunks: str | None) -> list[Stream]:
    """Objects listed under ``root`` as logical logs, chunks in key order."""
    mode = (chunks or AUTO).strip()
    pattern = None if mode in (AUTO, NONE) else re.compile(mode)
    base = root.rstrip("/")
    plain: dict[str, Stream] = {}
    chunked: dict[str, Stream] = {}
    for obj in objects:
        rel = obj.url[len(base) + 1 :] if obj.url.startswith(base + "/") else obj.url
        name: str | None = None
        if mode == AUTO:
            name = auto_stream(rel)
        elif pattern is not None:
            m = pattern.fullmatch(rel) or pattern.search(rel)
            name = m.group("stream") if m and m.groupdict().get("stream") else None
        if name is None:
            plain[obj.url] = Stream(obj.url, root, [obj])
        else:
            path = f"{base}/{name}"
            chunked.setdefault(path, Stream(path, root, [], chunked=True)).objects.append(obj)
    for s in chunked.values():
        s.objects.sort(key=lambda o: natural_key(o.url))
        if s.path in plain:  # a plain object at that very name: keep the two apart
            s.path += "#chunks"
    return sorted([*plain.values(), *chunked.values()], key=lambda s: s.path)
