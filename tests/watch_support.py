"""Shared pieces of the watch tests: a numbered-line parser, configs, and lake checks.

Lines are ``f=<file> n=<number>``; a tiny team parser (routed by config, auto-detection off)
turns each into one metric ``f<file>`` with value and step ``n``, so "every line exactly once"
is a query, independent of the built-in heuristics.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loglake.query.connect import connect

LOGLAKE = [sys.executable, "-m", "loglake.cli"]

SEQ_PARSER = """
import re
from loglake.parse.base import BaseParser

LINE = re.compile(r"^f=(\\d+) n=(\\d+)$")


class SeqParser(BaseParser):
    name = "seq"
    version = "1"
    priority = 10

    def detect(self, info):
        return False

    def parse(self, batch, state, out):
        for text, off in zip(batch.texts, batch.offsets):
            m = LINE.match(text)
            if m:
                n = int(m.group(2))
                out.metric("f" + m.group(1), float(n), off, step=n)


PARSERS = [SeqParser()]
"""


def write_config(
    tmp: Path, *, watch: dict[str, Any] | None = None, seq: bool = True, **source: Any
) -> Path:
    """A config file for a ``logs/`` folder, lake and state under ``tmp``; returns its path."""
    (tmp / "logs").mkdir(exist_ok=True)
    lines = [f'lake = "{tmp / "lake"}"', f'state_dir = "{tmp / "state"}"']
    if seq:
        pdir = tmp / "parsers"
        pdir.mkdir(exist_ok=True)
        (pdir / "seq.py").write_text(SEQ_PARSER)
        lines += ["[parsers]", f'dirs = ["{pdir}"]']
    settings = {
        "flush_interval": "0.3s",
        "rescan_interval": "0.5s",
        "idle_timeout": "3s",
        **(watch or {}),
    }
    lines.append("[watch]")
    lines += [f"{k} = {json.dumps(v)}" for k, v in settings.items()]
    src = {"name": "logs", "paths": [str(tmp / "logs")], "include": ["*.log"]}
    if seq:
        src.update(parsers=["seq"], auto_detect=False)
    src.update(source)
    lines.append("[[sources]]")
    lines += [f"{k} = {json.dumps(v)}" for k, v in src.items()]
    path = tmp / "loglake.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def lake_counts(lake: Path) -> Counter[tuple[str, int]]:
    """How often each (file key, line number) is queryable in the lake's metrics."""
    rows = connect(lake).execute("SELECT key, step FROM metrics").fetchall()
    return Counter((k, int(s)) for k, s in rows)


def lake_rows(lake: Path, sql: str) -> list[dict[str, Any]]:
    """Rows of a query over the lake's views, as dicts."""
    rel = connect(lake).sql(sql)
    return [dict(zip(rel.columns, row, strict=True)) for row in rel.fetchall()]


def expected(written: dict[int, int]) -> Counter[tuple[str, int]]:
    """Every line ``1..n`` of every file ``f``, once."""
    return Counter({(f"f{f}", n): 1 for f, last in written.items() for n in range(1, last + 1)})


def wait_for(
    cond: Callable[[], Any], timeout: float = 30.0, what: str = "condition", interval: float = 0.05
) -> Any:
    """``cond()``'s first truthy value, polled every ``interval`` s; fails after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = cond()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def env_without_crash() -> dict[str, str]:
    return {
        k: v for k, v in os.environ.items() if not k.startswith(("LOGLAKE_CRASH", "LOGLAKE_TEST"))
    }


class Harness:
    """The daemon's engine driven step by step, in this process, with a clock tests move.

    ``restart`` drops the engine the way a crash does (whatever was buffered and not
    committed is gone) and starts a new one on the same lake and state dir.
    """

    def __init__(self, tmp: Path, *, watch: dict[str, Any] | None = None, **source: Any) -> None:
        from loglake.config import load_config

        self.tmp = tmp
        self.logs = tmp / "logs"
        self.lake = tmp / "lake"
        self.config = load_config(write_config(tmp, watch=watch, **source))
        self.now = time.time()
        self.engine = self._make()

    def _make(self) -> Any:
        from loglake.lake.writer import LakeWriter
        from loglake.parse.registry import registry_for
        from loglake.watch.checkpoints import PackedCheckpoints
        from loglake.watch.engine import Engine
        from loglake.watch.flusher import FlushBuffer, Flusher
        from loglake.watch.settings import WatchSettings
        from loglake.watch.stats import Stats

        settings = WatchSettings.from_config(self.config)
        state = self.config.state_path()
        store = PackedCheckpoints(state)
        writer = LakeWriter(self.config.lake, state, "harness", checkpoints=store)
        writer.recover()
        stats = Stats(lambda: self.now)
        buffer = FlushBuffer(
            max_bytes=settings.max_buffer_bytes,
            flush_records=settings.flush_records,
            flush_interval=settings.flush_interval,
        )
        return Engine(
            self.config,
            settings,
            entries=store.load(),
            buffer=buffer,
            flusher=Flusher(buffer, writer, stats),
            registry=registry_for(self.config),
            checkpoints=store,
            stats=stats,
            clock=lambda: self.now,
            inline_flush=True,
        )

    def step(self, times: int = 1) -> None:
        """What the daemon does between two flushes: list, read, commit."""
        for _ in range(times):
            self.engine.scan()
            self.engine.read()
            assert self.engine.flush()

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def finish(self) -> None:
        """Let every file go idle and be finalized."""
        self.step()
        self.advance(self.engine.settings.idle_timeout + 1)
        self.step(2)

    def restart(self) -> None:
        self.engine.close()
        self.engine = self._make()

    def counts(self) -> Counter[tuple[str, int]]:
        return lake_counts(self.lake)

    def gaps(self) -> list[dict[str, Any]]:
        return lake_rows(self.lake, "SELECT kind, bytes, source_path FROM gaps ORDER BY kind")


def append(path: Path, f: int, numbers: range | list[int], *, partial: str = "") -> None:
    """Append ``f=<f> n=<n>`` lines, and optionally the start of a next line."""
    with open(path, "a") as fh:
        fh.write("".join(f"f={f} n={n}\n" for n in numbers) + partial)
