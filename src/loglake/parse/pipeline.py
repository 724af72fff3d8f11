"""Running a file's parsers over its line batches, each isolated from the others.

A parser that raises is recorded (``parse_errors``) and the file's other parsers go on; one
that keeps failing is switched off for that file with one warning, so a broken team plugin
costs its own rows, never anyone else's.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from loglake.parse.base import LineBatch, Parser
from loglake.parse.records import Emitter

log = logging.getLogger(__name__)

GENERIC_PRIORITY = 90  # parsers at or above this are fallbacks: they do not claim lines
MAX_FAILED_BATCHES = 3


def parser_label(p: Parser) -> str:
    return f"{p.name}@{p.version}"


class FileParsers:
    """The parsers chosen for one file, with their per-file state (checkpointed as JSON)."""

    def __init__(self, parsers: list[Parser], states: dict[str, Any] | None = None) -> None:
        self.parsers = sorted(parsers, key=lambda p: (p.priority, p.name))
        states = states or {}
        self.states: dict[str, dict[str, Any]] = {}
        self.failures: dict[str, int] = dict(states.get("__failures__", {}))
        for p in self.parsers:
            saved = states.get(p.name)
            if saved is not None and saved.get("__version__") == p.version:
                self.states[p.name] = saved["state"]
            else:
                self.states[p.name] = p.new_state()

    def _active(self) -> list[Parser]:
        return [p for p in self.parsers if self.failures.get(p.name, 0) < MAX_FAILED_BATCHES]

    def _fail(self, p: Parser, out: Emitter, offset: int, what: str, err: BaseException) -> None:
        n = self.failures.get(p.name, 0) + 1
        self.failures[p.name] = n
        frame = traceback.extract_tb(err.__traceback__)[-1] if err.__traceback__ else None
        where = f" at {frame.filename}:{frame.lineno}" if frame else ""
        out.error(offset, f"{what} raised {type(err).__name__}: {err}{where}")
        if n == MAX_FAILED_BATCHES:
            log.warning(
                "parser %s failed %d times on this file and is disabled for it (last: %s)",
                parser_label(p),
                n,
                err,
            )

    def feed(self, batch: LineBatch, out: Emitter) -> None:
        if not batch.texts:
            return
        out.claimed.clear()  # claims only matter between parsers of the same batch
        for p in self._active():
            out.parser = parser_label(p)
            out.claim_lines = p.priority < GENERIC_PRIORITY
            try:
                p.parse(batch, self.states[p.name], out)
            except Exception as e:  # noqa: BLE001 - isolation is the point
                self._fail(p, out, batch.offsets[0], "parse()", e)
        out.claim_lines = False

    def finalize(self, out: Emitter, *, idle: bool, offset: int) -> None:
        for p in self._active():
            out.parser = parser_label(p)
            out.claim_lines = False
            try:
                p.finalize(self.states[p.name], out, idle=idle)
            except Exception as e:  # noqa: BLE001
                self._fail(p, out, offset, "finalize()", e)

    def snapshot(self) -> dict[str, Any]:
        """JSON-serializable states, tagged with versions so a parser upgrade starts fresh."""
        snap: dict[str, Any] = {
            p.name: {"__version__": p.version, "state": self.states[p.name]} for p in self.parsers
        }
        snap["__failures__"] = dict(self.failures)
        return snap
