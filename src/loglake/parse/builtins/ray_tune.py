"""Ray Tune: trial status tables (``Trial name | status | <params> | iter | ...``) and
per-trial blocks (``Trial X started with configuration:``, ``Trial X completed after N
iterations``, ``Result for X:``); each trial is its own sub-run (see ``trials.py``)."""

from __future__ import annotations

import re
from typing import Any

from loglake.parse.base import BaseParser, LineBatch
from loglake.parse.prefilter import walk
from loglake.parse.records import Emitter
from loglake.parse.timestamps import strip_log_prefix
from loglake.parse.trials import (
    BLOCK_KV_RE,
    RAY_HINTS,
    claim,
    hinted_lines,
    line_ts,
    scalar,
    trial_sub,
)
from loglake.parse.values import to_number

_RAY_TRIAL_RE = re.compile(
    r"^Trial (?P<t>\S+) (?:(?P<start>started with configuration:)|finished iteration (?P<i>\d+)"
    r"|completed after (?P<c>\d+) iterations|errored after (?P<e>\d+) iterations)"
)
_RAY_RESULT_FOR_RE = re.compile(r"^Result for (?P<t>\S+):\s*$")
_RAY_STATUSES = {"TERMINATED": "completed", "ERROR": "failed"}
_RAY_ALL_STATUSES = ("RUNNING", "TERMINATED", "PENDING", "PAUSED", "ERROR")
_RAY_METRIC_COLUMNS = ("acc", "loss", "iter", "total time (s)", "ts", "reward")
_RAY_SKIP_KEYS = frozenset(
    {"training_iteration", "timestamp", "pid", "iterations_since_restore", "time_since_restore",
     "date", "done", "hostname", "node_ip", "trial_id", "experiment_id", "experiment_tag",
     "checkpoint_dir_name", "should_checkpoint", "config"}
)  # fmt: skip
_BOX = "│|╭╮╰╯├┤─+"
_RULE_CHARS = frozenset("│|╭╮╰╯├┤─+-=:┼ ")
_UNBOX = str.maketrans("│|", "  ")
_COLS_SPLIT_RE = re.compile(r"\s{2,}")
_CELL_RE = re.compile(r"\S+(?: \S+)*")
_EXP_RE = re.compile(
    r"Configuration for experiment\s+(?P<e>\S+)|^Result logdir: \S*?(?P<d>[^/\s]+)/?$"
)


def ray_sub(trial: str) -> str:
    """``train_fn_a1b2c_00003`` → ``trial-3`` (Ray numbers trials in the name's suffix)."""
    m = re.search(r"_(\d{5})$", trial)
    return trial_sub(int(m.group(1)) if m else trial)


def _cells(line: str, header: list[tuple[str, int, int]]) -> dict[str, str]:
    """Values of a fixed-width table row, each given to the header column it overlaps."""
    row: dict[str, str] = {}
    for cm in _CELL_RE.finditer(line.translate(_UNBOX)):
        start, end = cm.span()
        best, best_overlap = None, -(10**9)
        for name, hs, he in header:
            overlap = min(end, he) - max(start, hs)
            if overlap > best_overlap:
                best, best_overlap = name, overlap
        if best is not None and best not in row:
            row[best] = cm.group(0)
    return row


