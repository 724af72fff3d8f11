"""File identity by content, so rotation (rename) and inode reuse never confuse two files.

A file's identity is the hash of its first ``fp_len`` raw bytes (``fp_len`` = N, 1 KiB by
default, or the whole file when it is shorter). ``fp_len`` is stored with the hash and
never changes: a file identified at 300 bytes keeps the hash of those 300 bytes as it grows,
and ``matches`` re-checks exactly that prefix. Device and inode ride along as a hint (fast
"same file?" checks, telling apart two live files with equal prefixes), never as identity:
inodes are reused, and a copied or compressed rotation has another inode.

Tradeoffs, chosen on purpose:
- Two distinct files with identical first ``fp_len`` bytes (two ranks printing the same
  banner, identified while still short) get the same ``fp``. Run resolution keeps them apart
  by path (rank, pod, container are in the path template) and by ``dev``/``ino`` while both
  exist. A larger N makes this rarer but delays identity for slow writers.
- A short file's identity depends on when it was first seen (300 bytes then, 1 KiB on a
  later full re-index). Callers that want re-indexing to reproduce keys identify a growing
  file once it has N bytes, or once it is finalized.
- Compressed files are hashed on their raw (compressed) bytes: a .gz is immutable, so its
  identity is its content; offsets into it are decompressed offsets (see ``reader``), which
  ``tail_hash`` does not cover: a changed .gz is re-read from 0.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass
from typing import IO, Any

DEFAULT_FP_BYTES = 1024
TAIL_BYTES = 64

Source = str | os.PathLike[str] | IO[bytes]


@dataclass(frozen=True, slots=True)
class FileIdentity:
    """``fp`` is the lake's ``source_fp``; ``fp_len`` how many leading bytes it covers."""

    fp: str
    fp_len: int
    dev: int = 0
    ino: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FileIdentity:
        return cls(str(data["fp"]), int(data["fp_len"]), int(data["dev"]), int(data["ino"]))


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _read_at(source: Source, offset: int, size: int) -> tuple[bytes, int, int]:
    """``size`` bytes at ``offset`` plus (dev, ino); a file object is left where it was."""
    if hasattr(source, "read"):
        fh: IO[bytes] = source  # type: ignore[assignment]
        where = fh.tell()
        try:
            fh.seek(offset)
            data = fh.read(size)
        finally:
            fh.seek(where)
        try:
            st = os.fstat(fh.fileno())
            return data, st.st_dev, st.st_ino
        except (AttributeError, OSError, ValueError):
            return data, 0, 0
    with open(os.fspath(source), "rb", buffering=0) as f:  # type: ignore[arg-type]
        st = os.fstat(f.fileno())
        f.seek(offset)
        return f.read(size), st.st_dev, st.st_ino


def identify(source: Source, size_hint: int = DEFAULT_FP_BYTES) -> FileIdentity | None:
    """The identity of a file from its first ``size_hint`` bytes; None while it is empty.

    An empty file has nothing to be recognized by (every empty file would match), so the
    caller waits until it has bytes.
    """
    data, dev, ino = _read_at(source, 0, size_hint)
    if not data:
        return None
    return FileIdentity(_digest(data), len(data), dev, ino)


def fingerprint(source: Source, size_hint: int = DEFAULT_FP_BYTES) -> str | None:
    """Just the hash part of ``identify`` (the lake's ``source_fp``)."""
    ident = identify(source, size_hint)
    return ident.fp if ident else None


def matches(source: Source, identity: FileIdentity) -> bool:
    """Whether ``source`` still starts with the bytes ``identity`` was taken from."""
    data, _, _ = _read_at(source, 0, identity.fp_len)
    return len(data) == identity.fp_len and _digest(data) == identity.fp


def tail_hash(source: Source, offset: int, n: int = TAIL_BYTES) -> str | None:
    """Hash of the ``n`` raw bytes just before ``offset``; None if the file is now shorter.

    Saved with a checkpoint offset; if it differs on restart, the file was truncated and
    regrown (or copytruncated) in between and the offset is not trusted.
    """
    begin = max(0, offset - n)
    data, _, _ = _read_at(source, begin, offset - begin)
    if len(data) != offset - begin:
        return None
    return _digest(data)


def offset_still_valid(
    source: Source, offset: int, saved_tail: str | None, n: int = TAIL_BYTES
) -> bool:
    """Whether a checkpoint's ``offset`` can be resumed: the bytes before it are unchanged."""
    if offset == 0:
        return True
    return saved_tail is not None and tail_hash(source, offset, n) == saved_tail
