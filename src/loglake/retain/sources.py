"""Looking at a raw log where the indexer found it: a local path or an object-store URL.

Retention needs three things of a source: is it still there and the same file (its first
bytes hash to the fingerprint the lake knows it by), how big and how old is it (expiry is
counted from its mtime, as cluster log cleaners do), and its text.

A chunked object-store stream (Fluent Bit's or Vector's S3 output: many ``.gz`` objects that
are one log, see ``objstore.chunks``) has a synthetic URL; its chunk map is read from the
object-store state the indexer keeps (``<state>/objstore.json``). It is there while every
chunk object is; its size is its decompressed length, its mtime its newest chunk's, and its
text the chunks' texts in order.
"""

from __future__ import annotations

import gzip
import json
import os
import posixpath
import re
import zlib
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import urlparse

import pyarrow as pa

from loglake.config import Config
from loglake.errors import LoglakeError
from loglake.objstore.filesystem import describe, open_fs
from loglake.objstore.listing import object_mtime
from loglake.tail.fingerprint import fingerprint
from loglake.watch.identity import is_sibling
from loglake.watch.roots import SourceRoots


class SourceUnavailable(Exception):
    """The place a source lives cannot be looked at now (a mount away, a storage outage):
    its files must not look deleted."""


class SourceReadError(LoglakeError):
    """A source that was there could not be read to its end (an outage, a permission)."""


CHUNK = 1 << 20
_ZSTD_DAMAGE = re.compile(r"(?i)zstd|compressed stream|corrupt")
GZIP_STEP = 1 << 12  # compressed bytes inflated at a time: damage costs no more text
MAGIC_GZIP = b"\x1f\x8b"
MAGIC_ZSTD = b"\x28\xb5\x2f\xfd"
OBJSTORE_STATE = "objstore.json"  # objstore.state.FILE: chunk maps of remote streams


class ShortSource(LoglakeError):
    """A source shorter than the bytes to archive (truncated meanwhile)."""


@dataclass(frozen=True, slots=True)
class Seen:
    """A source as it is now: where, how big, last modified (epoch seconds)."""

    path: str
    size: int
    mtime: float


def _is_url(path: str) -> bool:
    scheme = urlparse(path).scheme
    return "://" in path and scheme not in ("", "file")


