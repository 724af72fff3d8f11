"""From a listed log to a local file the tail pipeline can read: identity, then bytes.

``identify`` costs at most one small ranged read for a plain object (its first 1 KiB, only
when its ETag changed) and says whether it is the same log grown (an append: the first
bytes still hash to its fingerprint) or a new one. For a chunked stream it fetches and
decompresses only chunks it has not seen, extending the chunk map.

``stage`` then writes into ``<state_dir>/objstage/`` exactly the bytes a read from the saved
offset needs, at their own offsets. A compressed plain object is staged whole (offsets in
it are decompressed offsets); a chunked stream is staged decompressed, so its offsets are
offsets in the stream, and a new chunk is just more bytes at the end.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loglake.objstore.chunks import Stream
from loglake.objstore.filesystem import RETRY_FOR, open_fs
from loglake.objstore.reader import GZIP_MAGIC, ZSTD_MAGIC, Fetcher, decompress
from loglake.objstore.state import RemoteState
from loglake.tail.fingerprint import DEFAULT_FP_BYTES, TAIL_BYTES

log = logging.getLogger(__name__)

STAGE_DIR = "objstage"


def _digest(data: bytes) -> str:
    # The same hash as tail.fingerprint, so a log's fp does not depend on where it lives.
    return hashlib.blake2b(data, digest_size=16).hexdigest()


@dataclass(frozen=True, slots=True)
class RemoteIdentity:
    fp: str
    fp_len: int
    size: int  # what FileTask.size means: raw size, or the decompressed stream's for chunks
    compressed: bool  # a compressed plain object (offsets are decompressed offsets)


class Stager:
    """Identifies and stages remote logs for one run of the indexer or the daemon."""

    def __init__(
        self,
        state_dir: Path,
        stop: threading.Event | None = None,
        retry_for: float = RETRY_FOR,
    ) -> None:
        self.retry_for = retry_for
        self.state = RemoteState(state_dir)
        self.dir = Path(state_dir) / STAGE_DIR
        self.stop = stop
        self._fetchers: dict[str, Fetcher] = {}
        # Chunks whose bytes the staged file of a stream holds now (cleared on release).
        self._written: dict[str, set[str]] = {}

    def fetcher(self, url: str, storage_options: dict[str, Any] | None) -> Fetcher:
        """One filesystem per protocol and options (connections are reused)."""
        key = url.split("://", 1)[0] + json.dumps(
            storage_options or {}, sort_keys=True, default=str
        )
        f = self._fetchers.get(key)
        if f is None:
            f = self._fetchers[key] = Fetcher(
                open_fs(url, storage_options), storage_options, self.stop, self.retry_for
            )
        return f

    def local_path(self, stream: Stream) -> Path:
        return self.dir / hashlib.sha256(stream.path.encode()).hexdigest()[:24]

    # -- identity ---------------------------------------------------------------------------

    def identify(self, stream: Stream, options: dict[str, Any] | None) -> RemoteIdentity | None:
        """The log's identity now; None while it has no bytes."""
        if stream.chunked:
            return self._identify_chunks(stream, options)
        obj = stream.objects[0]
        if obj.size == 0:
            return None
        known = self.state.get(stream.path)
        if known and known.get("etag") == obj.etag and known.get("size") == obj.size:
            return RemoteIdentity(known["fp"], known["fp_len"], obj.size, known["compressed"])
        head = self.fetcher(obj.url, options).range(obj.url, 0, DEFAULT_FP_BYTES)
        if not head:
            return None
        compressed = head.startswith((GZIP_MAGIC, ZSTD_MAGIC))
        fp, fp_len = _digest(head), len(head)
        if known and not compressed:
            # Grown since (an append), identified when it was shorter: same first bytes.
            old_len = int(known.get("fp_len") or 0)
            if 0 < old_len <= len(head) and _digest(head[:old_len]) == known.get("fp"):
                fp, fp_len = known["fp"], old_len
        self.state.put(
            stream.path,
            {
                "fp": fp,
                "fp_len": fp_len,
                "etag": obj.etag,
                "size": obj.size,
                "compressed": compressed,
            },
        )
        return RemoteIdentity(fp, fp_len, obj.size, compressed)

    def _identify_chunks(
        self, stream: Stream, options: dict[str, Any] | None
    ) -> RemoteIdentity | None:
        known = self.state.get(stream.path) or {"chunks": []}
        chunks: list[dict[str, Any]] = list(known.get("chunks") or [])
        seen = {c["url"] for c in chunks}
        end = sum(int(c["length"]) for c in chunks)
        new = [o for o in stream.objects if o.url not in seen]
        if new:
            if chunks and any(o.url < chunks[-1]["url"] for o in new):
                log.info(
                    "%s: a chunk arrived late; it is read after the ones already read", stream.path
                )
            path = self.local_path(stream)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                for obj in new:
                    text, problem = decompress(
                        self.fetcher(obj.url, options).whole(obj.url), obj.url
                    )
                    if problem:
                        log.warning("%s: %s (the text before it is kept)", obj.url, problem)
                    os.pwrite(fd, text, end)
                    self._written.setdefault(stream.path, set()).add(obj.url)
                    chunks.append(
                        {
                            "url": obj.url,
                            "etag": obj.etag,
                            "size": obj.size,
                            "start": end,
                            "length": len(text),
                        }
                    )
                    end += len(text)
            finally:
                os.close(fd)
        if end == 0:
            return None
        fp, fp_len = known.get("fp"), int(known.get("fp_len") or 0)
        if not fp:
            # Fixed at first sight, like a short local file's: chunks never change, so the
            # first bytes it was taken from stay the same however long the stream grows.
            head = self._head(stream, chunks, options)
            fp, fp_len = _digest(head), len(head)
        if new or not known.get("fp"):
            self.state.put(stream.path, {"fp": fp, "fp_len": fp_len, "chunks": chunks})
        return RemoteIdentity(str(fp), fp_len, end, False)

    def _head(
        self, stream: Stream, chunks: list[dict[str, Any]], options: dict[str, Any] | None
    ) -> bytes:
        want = DEFAULT_FP_BYTES
        self._fill(stream, chunks, 0, min(want, sum(c["length"] for c in chunks)), options)
        with open(self.local_path(stream), "rb") as f:
            return f.read(want)

    # -- bytes ------------------------------------------------------------------------------------

    def stage(
        self, stream: Stream, ident: RemoteIdentity, offset: int, options: dict[str, Any] | None
    ) -> str:
        """A local file holding the log's bytes from ``offset`` (less the tail-hash bytes) on."""
        path = self.local_path(stream)
        path.parent.mkdir(parents=True, exist_ok=True)
        begin = 0 if ident.compressed or offset > ident.size else max(0, offset - TAIL_BYTES)
        if stream.chunked:
            chunks = (self.state.get(stream.path) or {}).get("chunks") or []
            self._fill(stream, chunks, begin, ident.size, options)
            return str(path)
        obj = stream.objects[0]
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.ftruncate(fd, begin)  # a sparse hole before the bytes read
            self.fetcher(obj.url, options).copy_range(obj.url, begin, ident.size, fd, begin)
        finally:
            os.close(fd)
        return str(path)

    def _fill(
        self,
        stream: Stream,
        chunks: list[dict[str, Any]],
        begin: int,
        end: int,
        options: dict[str, Any] | None,
    ) -> None:
        """Make sure the staged stream holds ``[begin, end)``: fetch the chunks it lacks."""
        written = self._written.setdefault(stream.path, set())
        fd = os.open(self.local_path(stream), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            for c in chunks:
                c_start, c_end = int(c["start"]), int(c["start"]) + int(c["length"])
                if c["url"] in written or c_end <= begin or c_start >= end:
                    continue
                text, _ = decompress(self.fetcher(c["url"], options).whole(c["url"]), c["url"])
                os.pwrite(fd, text[: int(c["length"])], c_start)
                written.add(c["url"])
        finally:
            os.close(fd)

    def release(self, stream: Stream) -> None:
        """Drop a stream's staged bytes once they are read (the next read stages afresh)."""
        try:
            self.local_path(stream).unlink()
        except FileNotFoundError:
            pass
        self._written.pop(stream.path, None)

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        self._written.clear()

    def save(self) -> None:
        self.state.save()
