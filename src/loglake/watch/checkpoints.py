"""The checkpoint file, held packed in memory: a daemon follows thousands of finished logs.

Same file, same format and same guarantees as ``lake.checkpoint.CheckpointStore`` (which
reads it here, so a torn or garbage file is set aside the same way), but each entry is kept
as its compressed JSON text: an entry carries parser states (up to several KB of JSON, more
than ten times that as Python objects), and at 10,000 followed files plain dicts alone
would take most of the memory budget. An update appends only the entries it changes to the
journal (``journal.py``); the whole file is written when the journal is folded into it.

``slim`` entries (the few fields that find and check a file: path, identity, offset, tail)
are what the engine keeps for files it is not reading; the full entry is unpacked when a
file grows again.
"""

from __future__ import annotations

import json
import os
import re
import threading
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loglake.lake.checkpoint import VERSION, CheckpointStore, StateDirError
from loglake.lake.durable import fsync_dir
from loglake.watch.journal import Journal, encode

# The journal is folded into the checkpoint file once it is this large and at least as large
# as the file: the bytes written per flush stay proportional to the entries it changed.
FOLD_MIN_BYTES = 1 << 20

SLIM_KEYS = (
    "path",
    "fp",
    "fp_len",
    "offset",
    "tail",
    "size",
    "lines",
    "dev",
    "ino",
    "compressed",
    "idle_final",
    "closed",
    "closed_at",
    "run",
    "seen_size",
)


def slim(entry: dict[str, Any]) -> dict[str, Any]:
    """The fields that find a file again and check its offset, without parser states."""
    out = {k: entry[k] for k in SLIM_KEYS if k in entry}
    out["slim"] = True
    return out


def pack(entry: dict[str, Any]) -> bytes:
    """An entry as compressed JSON: ~1 KB instead of ~17 KB of Python objects."""
    return zlib.compress(_text(entry), 1)


def _text(entry: dict[str, Any]) -> bytes:
    return json.dumps(entry, separators=(",", ":"), sort_keys=True).encode()


class _Plain(bytes):
    """An entry's JSON text kept uncompressed while it is likely to change again: the entries
    of the latest update. Indexing one long log updates its entry (parser states, ~1.5 MB of
    JSON on a 1 GB log) every flush; compressing it each time only for the next flush to
    replace it, and decompressing it again to fold the journal, cost ~4 ms per flush."""

    __slots__ = ()


def _json_of(packed: bytes) -> bytes:
    return packed if isinstance(packed, _Plain) else zlib.decompress(packed)


def unpack(packed: bytes) -> dict[str, Any]:
    """A fresh entry (no object shared with any other caller)."""
    entry: dict[str, Any] = json.loads(_json_of(packed))
    return entry


_WS = re.compile(r"[ \t\n\r]*")


def _read_packed(path: Path) -> tuple[dict[str, bytes], str | None] | None:
    """A valid checkpoint file's entries, packed one by one (never all decoded at once), and
    its journal generation; None when the file is not valid (the caller's plain store then
    deals with it)."""
    try:
        text = path.read_bytes().decode()
    except FileNotFoundError:
        return {}, None
    except (OSError, UnicodeDecodeError):
        return None
    dec = json.JSONDecoder()
    entries: dict[str, bytes] | None = None
    version = gen = None

    def skip(i: int) -> int:
        return _WS.match(text, i).end()  # type: ignore[union-attr]

    try:
        i = skip(0)
        if text[i] != "{":
            return None
        i = skip(i + 1)
        while text[i] != "}":
            key, i = dec.raw_decode(text, i)
            i = skip(i)
            if text[i] != ":":
                return None
            i = skip(i + 1)
            if key == "entries":
                if text[i] != "{":
                    return None
                entries = {}
                i = skip(i + 1)
                while text[i] != "}":
                    k, i = dec.raw_decode(text, skip(i))
                    i = skip(i)
                    if not isinstance(k, str) or text[i] != ":":
                        return None
                    value, i = dec.raw_decode(text, skip(i + 1))
                    if not isinstance(value, dict):
                        return None
                    entries[k] = pack(value)
                    i = skip(i)
                    if text[i] == ",":
                        i = skip(i + 1)
                i += 1
            else:
                value, i = dec.raw_decode(text, i)
                if key == "version":
                    version = value
                elif key == "gen":
                    gen = value
            i = skip(i)
            if text[i] == ",":
                i = skip(i + 1)
        if text[skip(i + 1) :]:
            return None
    except (ValueError, IndexError):
        return None
    if version != VERSION or entries is None:
        return None
    return entries, gen if isinstance(gen, str) else None


