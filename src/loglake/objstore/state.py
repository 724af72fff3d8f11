"""What loglake knows about each remote log between runs: identity and chunk map.

Keyed by the log's URL (a chunked stream's synthetic one). For a plain object: its
fingerprint, ETag and size, so an unchanged object costs no request beyond the listing. For
a chunked stream: the chunk map (each object's place in the decompressed stream), so new
chunks extend it and a resumed read fetches only the chunks around the saved offset.

It only describes the sources; what was read is in the checkpoints, which move after the
lake commit. So it is saved as soon as it changes, and a crash at any point loses nothing:
an entry that is ahead of the checkpoints just says where bytes are.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from loglake.lake.durable import atomic_write_json

log = logging.getLogger(__name__)

VERSION = 1
FILE = "objstore.json"


class RemoteState:
    """``{url: entry}`` persisted in ``<state_dir>/objstore.json``."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / FILE
        self.entries: dict[str, dict[str, Any]] = self._read()
        self.dirty = False

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            raw = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            # Only a description of the sources: rebuilt from the objects themselves.
            log.warning(
                "ignoring unreadable %s (%s); remote logs are re-identified", self.path, exc
            )
            return {}
        if not isinstance(raw, dict) or raw.get("version") != VERSION:
            log.warning("ignoring %s: unknown version; remote logs are re-identified", self.path)
            return {}
        streams = raw.get("streams")
        return streams if isinstance(streams, dict) else {}

    def get(self, url: str) -> dict[str, Any] | None:
        return self.entries.get(url)

    def put(self, url: str, entry: dict[str, Any]) -> None:
        self.entries[url] = entry
        self.dirty = True

    def save(self) -> None:
        if not self.dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.path, {"version": VERSION, "streams": self.entries})
        self.dirty = False