class RayTuneParser(BaseParser):
    """Ray Tune's trial status tables and per-trial result blocks."""

    name = "ray_tune"
    version = "1"
    priority = 30

    def new_state(self) -> dict[str, Any]:
        # table: header columns of a status table being read; block: a per-trial table or
        # "Result for" block; trials: name -> {"step": last step reported, "params": bool,
        # "status": status reported}
        return {"table": None, "block": None, "trials": {}, "exp": None}

    def parse(self, batch: LineBatch, state: dict[str, Any], out: Emitter) -> None:
        texts = batch.texts
        candidates = hinted_lines(batch, RAY_HINTS)

        def picks() -> list[int] | None:
            idle = state["table"] is None and state["block"] is None
            return candidates if idle else None

        for i in walk(len(texts), picks):
            text = texts[i]
            try:
                self._line(text, batch.offsets[i], line_ts(batch, i, text), state, out)
            except Exception as e:  # noqa: BLE001 - one odd line must not stop the file
                state["table"] = state["block"] = None
                out.error(batch.offsets[i], f"ray_tune: {type(e).__name__}: {e}", text)

    def _trial(self, state: dict[str, Any], name: str, offset: int, out: Emitter) -> dict[str, Any]:
        t = state["trials"].get(name)
        if t is None:
            t = {"step": None, "params": False, "status": None, "keys": []}
            state["trials"][name] = t
            out.subrun(ray_sub(name), offset, name=name, experiment=state["exp"])
        return t

    def _line(
        self, text: str, offset: int, ts: float | None, state: dict[str, Any], out: Emitter
    ) -> None:
        s = text.strip()
        if state["block"] is not None and self._block_line(text, s, offset, ts, state, out):
            return
        if state["table"] is not None and self._table_row(text, s, offset, ts, state, out):
            return
        m = _EXP_RE.search(s)
        if m:
            state["exp"] = m.group("e") or m.group("d")
            return
        if "Trial name" in s and "status" in s:
            pipe = s.count("|") > 2
            inner = s.strip(_BOX + " ")
            if pipe:
                cols = [c.strip() for c in inner.split("|")]
                state["table"] = {"pipe": True, "cols": cols}
            else:
                unboxed = text.translate(_UNBOX)
                cols = [(c.group(0), c.start(), c.end()) for c in _CELL_RE.finditer(unboxed)]
                state["table"] = {"pipe": False, "cols": cols}
            claim(out, offset)
            return
        m = _RAY_TRIAL_RE.match(strip_log_prefix(s))
        if m:
            name = m.group("t")
            t = self._trial(state, name, offset, out)
            sub = ray_sub(name)
            claim(out, offset)
            if m.group("e"):
                t["status"] = "failed"
                out.status("failed", offset, error=s, sub=sub)
                return
            if m.group("c"):
                t["status"] = "completed"
                out.status("completed", offset, sub=sub)
            step = m.group("i") or m.group("c")
            kind = "config" if m.group("start") else "result"
            fresh = step is not None and int(step) != t["step"]
            if step is not None:
                t["step"] = int(step)
            state["block"] = {"kind": kind, "trial": name, "step": step, "pipe": None, "new": fresh}
            return
        m = _RAY_RESULT_FOR_RE.match(s)
        if m:
            self._trial(state, m.group("t"), offset, out)
            state["block"] = {"kind": "yaml", "trial": m.group("t"), "step": None, "rows": []}
            claim(out, offset)

    def _table_row(
        self, text: str, s: str, offset: int, ts: float | None, state: dict[str, Any], out: Emitter
    ) -> bool:
        table = state["table"]
        if not s or (s[0] in "╰+" and set(s) <= _RULE_CHARS):
            state["table"] = None
            return bool(s)
        if set(s) <= _RULE_CHARS:
            return True  # a rule line
        if s[0] not in "│|":
            state["table"] = None
            return False
        if table["pipe"]:
            cells = [c.strip() for c in s.strip(_BOX + " ").split("|")]
            row = dict(zip(table["cols"], cells, strict=False))
        else:
            row = _cells(text, table["cols"])
        name, status = row.get("Trial name"), row.get("status")
        if not name or status not in _RAY_ALL_STATUSES:
            return True
        claim(out, offset)
        cols = [c if isinstance(c, str) else c[0] for c in table["cols"]]
        split = next((i for i, c in enumerate(cols) if c in _RAY_METRIC_COLUMNS), len(cols))
        t = self._trial(state, name, offset, out)
        sub = ray_sub(name)
        if not t["params"]:
            for c in cols[2:split]:
                if c != "loc" and row.get(c, "") != "":
                    t["keys"].append(c.replace("/", "."))
                    out.param(t["keys"][-1], scalar(row[c]), offset, sub=sub)
            t["params"] = True
        step_text = row.get("iter")
        step = int(step_text) if step_text and step_text.isdigit() else None
        if step is not None and step != t["step"]:
            t["step"] = step
            for c in cols[split:]:
                num = to_number(row.get(c, ""))
                if c != "iter" and num is not None:
                    key = c if c.isidentifier() else re.sub(r"\W+", "_", c).strip("_")
                    out.metric(key, num, offset, step=step, ts=ts, sub=sub)
        final = _RAY_STATUSES.get(status)
        if final and t["status"] != final:
            t["status"] = final
            out.status(final, offset, sub=sub)
        return True

    def _block_line(
        self, text: str, s: str, offset: int, ts: float | None, state: dict[str, Any], out: Emitter
    ) -> bool:
        """Rows of a ``Trial X config`` / ``Trial X result`` table or a ``Result for X:`` block."""
        b = state["block"]
        sub = ray_sub(b["trial"])
        if b["kind"] == "yaml":
            if not s:
                self._yaml_done(b, offset, ts, state, out)
                return True
            b["rows"].append([text, offset])
            claim(out, offset)
            return True
        if not s:
            return True
        if s.startswith("Error file:"):
            claim(out, offset)
            return True
        if s[0] not in _BOX:
            state["block"] = None
            return False
        claim(out, offset)
        if s[0] == "╰" or (s[0] == "+" and b["pipe"] is not None):
            state["block"] = None
            return True
        inner = s.strip(_BOX + " ")
        parts = _COLS_SPLIT_RE.split(inner, maxsplit=1)
        if b["pipe"] is None:  # the first row names the table ("Trial X config")
            b["pipe"] = True
            return True
        if len(parts) != 2 or not parts[1]:
            return True
        key, value = parts[0].strip(), parts[1].strip()
        t = self._trial(state, b["trial"], offset, out)
        if b["kind"] == "config":
            key = key.replace("/", ".")
            if key not in t["keys"]:
                t["keys"].append(key)
                out.param(key, scalar(value), offset, sub=sub)
            t["params"] = True
            return True
        num = to_number(value)
        if num is not None and key not in _RAY_SKIP_KEYS and b["new"]:
            out.metric(key, num, offset, step=int(b["step"]), ts=ts, sub=sub)
        return True

    def _yaml_done(
        self, b: dict[str, Any], offset: int, ts: float | None, state: dict[str, Any], out: Emitter
    ) -> None:
        """The old ``Result for X:`` block: ``key: value`` lines, ``config:`` nested below."""
        state["block"] = None
        sub = ray_sub(b["trial"])
        t = self._trial(state, b["trial"], offset, out)
        values: dict[str, str] = {}
        params: list[tuple[str, str, int]] = []
        in_config = False
        for text, off in b["rows"]:
            m = BLOCK_KV_RE.match(text)
            if not m:
                continue
            indent = len(text) - len(text.lstrip())
            key, value = m.group("k"), m.group("v")
            if indent <= 2:
                in_config = key == "config" and not value
                if not in_config:
                    values[key] = value
            elif in_config and value:
                params.append((key, value, off))
        step = to_number(values.get("training_iteration", ""))
        if not t["params"]:
            for key, value, off in params:
                out.param(key, scalar(value), off, sub=sub)
            t["params"] = bool(params)
        if step is not None and int(step) != t["step"]:
            t["step"] = int(step)
            for key, value in values.items():
                num = to_number(value)
                if num is not None and key not in _RAY_SKIP_KEYS:
                    out.metric(key, num, offset, step=int(step), ts=ts, sub=sub)
        if values.get("done", "").lower() == "true" and t["status"] != "completed":
            t["status"] = "completed"
            out.status("completed", offset, sub=sub)


PARSERS = [RayTuneParser()]
