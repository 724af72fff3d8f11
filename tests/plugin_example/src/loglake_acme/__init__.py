"""loglake parser for the ACME trainer: params, per-iteration and eval metrics, status."""

from __future__ import annotations

import re
from typing import Any

from loglake import BaseParser, Emitter, FileInfo, LineBatch

HEADER = re.compile(r"^\[acme\] (?P<rest>run=.*)$")
EPOCH = re.compile(r"^=== epoch (?P<epoch>\d+)/\d+ ===$")
ITER = re.compile(r"^\s*it (?P<step>\d+) \|")
EVAL = re.compile(r"^\s*eval \|")
CELL = re.compile(r"(?P<key>[A-Za-z_][\w/.-]*) (?P<value>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)")
PAIR = re.compile(r"(?P<key>\w+)=(?P<value>\S+)")
DONE = re.compile(r"^\[acme\] finished in (?P<seconds>[\d.]+)s")
FAILED = re.compile(r"^\[acme\] FAILED: (?P<error>.*)")


class AcmeParser(BaseParser):
    """Epoch context lives in ``state`` so a restart mid-file keeps numbering metrics right."""

    name = "acme"
    version = "1"
    priority = 40  # a specific parser: the lines it extracts are left alone by the fallbacks

    def detect(self, info: FileInfo) -> bool:
        return any(line.startswith("[acme] run=") for line in info.head[:50])

    def new_state(self) -> dict[str, Any]:
        return {"epoch": None, "step": None}

    def parse(self, batch: LineBatch, state: dict[str, Any], out: Emitter) -> None:
        for text, offset in zip(batch.texts, batch.offsets, strict=True):
            # Cheap prefilter first: every line this parser reads has a '[', '=' or '|'.
            if "|" in text:
                self._metrics(text, offset, state, out)
            elif text.startswith("==="):
                m = EPOCH.match(text)
                if m:
                    state["epoch"] = int(m.group("epoch"))
            elif text.startswith("[acme] "):
                self._control(text, offset, out)

    def _metrics(self, text: str, offset: int, state: dict[str, Any], out: Emitter) -> None:
        m = ITER.match(text)
        if m:
            state["step"] = step = int(m.group("step"))
        elif EVAL.match(text):
            step = None  # eval lines belong to the epoch, not to an iteration
        else:
            return
        for cell in text.split("|")[1:]:
            c = CELL.fullmatch(cell.strip())
            if c:
                out.metric(c["key"], float(c["value"]), offset, step=step, epoch=state["epoch"])

    def _control(self, text: str, offset: int, out: Emitter) -> None:
        m = HEADER.match(text)
        if m:
            for p in PAIR.finditer(m.group("rest")):
                out.param(p["key"], p["value"], offset)
            return
        if DONE.match(text):
            out.status("completed", offset)
            return
        f = FAILED.match(text)
        if f:
            out.status("failed", offset, error=f.group("error"))


PARSERS = [AcmeParser()]
