"""The checkpoint journal: what changed since the checkpoint file was last written whole.

At 10,000 followed files the checkpoint file is megabytes, and a flush changes a handful of
entries; rewriting it whole on every flush wrote ~50 MB each time. The daemon instead appends
the entries a flush changed to ``checkpoints.journal`` (one line per update, fsynced) and
folds the journal into the checkpoint file (temp + fsync + rename) when the journal has
grown as large as the file, at start and at a clean stop. The same scheme as a database's
write-ahead log; Vector's checkpointer keeps one file, but it holds only offsets.

A line is ``<crc32 hex> <json>\\n``, the JSON naming the generation of the checkpoint file it
applies to (``gen``, written into that file at each fold). Lines of another generation are
left over from before a fold (a crash between the rename and the journal's truncation) or
predate a rewrite by the batch indexer: they are ignored. A torn last line (a crash during
an append, before the update was acknowledged) is cut off; a bad line with good lines after
it is garbage: the journal is set aside and only the lines before it are applied, so the
checkpoints can only be older than they were (sources are re-read, never skipped).
"""

from __future__ import annotations

import json
import logging
import os
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from loglake.lake.checkpoint import JOURNAL_NAME, StateDirError
from loglake.lake.durable import fsync_dir

log = logging.getLogger(__name__)


def encode(gen: str, entries: dict[str, bytes | None]) -> bytes:
    """One journal line for ``entries`` (each as its JSON text, or None to forget it)."""
    parts = [
        json.dumps(key).encode() + b":" + (b"null" if text is None else text)
        for key, text in entries.items()
    ]
    payload = b'{"entries":{' + b",".join(parts) + b'},"gen":' + json.dumps(gen).encode() + b"}"
    return b"%08x %s\n" % (zlib.crc32(payload), payload)


def _decode(line: bytes) -> dict[str, Any] | None:
    crc, sep, payload = line.partition(b" ")
    if not sep or len(crc) != 8:
        return None
    try:
        if int(crc, 16) != zlib.crc32(payload):
            return None
        doc = json.loads(payload)
    except ValueError:
        return None
    ok = isinstance(doc, dict) and isinstance(doc.get("entries"), dict)
    return doc if ok else None


class Journal:
    """The append-only file next to the checkpoint file."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / JOURNAL_NAME
        self.size = 0  # bytes of valid lines (appends go after them)

    def replay(self, gen: str | None) -> Iterator[dict[str, Any]]:
        """The ``entries`` of every valid line of generation ``gen``, in order.

        Cuts off a torn last line; sets a garbage journal aside after reading its good part.
        """
        self.size = 0
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StateDirError(
                f"cannot read the checkpoint journal {self.path}: {exc.strerror or exc}",
                fix="make the state dir readable or pass another --state-dir",
            ) from exc
        pos, good, stale = 0, 0, 0
        while pos < len(data):
            end = data.find(b"\n", pos)
            doc = None if end == -1 else _decode(data[pos:end])
            if doc is None:
                break
            pos = good = end + 1
            if gen is None or doc.get("gen") != gen:
                stale += 1
                continue
            yield doc["entries"]
        if stale:
            log.info("ignored %d checkpoint journal line(s) of an older checkpoint file", stale)
        if good == len(data):
            self.size = good
        elif data.find(b"\n", pos) in (-1, len(data) - 1):
            self._cut(good)  # torn last line: that update was never acknowledged
        else:
            aside = self._set_aside()
            log.warning(
                "checkpoint journal %s is damaged at byte %d; applied the lines before it and "
                "moved it to %s: sources may be re-read from older offsets, never skipped",
                self.path,
                good,
                aside,
            )

    def append(self, line: bytes) -> int:
        """Append one line durably; returns the bytes written."""
        created = not self.path.exists()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(fd, view) :]
            os.fdatasync(fd)
        finally:
            os.close(fd)
        if created:
            fsync_dir(self.path.parent)
        self.size += len(line)
        return len(line)

    def clear(self) -> None:
        """Empty the journal (after a fold: its lines now name an older generation)."""
        if self.path.exists():
            self._cut(0)

    def _cut(self, size: int) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.ftruncate(fd, size)
            os.fsync(fd)
        finally:
            os.close(fd)
        self.size = size

    def _set_aside(self) -> Path:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        aside = self.path.with_name(f"{JOURNAL_NAME}.corrupt-{stamp}-{os.getpid()}")
        os.replace(self.path, aside)
        self.size = 0
        return aside
