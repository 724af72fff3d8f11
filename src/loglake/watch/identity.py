"""Which checkpoint a file continues: its content decides, path and inode only break ties.

A file continues a checkpoint entry when it still starts with the bytes the entry was
identified by (``fp`` over ``fp_len`` bytes) *and* the bytes just before the entry's offset
are unchanged (``tail``), so truncate-and-regrow and inode reuse are never resumed. Among
entries that pass, one for the same path wins, then one for the same inode (a rename), then a
rotation sibling (``train.log.1`` holding what ``train.log`` had: a copy).

A file that continues nothing is new. If its fingerprint is already taken (two ranks that
print the same first line, a regrown file with the same header) its key is salted with its
path and inode: two files never share a checkpoint, whatever their first bytes.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections import defaultdict
from collections.abc import Container, Iterable
from typing import Any

from loglake.tail.fingerprint import DEFAULT_FP_BYTES, fingerprint, tail_hash
from loglake.tail.reader import compression_of

HEAD_BYTES = DEFAULT_FP_BYTES
# An open descriptor as a path: reads a file renamed or deleted since it was opened.
FD_DIR = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"


class Head:
    """A file's first bytes, read once and hashed at whatever lengths entries were taken at."""

    __slots__ = ("_fps", "data")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self._fps: dict[int, str | None] = {}

    def fp(self, n: int) -> str | None:
        if n not in self._fps:
            ok = 0 < n <= len(self.data)
            self._fps[n] = fingerprint(io.BytesIO(self.data[:n]), n) if ok else None
        return self._fps[n]

    @property
    def compressed(self) -> bool:
        return compression_of(self.data[:4]) is not None


def read_head(fd: int) -> Head:
    return Head(os.pread(fd, HEAD_BYTES, 0))


def entry_fp(key: str, entry: dict[str, Any]) -> str:
    """The content fingerprint of an entry (its key, unless the key was salted)."""
    return str(entry.get("fp") or key)


def continues(key: str, entry: dict[str, Any], head: Head, size: int, source: str | int) -> bool:
    """Whether the file (``source``: a path, or an open descriptor) resumes ``entry``."""
    fp_len = int(entry.get("fp_len") or 0)
    if head.fp(fp_len) != entry_fp(key, entry):
        return False
    offset = int(entry.get("offset") or 0)
    if entry.get("compressed") or head.compressed:
        # Offsets are in the decompressed stream: only an unchanged archive is the same one.
        return entry.get("size") == size
    if offset > size:
        return False
    saved = entry.get("tail")
    if not offset or not saved:
        return True
    where = f"{FD_DIR}/{source}" if isinstance(source, int) else source
    return bool(tail_hash(where, offset) == saved)


def salted_key(fp: str, path: str, dev: int, ino: int, taken: Container[str]) -> str:
    """A key for a file whose fingerprint another file already has."""
    n = 0
    while True:
        raw = f"{fp}|{path}|{dev}|{ino}|{n}".encode()
        key = hashlib.blake2b(raw, digest_size=16).hexdigest()
        if key not in taken:
            return key
        n += 1


def stem(name: str) -> str:
    """What rotated copies of a log keep of its name: ``train`` for ``train.log``."""
    return name.split(".", 1)[0] or name


def is_sibling(name: str, of: str) -> bool:
    """Whether ``name`` looks like a rotation of ``of`` (``train.log.1``, ``train-2024.log``)."""
    return name != of and name.startswith(stem(of))


class EntryIndex:
    """Checkpoint entries no followed file has claimed, findable by path, inode and folder."""

    def __init__(self, entries: dict[str, dict[str, Any]] | None = None) -> None:
        self.entries: dict[str, dict[str, Any]] = {}
        self._by_path: dict[str, set[str]] = defaultdict(set)
        self._by_ino: dict[tuple[int, int], set[str]] = defaultdict(set)
        self._by_dir: dict[str, set[str]] = defaultdict(set)
        for key, entry in (entries or {}).items():
            self.add(key, entry)

    def __contains__(self, key: object) -> bool:
        return key in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def add(self, key: str, entry: dict[str, Any]) -> None:
        self.pop(key)
        self.entries[key] = entry
        path = str(entry.get("path") or "")
        self._by_path[path].add(key)
        self._by_dir[os.path.dirname(path)].add(key)
        if entry.get("ino"):
            self._by_ino[(int(entry.get("dev") or 0), int(entry["ino"]))].add(key)

    def pop(self, key: str) -> dict[str, Any] | None:
        entry = self.entries.pop(key, None)
        if entry is None:
            return None
        path = str(entry.get("path") or "")
        _discard(self._by_path, path, key)
        _discard(self._by_dir, os.path.dirname(path), key)
        if entry.get("ino"):
            _discard(self._by_ino, (int(entry.get("dev") or 0), int(entry["ino"])), key)
        return entry

    def has_path(self, path: str) -> bool:
        return bool(self._by_path.get(path))

    def candidates(self, path: str, dev: int, ino: int) -> list[str]:
        """Keys worth checking for a file: same path, then same inode, then rotation siblings."""
        seen: list[str] = []
        name = os.path.basename(path)
        groups: Iterable[Iterable[str]] = (
            sorted(self._by_path.get(path, ())),
            sorted(self._by_ino.get((dev, ino), ())),
            sorted(
                k
                for k in self._by_dir.get(os.path.dirname(path), ())
                if is_sibling(name, os.path.basename(str(self.entries[k].get("path") or "")))
            ),
        )
        for group in groups:
            seen.extend(k for k in group if k not in seen)
        return seen

    def match(self, path: str, dev: int, ino: int, head: Head, size: int, fd: int) -> str | None:
        """The key of the entry this file continues, if any."""
        for key in self.candidates(path, dev, ino):
            if continues(key, self.entries[key], head, size, fd):
                return key
        return None


def _discard(index: dict[Any, set[str]], k: Any, key: str) -> None:
    keys = index.get(k)
    if keys is not None:
        keys.discard(key)
        if not keys:
            del index[k]


def find_continuation(
    key: str, entry: dict[str, Any], skip: Container[tuple[int, int]]
) -> tuple[str, os.stat_result] | None:
    """A file next to ``entry``'s path that holds its bytes: the renamed or copied log.

    Looked for by name in the same folder (include patterns do not apply: ``train.log.1`` is
    read to recover what ``train.log`` had), the same inode first; ``skip`` holds inodes that
    are followed already.
    """
    path = str(entry.get("path") or "")
    folder, name = os.path.split(path)
    try:
        names = sorted(n for n in os.listdir(folder or ".") if n == name or is_sibling(n, name))
    except OSError:
        return None
    want = (int(entry.get("dev") or 0), int(entry.get("ino") or 0))
    found: list[tuple[int, str, os.stat_result]] = []
    for n in names:
        p = os.path.join(folder, n)
        try:
            st = os.stat(p)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) in skip or not st.st_size:
            continue
        found.append((0 if (st.st_dev, st.st_ino) == want else 1, p, st))
    for _, p, st in sorted(found, key=lambda x: (x[0], x[1])):
        try:
            fd = os.open(p, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            if continues(key, entry, read_head(fd), st.st_size, fd):
                return p, st
        finally:
            os.close(fd)
    return None
