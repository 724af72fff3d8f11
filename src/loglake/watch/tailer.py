"""One followed file: where it is, the descriptor that keeps it readable, how far it was read.

A live file is held open, so a rename (rotation) or an unlink (a pod's logs removed) does not
take its unread tail away: it is read through ``/proc/self/fd/N`` to its end, then finalized.
A finished file is closed; it is reopened if it grows again. ``cp`` is the newest checkpoint
entry produced for the file (committed or still in the flush buffer): reading always goes on
from there, while the checkpoint store only moves once the lake has the rows.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass, field
from typing import Any

from loglake.config import SourceConfig
from loglake.runs.identity import RunIdentity
from loglake.tail.fingerprint import FileIdentity, matches, tail_hash
from loglake.watch.identity import FD_DIR

# Why a file is no longer at its own path.
ROTATED = "rotated"  # renamed: the run goes on in a new file at the path
DELETED = "deleted"  # unlinked while open
COPY = "copy"  # its bytes are read from a rotated copy (copytruncate, or a rename seen late)


class Shared:
    """What the tailers of one engine share: the files to look at next, the fd budget.

    Keeping the changed files in a set lets a read pass touch only them, not every one of
    ten thousand quiet files; the budget keeps descriptors under ``max_open_files`` (a file
    past it is read by name, and is not protected against deletion while open).
    """

    def __init__(self, max_open: int = 1 << 30) -> None:
        self.dirty: set[Tailer] = set()
        self.max_open = max_open
        self.open = 0


def copy_entry(entry: dict[str, Any] | None) -> dict[str, Any] | None:
    """A deep copy: parsers update their state in place, and the flusher serializes entries
    from another thread, so an entry handed over is never touched again."""
    return None if entry is None else pickle.loads(pickle.dumps(entry, protocol=5))


@dataclass(eq=False, slots=True)
class Tailer:
    key: str  # the checkpoint key and the rows' source_fp
    fp: str  # content fingerprint (the key, unless salted)
    fp_len: int
    path: str  # the path rows are attributed to: where the file was first found
    root: str
    source: SourceConfig
    identity: RunIdentity
    dev: int
    ino: int
    where: str | None = None  # where the file is now; None once it is reachable only by fd
    cp: dict[str, Any] | None = None
    fd: int | None = None
    size: int = 0
    mtime: float = 0.0
    grew_at: float = 0.0  # wall-clock time of the last growth seen
    moved: str | None = None  # ROTATED, DELETED or COPY; None while at its own path
    compressed: bool = False
    seen_live: bool = False
    retry_at: float = 0.0
    route: tuple[tuple[str, ...], bool] | None = None  # routed parsers, auto-detect (cached)
    extra: dict[str, Any] = field(default_factory=dict)
    shared: Shared = field(default_factory=Shared, repr=False)

    def __post_init__(self) -> None:
        self.dirty = True

    @property
    def dirty(self) -> bool:
        """Something may have changed: look at it on the next read pass."""
        return self in self.shared.dirty

    @dirty.setter
    def dirty(self, value: bool) -> None:
        if value:
            self.shared.dirty.add(self)
        else:
            self.shared.dirty.discard(self)

    @property
    def offset(self) -> int:
        return int((self.cp or {}).get("offset") or 0)

    @property
    def final(self) -> bool:
        """Finalized and unchanged since: nothing to do until it grows."""
        cp = self.cp
        return bool(cp and cp.get("idle_final") and cp.get("size") == self.size)

    @property
    def read_path(self) -> str:
        if self.fd is not None:
            return f"{FD_DIR}/{self.fd}"
        return self.where or self.path

    def extras(self) -> dict[str, Any]:
        """What the daemon adds to a checkpoint entry to find the file again after a restart."""
        return {
            "fp": self.fp,
            "dev": self.dev,
            "ino": self.ino,
            "compressed": self.compressed,
            **self.extra,
        }

    def open(self) -> bool:
        """Hold the file open (only if ``where`` still is this file, and within budget)."""
        if self.fd is not None:
            return True
        if self.where is None or self.shared.open >= self.shared.max_open:
            return False
        try:
            fd = os.open(self.where, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return False
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != (self.dev, self.ino):
            os.close(fd)
            return False
        self.hold(fd)
        return True

    def hold(self, fd: int) -> bool:
        """Keep ``fd`` (already open on this file) if the budget allows; else close it."""
        if self.fd is None and self.shared.open < self.shared.max_open:
            self.fd = fd
            self.shared.open += 1
            return True
        os.close(fd)
        return False

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
            self.shared.open -= 1

    def stat(self) -> os.stat_result | None:
        """The file's current stat; None when it can no longer be reached."""
        if self.fd is not None:
            return os.fstat(self.fd)
        if self.where is None:
            return None
        try:
            st = os.stat(self.where)
        except OSError:
            return None
        return st if (st.st_dev, st.st_ino) == (self.dev, self.ino) else None

    def still_at_path(self) -> bool:
        """Whether ``where`` still names this file (not renamed away, not deleted)."""
        if self.where is None:
            return False
        try:
            st = os.stat(self.where)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == (self.dev, self.ino)

    def offset_valid(self, size: int) -> bool:
        """Whether the bytes before the offset are still those read (no truncation)."""
        if self.compressed:
            return True
        off = self.offset
        if not off and self.fp_len:
            # Nothing read yet, so no bytes before the offset to compare: the file is still
            # the one found while it starts with the bytes it was found by. (A file seen at
            # 100 bytes, none of them read, then copied away and truncated, is not "valid at
            # offset 0": its 100 bytes are in the copy.)
            try:
                return size >= self.fp_len and matches(
                    self.read_path, FileIdentity(self.fp, self.fp_len)
                )
            except OSError:
                return True  # gone: the next look at it finds out where
        if off > size:
            return False
        saved = (self.cp or {}).get("tail")
        return not saved or tail_hash(self.read_path, off) == saved


def last_line_end(fd: int, size: int, block: int = 1 << 16) -> int:
    """Offset just after the last newline before ``size`` (0 when there is none)."""
    pos = size
    while pos > 0:
        start = max(0, pos - block)
        data = os.pread(fd, pos - start, start)
        i = data.rfind(b"\n")
        if i != -1:
            return start + i + 1
        pos = start
    return 0
