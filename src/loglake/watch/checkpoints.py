"""The checkpoint file, held packed in memory: a daemon follows thousands of finished logs.

Same file, same format and same guarantees as ``lake.checkpoint.CheckpointStore`` (which
reads it here, so a torn or garbage file is set aside the same way), but each entry is kept
as its compressed JSON text: an entry carries every parser's state (several KB of JSON, more
than ten times that as Python objects), and at 10,000 followed files plain dicts alone
would take most of the memory budget. Saving writes the packed entries out as they are,
streamed, so only entries that changed are serialized again.

``slim`` entries (the few fields that find and check a file: path, identity, offset, tail)
are what the engine keeps for files it is not reading; the full entry is unpacked when a
file grows again.
"""

from __future__ import annotations

import json
import os
import re
import zlib
from pathlib import Path
from typing import Any

from loglake.lake.checkpoint import VERSION, CheckpointStore, StateDirError
from loglake.lake.durable import fsync_dir

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
)


def slim(entry: dict[str, Any]) -> dict[str, Any]:
    """The fields that find a file again and check its offset, without parser states."""
    out = {k: entry[k] for k in SLIM_KEYS if k in entry}
    out["slim"] = True
    return out


def pack(entry: dict[str, Any]) -> bytes:
    """An entry as compressed JSON: ~1 KB instead of ~17 KB of Python objects."""
    return zlib.compress(json.dumps(entry, separators=(",", ":"), sort_keys=True).encode(), 1)


def unpack(packed: bytes) -> dict[str, Any]:
    """A fresh entry (no object shared with any other caller)."""
    entry: dict[str, Any] = json.loads(zlib.decompress(packed))
    return entry


_WS = re.compile(r"[ \t\n\r]*")


def _read_packed(path: Path) -> dict[str, bytes] | None:
    """A valid checkpoint file's entries, packed one by one (never all decoded at once);
    None when the file is not valid (the caller's plain store then deals with it)."""
    try:
        text = path.read_bytes().decode()
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError):
        return None
    dec = json.JSONDecoder()
    entries: dict[str, bytes] | None = None
    version = None

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
            i = skip(i)
            if text[i] == ",":
                i = skip(i + 1)
        if text[skip(i + 1) :]:
            return None
    except (ValueError, IndexError):
        return None
    return entries if version == VERSION and entries is not None else None


class PackedCheckpoints(CheckpointStore):
    """Checkpoint entries keyed by source fingerprint, packed; the lake writer's store.

    ``load`` gives slim entries; ``get`` and ``entries`` unpack full ones.
    """

    def __init__(self, state_dir: Path) -> None:
        super().__init__(state_dir)
        self._packed: dict[str, bytes] | None = None

    def _packed_entries(self) -> dict[str, bytes]:
        if self._packed is None:
            packed = _read_packed(self.path)
            if packed is None:  # not a valid file: the plain reader sets it aside, says so
                packed = {k: pack(e) for k, e in self._read().items()}
            self._packed = packed
        return self._packed

    def load(self) -> dict[str, dict[str, Any]]:
        """Every entry, slim (read the file again)."""
        self._packed = None
        return {k: slim(unpack(v)) for k, v in self._packed_entries().items()}

    def get(self, fp: str) -> dict[str, Any] | None:
        packed = self._packed_entries().get(fp)
        return None if packed is None else unpack(packed)

    def entries(self) -> dict[str, dict[str, Any]]:
        return {k: unpack(v) for k, v in self._packed_entries().items()}

    def fingerprints(self) -> list[str]:
        return list(self._packed_entries())

    def update(self, entries: dict[str, dict[str, Any] | None]) -> None:
        """Replace the given entries (``None`` forgets one) and save durably."""
        if not entries:
            return
        current = self._packed_entries()
        for key, entry in entries.items():
            if entry is None:
                current.pop(key, None)
            else:
                current[key] = pack(entry)
        self.save()

    def save(self) -> None:
        """Write every entry (temp file, fsync, rename, fsync of the folder), streamed."""
        current = self._packed_entries()
        tmp = self.path.with_name(f"{self.path.name}.tmp-{os.getpid()}")
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as fh:
                fh.write(b'{"entries":{')
                for i, (key, packed) in enumerate(current.items()):
                    if i:
                        fh.write(b",")
                    fh.write(json.dumps(key).encode() + b":" + zlib.decompress(packed))
                fh.write(b'},"version":%d}' % VERSION)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
            fsync_dir(self.state_dir)
        except OSError as exc:
            raise StateDirError(
                f"cannot write checkpoints to {self.path}: {exc.strerror or exc}",
                fix="make the state dir writable or pass another --state-dir",
            ) from exc