class PackedCheckpoints(CheckpointStore):
    """Checkpoint entries keyed by source fingerprint, packed; the lake writer's store.

    ``load`` gives slim entries; ``get`` and ``entries`` unpack full ones. Thread-safe: the
    flusher updates it while the reader looks entries up and registers new files.
    """

    def __init__(self, state_dir: Path, on_write: Callable[[int], None] | None = None) -> None:
        super().__init__(state_dir)
        self._packed: dict[str, bytes] | None = None
        self._plain: list[str] = []  # keys whose entry is held as a ``_Plain`` text
        self._gen: str | None = None
        self._base_bytes = 0
        self.journal = Journal(self.state_dir)
        self.on_write = on_write  # told of the bytes written to either file
        self._lock = threading.RLock()

    def _packed_entries(self) -> dict[str, bytes]:
        if self._packed is None:
            read = _read_packed(self.path)
            if read is None:  # not a valid file: the plain reader sets it aside, says so
                packed, gen = {k: pack(e) for k, e in self._read().items()}, None
            else:
                packed, gen = read
            for entries in self.journal.replay(gen):
                for key, entry in entries.items():
                    if isinstance(entry, dict):
                        packed[key] = pack(entry)
                    else:
                        packed.pop(key, None)
            self._packed, self._gen, self._plain = packed, gen, []
            if gen is None or self.journal.size:
                self._fold()  # appends go to a journal of a file that names its generation
        return self._packed

    def load(self) -> dict[str, dict[str, Any]]:
        """Every entry, slim (read the files again)."""
        with self._lock:
            self._packed = None
            return {k: slim(unpack(v)) for k, v in self._packed_entries().items()}

    def get(self, fp: str) -> dict[str, Any] | None:
        with self._lock:
            packed = self._packed_entries().get(fp)
        return None if packed is None else unpack(packed)

    def entries(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            items = list(self._packed_entries().items())
        return {k: unpack(v) for k, v in items}

    def fingerprints(self) -> list[str]:
        with self._lock:
            return list(self._packed_entries())

    def update(
        self,
        entries: dict[str, dict[str, Any] | None],
        texts: dict[str, bytes | None] | None = None,
    ) -> None:
        """Replace the given entries (``None`` forgets one) and save durably (one journal
        line; the checkpoint file itself only when the journal is folded into it).

        ``texts``: entries' JSON text already made by the caller (the lake writer's spool
        manifest holds it). An entry carries its parsers' states, a megabyte of JSON and
        more on a long log: serializing it a second time (sorted) was a fifth of a commit."""
        if not entries:
            return
        given = texts or {}
        with self._lock:
            current = self._packed_entries()
            self._pack_plain(current, entries)
            lines: dict[str, bytes | None] = {}
            for key, entry in entries.items():
                if entry is None:
                    current.pop(key, None)
                    lines[key] = None
                else:
                    text = given.get(key) or _text(entry)
                    current[key] = _Plain(text)
                    lines[key] = text
            self._plain = [k for k, e in entries.items() if e is not None]
            try:
                written = self.journal.append(encode(self._gen or "", lines))
            except OSError as exc:
                raise _unwritable(self.path, exc) from exc
            self._wrote(written)
            if self.journal.size >= max(FOLD_MIN_BYTES, self._base_bytes):
                self._fold()

    def _pack_plain(self, current: dict[str, bytes], keep: dict[str, Any]) -> None:
        """Compress the plain entries of the previous update that this one does not replace:
        only the entries being written flush after flush stay uncompressed."""
        for key in self._plain:
            text = current.get(key)
            if key not in keep and isinstance(text, _Plain):
                current[key] = zlib.compress(text, 1)
        self._plain = []

    def register(self, entries: dict[str, dict[str, Any]]) -> None:
        """Save entries for keys that have none yet (files seen, not yet committed), so that
        a crash before their first commit cannot make them unknown."""
        with self._lock:
            current = self._packed_entries()
            self.update({k: e for k, e in entries.items() if k not in current})

    def save(self) -> None:
        """Write every entry to the checkpoint file and empty the journal."""
        with self._lock:
            self._packed_entries()
            self._fold()

    def _fold(self) -> None:
        """Write every entry (temp file, fsync, rename, fsync of the folder), streamed, under
        a new generation: journal lines left from before are ignored from then on."""
        current = self._packed if self._packed is not None else {}
        gen = os.urandom(8).hex()
        tmp = self.path.with_name(f"{self.path.name}.tmp-{os.getpid()}")
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as fh:
                fh.write(b'{"entries":{')
                for i, (key, packed) in enumerate(current.items()):
                    if i:
                        fh.write(b",")
                    fh.write(json.dumps(key).encode() + b":" + _json_of(packed))
                fh.write(b'},"gen":"%s","version":%d}' % (gen.encode(), VERSION))
                fh.flush()
                os.fsync(fh.fileno())
                size = fh.tell()
            os.replace(tmp, self.path)
            fsync_dir(self.state_dir)
            self._gen, self._base_bytes = gen, size
            self.journal.clear()
        except OSError as exc:
            raise _unwritable(self.path, exc) from exc
        self._wrote(size)

    def _wrote(self, n: int) -> None:
        if self.on_write is not None:
            self.on_write(n)


def _unwritable(path: Path, exc: OSError) -> StateDirError:
    return StateDirError(
        f"cannot write checkpoints to {path}: {exc.strerror or exc}",
        fix="make the state dir writable or pass another --state-dir",
    )