class SourceAccess:
    """Stat, identify and open sources; URL sources use the options of the source they
    belong to (or the lake's)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.roots = SourceRoots(config)
        self._fs: dict[str, Any] = {}
        # Stores that failed in this run: every other object there is unavailable at once,
        # instead of one timeout per object.
        self._down: dict[str, BaseException] = {}
        self._streams: dict[str, list[dict[str, Any]]] | None = None
        #: what could not be decompressed, per source path (the text before it is archived)
        self.problems: dict[str, str] = {}
        self._current = ""

    def _chunks(self, url: str) -> list[dict[str, Any]] | None:
        """The chunk map of a chunked stream, None for anything else."""
        if self._streams is None:
            self._streams = {}
            try:
                doc = json.loads((self.config.state_path() / OBJSTORE_STATE).read_text())
                streams = doc.get("streams") if isinstance(doc, dict) else None
            except (OSError, ValueError):
                streams = None
            for key, entry in (streams or {}).items():
                if isinstance(entry, dict) and isinstance(entry.get("chunks"), list):
                    self._streams[key] = entry["chunks"]
        return self._streams.get(url)

    def _options(self, url: str) -> dict[str, Any]:
        options: dict[str, Any] = dict(self.config.storage_options or {})
        for src in self.config.sources:
            if any(url.startswith(p.split("*", 1)[0]) for p in src.paths):
                options = {**options, **(src.storage_options or {})}
                break
        return options

    def _fs_key(self, url: str) -> str:
        return f"{urlparse(url).scheme}:{sorted(self._options(url).items())!r}"

    def _filesystem(self, url: str) -> tuple[Any, str]:
        key = self._fs_key(url)
        if key in self._down:
            raise self._unavailable(url, self._down[key])
        if key not in self._fs:
            # One quick attempt per call (open_fs): an outage costs one timeout per store
            # and run, not one per object.
            self._fs[key] = open_fs(url, self._options(url))
        fs = self._fs[key]
        return fs, fs._strip_protocol(url)

    def _unavailable(self, url: str, exc: BaseException) -> SourceUnavailable:
        self._down[self._fs_key(url)] = exc
        return SourceUnavailable(describe(url, exc, self._options(url)).one_line())

    def stat(self, path: str) -> Seen | None:
        if not _is_url(path):
            try:
                st = os.stat(path)
            except OSError:
                return None
            return Seen(path, st.st_size, st.st_mtime)
        chunks = self._chunks(path)
        if chunks is not None:
            mtimes = [self._info(c["url"]) for c in chunks]
            if not chunks or any(m is None for m in mtimes):
                return None
            size = sum(int(c["length"]) for c in chunks)
            return Seen(path, size, max(object_mtime(m) for m in mtimes if m is not None))
        info = self._info(path)
        return None if info is None else Seen(path, int(info.get("size") or 0), object_mtime(info))

    def _info(self, url: str) -> dict[str, Any] | None:
        fs, key = self._filesystem(url)
        try:
            fs.invalidate_cache(key)
            info: dict[str, Any] = fs.info(key)
        except FileNotFoundError:
            return None
        except Exception as exc:  # an outage, denied access: never "deleted"
            raise self._unavailable(url, exc) from exc
        return info

    def same_file(self, path: str, fp: str, fp_len: int) -> bool:
        """Whether ``path`` still starts with the bytes the source was identified by."""
        if fp_len <= 0 or self._chunks(path) is not None:
            return True  # a stream's chunks never change: its identity is its chunk map
        if not _is_url(path):
            try:
                return fingerprint(path, fp_len) == fp
            except OSError:
                return False
        try:
            with self.open(path) as fh:
                return fingerprint(fh, fp_len) == fp
        except FileNotFoundError:
            return False
        except Exception as exc:  # a blip between stat and read must not look like a new file
            raise self._unavailable(path, exc) from exc

    def find(self, path: str, fp: str, fp_len: int) -> Seen | None:
        """The source at ``path``, or renamed next to it (``train.log.1``); None if gone.

        Raises ``SourceUnavailable`` when its source folder or storage cannot be seen now.
        """
        if not _is_url(path) and not self.roots.available(path):
            raise SourceUnavailable(f"the source folder of {path} is not there (unmounted?)")
        seen = self.stat(path)
        if seen is not None and self.same_file(path, fp, fp_len):
            return seen
        if _is_url(path):
            return None
        folder, name = os.path.split(path)
        try:
            names = os.listdir(folder or ".")
        except OSError:
            return None
        for other in sorted(names):
            if is_sibling(other, name):
                candidate = os.path.join(folder, other)
                moved = self.stat(candidate)
                if moved is not None and self.same_file(candidate, fp, fp_len):
                    return moved
        return None

    def text(self, path: str, nbytes: int) -> Iterator[bytes]:
        """The log's first ``nbytes`` (a ``.gz``/``.zst`` log: all its text, decompressed).

        A corrupt or truncated compressed log gives the text before the damage (noted in
        ``problems``); a source that cannot be read raises ``SourceReadError``.
        """
        self._current = path
        try:
            yield from self._text(path, nbytes)
        except LoglakeError:
            raise
        except Exception as exc:  # OSError; botocore/aiohttp errors from a store
            detail = getattr(exc, "strerror", None) or str(exc).strip().splitlines()[0:1]
            raise SourceReadError(
                f"cannot read {path}: {detail if isinstance(detail, str) else ''.join(detail)}",
                fix="check that it is readable (permissions, the store's endpoint and "
                "credentials); it is archived on the next retention run",
            ) from exc

    def _text(self, path: str, nbytes: int) -> Iterator[bytes]:
        chunks = self._chunks(path)
        if chunks is not None:
            yield from self._stream_text(chunks, nbytes)
            return
        with self.open(path) as fh:
            head = fh.read(4)
            fh.seek(0)
            if head.startswith((MAGIC_GZIP, MAGIC_ZSTD)):
                # A compressed log is written once: archive all of it, as text.
                codec = "gzip" if head.startswith(MAGIC_GZIP) else "zstd"
                yield from self._tolerant(path, fh, codec)
                return
            left = nbytes
            while left > 0:
                chunk = fh.read(min(CHUNK, left))
                if not chunk:
                    raise ShortSource(
                        f"{path} is shorter than the {nbytes} bytes to archive (truncated "
                        "while being archived?)",
                        fix="nothing to do: it is archived again on the next retention run",
                    )
                left -= len(chunk)
                yield chunk

    def _stream_text(self, chunks: list[dict[str, Any]], nbytes: int) -> Iterator[bytes]:
        left = nbytes
        for c in chunks:
            if left <= 0:
                return
            with self.open(c["url"]) as fh:
                head = fh.read(4)
                fh.seek(0)
                codec = _codec(head)
                pieces = (
                    self._tolerant(c["url"], fh, codec)
                    if codec
                    else iter(lambda: fh.read(CHUNK), b"")
                )
                for piece in pieces:
                    yield piece[:left]
                    left -= len(piece)
                    if left <= 0:
                        return

    def _tolerant(self, name: str, fh: IO[bytes], codec: str) -> Iterator[bytes]:
        """Decompressed text up to any damage: the indexer kept that much of it too."""
        got = 0
        try:
            for piece in decompressed(fh, codec):
                got += len(piece)
                yield piece
        except (EOFError, zlib.error, gzip.BadGzipFile, pa.ArrowInvalid, OSError) as exc:
            if type(exc) is OSError and not _ZSTD_DAMAGE.search(str(exc)):
                raise  # a read that failed, not damaged data
            self.problems[self._current] = (
                f"{name}: {codec} data corrupt or truncated after {got} byte(s) of text ({exc}); "
                "the text before it was archived"
            )

    def open(self, path: str) -> AbstractContextManager[IO[bytes]]:
        if not _is_url(path):
            return open(path, "rb")
        fs, key = self._filesystem(path)
        return fs.open(key, "rb")


def display_name(path: str) -> str:
    return posixpath.basename(path.rstrip("/")) or path


def _codec(head: bytes) -> str | None:
    if head.startswith(MAGIC_GZIP):
        return "gzip"
    if head.startswith(MAGIC_ZSTD):
        return "zstd"
    return None


def decompressed(fh: IO[bytes], codec: str) -> Iterator[bytes]:
    """The text of a gzip (every member) or zstd stream, in pieces.

    gzip is inflated in small steps, so a stream damaged in its middle has yielded the text
    before the damage when the error is raised.
    """
    if codec == "gzip":
        yield from _gunzip(fh)
        return
    stream = pa.CompressedInputStream(pa.PythonFile(fh, mode="r"), "zstd")
    with stream:
        while True:
            piece = stream.read(CHUNK)
            if not piece:
                return
            yield bytes(piece)


def _gunzip(fh: IO[bytes]) -> Iterator[bytes]:
    inflate = zlib.decompressobj(zlib.MAX_WBITS | 16)
    in_member = False
    while block := fh.read(GZIP_STEP):
        data = block
        while data:
            if not in_member:
                data = data.lstrip(b"\0")  # padding between or after members
                if not data:
                    break
                in_member = True
            out = inflate.decompress(data)
            if out:
                yield out
            if inflate.eof:
                data = inflate.unused_data
                inflate = zlib.decompressobj(zlib.MAX_WBITS | 16)
                in_member = False
            else:
                data = b""
    if in_member:
        raise EOFError("compressed file ended before the end-of-stream marker was reached")
