"""Hyperparameter searches: one log, many trials, each trial its own (sub-)run.

- **Optuna** logs one line per finished trial: ``Trial 3 finished with value: 0.95 and
  parameters: {...}. Best is trial 1 with value: 0.97.`` (the ``Best is`` suffix repeats an
  earlier trial's value and is ignored), ``Trial 7 pruned.``, ``Trial 5 failed with
  parameters: {...} because of the following error: ...``; multi-objective studies print
  ``values: [0.1, 0.2]`` (metrics ``values_0``, ``values_1``) or a dict of metric names.
- **Ray Tune** prints trial status tables (``Trial name | status | <params> | iter | ...``)
  and per-trial blocks (``Trial X started with configuration:``, ``Trial X completed after
  N iterations``, ``Result for X:``): see ``RayTuneParser``.
- **KerasTuner** prints ``Search: Running Trial #N``, a hyperparameter table and ``Trial N
  Complete``: see ``KerasTunerParser``.

A search's own summary (``Best trial: #13 value=0.9463 params={...}``) describes the parent
run: ``best_trial``, ``best_value`` and ``best_params.*`` params, never a trial's metric.
"""

from __future__ import annotations

import re
from typing import Any

from loglake.parse.base import BaseParser, LineBatch
from loglake.parse.prefilter import any_literal, walk
from loglake.parse.records import Emitter
from loglake.parse.structured import find_closing, flatten, parse_mapping, split_top_level
from loglake.parse.timestamps import leading_timestamp, strip_log_prefix
from loglake.parse.values import NUMBER, normalize_key, to_number

_HINTS = ("Trial", "tudy", "Best")
_TRIAL_RE = re.compile(
    r"\bTrial (?P<n>\d+) (?P<what>finished(?= with values?: )|pruned(?=\.)|failed(?= with|,| because))"
)
_STUDY_RE = re.compile(
    r"A new study created (?:in memory|in RDB) with name: (?P<a>\S+)"
    r"|Using an existing study with name '(?P<b>[^']+)'"
)
_VALUE_RE = re.compile(r" with (?P<kw>values?): ")
_BECAUSE_RE = re.compile(r"because of the following error: (?P<e>.*?)\.?\s*$|, because (?P<r>.+)")
_BEST_RE = re.compile(
    rf"^\W*Best trial\b[\s:#]*(?:number\s*[:=]?\s*)?#?(?P<n>\d+)?"
    rf"(?:.*?\bvalues?\s*[:=]\s*(?P<v>{NUMBER}))?(?:.*?\bparams\s*[:=]\s*(?P<p>\{{.*\}}))?"
)
# Ray's tutorials: "Best trial config: {...}", "Best trial final validation loss: 1.2345"
_BEST_CONFIG_RE = re.compile(r"^\W*Best trial config\s*[:=]\s*(?P<p>\{.*\})")
_BEST_LABELLED_RE = re.compile(
    rf"^\W*Best trial (?P<k>[A-Za-z][\w .-]{{0,60}}?)\s*[:=]\s*(?P<v>{NUMBER})$"
)
_BEST_VALUE_RE = re.compile(rf"^\W*Best (?:value|score|objective)\s*[:=]\s*(?P<v>{NUMBER})\s*$")
_BEST_PARAMS_RE = re.compile(
    r"^\W*Best (?:params|parameters|hyperparameters)\s*[:=]\s*(?P<p>\{.*\})"
)
_BLOCK_VALUE_RE = re.compile(rf"^\s+Values?\s*:\s*(?P<v>{NUMBER})\s*$")
_BLOCK_KV_RE = re.compile(r"^\s+(?P<k>[\w.\-/]+)\s*:\s*(?P<v>.*?)\s*$")


def trial_sub(number: int | str) -> str:
    """The sub-run name of a search trial: ``trial-3``."""
    return f"trial-{number}"


def _ts(batch: LineBatch, i: int, text: str) -> float | None:
    t = batch.ts[i] if batch.ts is not None else None
    return t if t is not None else leading_timestamp(text)[0]


def _claim(out: Emitter, offset: int) -> None:
    if out.claim_lines:
        out.claimed.add(offset)


def _scalar(text: str) -> Any:
    """A value as printed in a table or ``key: value`` line: a number when it is one."""
    num = to_number(text)
    if num is not None and not text.strip().lower().startswith(("nan", "inf", "+", "-i")):
        return int(num) if re.fullmatch(r"-?\d+", text.strip()) else num
    return text.strip().strip("'\"")


class OptunaParser(BaseParser):
    """Optuna's trial lines: one sub-run per trial with its params, value(s) and state."""

    name = "optuna"
    version = "1"
    priority = 30

    def new_state(self) -> dict[str, Any]:
        # study: the study name; best: inside a multi-line "Best trial:" summary
        return {"study": None, "best": None}

    def parse(self, batch: LineBatch, state: dict[str, Any], out: Emitter) -> None:
        texts = batch.texts
        candidates = batch.matching(_TUNERS, any_literal(_HINTS))

        def picks() -> list[int] | None:
            return candidates if state["best"] is None else None

        for i in walk(len(texts), picks):
            text = texts[i]
            offset = batch.offsets[i]
            try:
                self._line(text, offset, _ts(batch, i, text), state, out)
            except Exception as e:  # noqa: BLE001 - one odd line must not stop the file
                out.error(offset, f"optuna: {type(e).__name__}: {e}", text)

    def _line(
        self, text: str, offset: int, ts: float | None, state: dict[str, Any], out: Emitter
    ) -> None:
        if state["best"] is not None and self._best_block(text, offset, state, out):
            return
        m = _STUDY_RE.search(text)
        if m:
            state["study"] = m.group("a") or m.group("b")
            out.fact("framework", "optuna", offset)
            _claim(out, offset)
            return
        m = _TRIAL_RE.search(text)
        if m:
            self._trial(text, m, offset, ts, state, out)
            return
        self._best(strip_log_prefix(text), offset, state, out)

    def _trial(
        self,
        text: str,
        m: re.Match[str],
        offset: int,
        ts: float | None,
        state: dict[str, Any],
        out: Emitter,
    ) -> None:
        n = int(m.group("n"))
        sub = trial_sub(n)
        out.subrun(sub, offset, name=sub, experiment=state["study"])
        _claim(out, offset)
        what, rest = m.group("what"), text[m.end() :]
        if what == "pruned":
            reason = rest.strip(" .") or None
            out.status("pruned", offset, reason=reason, sub=sub)
            return
        params = self._params(rest)
        for key, value in params:
            out.param(key, value, offset, sub=sub)
        if what == "failed":
            # "failed with value None." follows the line with the reason; it adds nothing
            b = _BECAUSE_RE.search(rest)
            error = (b.group("e") or b.group("r")).strip() if b else None
            out.status("failed", offset, error=error or None, sub=sub)
            return
        vm = _VALUE_RE.match(rest)
        if vm is None:
            return
        start = vm.end()
        end = rest.find(" and parameters: ", start)
        value_text = rest[start : end if end >= 0 else len(rest)].strip().rstrip(".")
        for key, value in self._values(vm.group("kw"), value_text):
            out.metric(key, value, offset, step=n, ts=ts, sub=sub)
        out.status("completed", offset, sub=sub)

    @staticmethod
    def _params(rest: str) -> list[tuple[str, Any]]:
        at = rest.find("parameters: {")
        if at < 0:
            return []
        open_at = at + len("parameters: ")
        close = find_closing(rest, open_at)
        mapping = parse_mapping(rest[open_at : close + 1]) if close > 0 else None
        return flatten(mapping, ".") if mapping else []

    @staticmethod
    def _values(kw: str, text: str) -> list[tuple[str, float]]:
        """``value: 0.9`` → value; ``values: [0.1, 0.2]`` → values_0, values_1; a dict of
        metric names (studies with ``metric_names``) → those names."""
        if text.startswith("{"):
            mapping = parse_mapping(text) or {}
            return [(str(k), float(v)) for k, v in mapping.items() if to_number(str(v)) is not None]
        if text.startswith("["):
            items = split_top_level(text[1:-1])
            nums = [to_number(x) for x in items]
            return [(f"{kw}_{i}", v) for i, v in enumerate(nums) if v is not None]
        num = to_number(text)
        return [(kw, num)] if num is not None else []

    # -- the search's summary ---------------------------------------------------------------

    def _best(self, msg: str, offset: int, state: dict[str, Any], out: Emitter) -> None:
        m = _BEST_CONFIG_RE.match(msg)
        if m:
            for k, v in flatten(parse_mapping(m.group("p")) or {}, "."):
                out.param(f"best_params.{k}", v, offset)
            _claim(out, offset)
            return
        m = _BEST_LABELLED_RE.match(msg)
        if m and m.group("k").split()[0] not in ("trial", "number", "value", "values"):
            out.param(f"best_{normalize_key(m.group('k'))}", float(m.group("v")), offset)
            return
        m = _BEST_RE.match(msg)
        if m and "so far" not in msg.lower() and "Current best" not in msg:
            got = False
            if m.group("n"):
                out.param("best_trial", int(m.group("n")), offset)
                got = True
            if m.group("v"):
                out.param("best_value", float(m.group("v")), offset)
                got = True
            if m.group("p"):
                for k, v in flatten(parse_mapping(m.group("p")) or {}, "."):
                    out.param(f"best_params.{k}", v, offset)
                got = True
            if not got and msg.rstrip().endswith(":"):
                state["best"] = "top"  # Optuna's examples: "Best trial:" then indented lines
            _claim(out, offset)
            return
        m = _BEST_VALUE_RE.match(msg)
        if m:
            out.param("best_value", float(m.group("v")), offset)
            return
        m = _BEST_PARAMS_RE.match(msg)
        if m:
            for k, v in flatten(parse_mapping(m.group("p")) or {}, "."):
                out.param(f"best_params.{k}", v, offset)

    def _best_block(self, text: str, offset: int, state: dict[str, Any], out: Emitter) -> bool:
        """``Best trial:`` / ``  Value: 0.9`` / ``  Params:`` / ``    x: 1.0``."""
        if not text.strip():
            return True
        if not text.startswith((" ", "\t")):
            state["best"] = None
            return False
        m = _BLOCK_VALUE_RE.match(text)
        if m:
            out.param("best_value", float(m.group("v")), offset)
            return True
        m = _BLOCK_KV_RE.match(text)
        if m:
            key, value = m.group("k"), m.group("v")
            if key.lower() in ("params", "parameters", "hyperparameters") and not value:
                state["best"] = "params"
            elif key.lower() == "number" and value.isdigit():
                out.param("best_trial", int(value), offset)
            elif state["best"] == "params" and value:
                out.param(f"best_params.{key}", _scalar(value), offset)
            _claim(out, offset)
        return True


# -- Ray Tune ------------------------------------------------------------------------------

_RAY_HINTS = ("Trial", "Result for", "experiment", "Result logdir")
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
        candidates = batch.matching(_TUNERS, any_literal(_RAY_HINTS))

        def picks() -> list[int] | None:
            idle = state["table"] is None and state["block"] is None
            return candidates if idle else None

        for i in walk(len(texts), picks):
            text = texts[i]
            try:
                self._line(text, batch.offsets[i], _ts(batch, i, text), state, out)
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
            _claim(out, offset)
            return
        m = _RAY_TRIAL_RE.match(strip_log_prefix(s))
        if m:
            name = m.group("t")
            t = self._trial(state, name, offset, out)
            sub = ray_sub(name)
            _claim(out, offset)
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
            _claim(out, offset)

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
        _claim(out, offset)
        cols = [c if isinstance(c, str) else c[0] for c in table["cols"]]
        split = next((i for i, c in enumerate(cols) if c in _RAY_METRIC_COLUMNS), len(cols))
        t = self._trial(state, name, offset, out)
        sub = ray_sub(name)
        if not t["params"]:
            for c in cols[2:split]:
                if c != "loc" and row.get(c, "") != "":
                    t["keys"].append(c.replace("/", "."))
                    out.param(t["keys"][-1], _scalar(row[c]), offset, sub=sub)
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
            _claim(out, offset)
            return True
        if not s:
            return True
        if s.startswith("Error file:"):
            _claim(out, offset)
            return True
        if s[0] not in _BOX:
            state["block"] = None
            return False
        _claim(out, offset)
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
                out.param(key, _scalar(value), offset, sub=sub)
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
            m = _BLOCK_KV_RE.match(text)
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
                out.param(key, _scalar(value), off, sub=sub)
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


# -- KerasTuner ----------------------------------------------------------------------------

_KT_HINTS = ("Trial", "So Far", "elapsed")
# The three tuners' hints as one prefilter: one RE2 pass over a batch serves all three
# parsers, each then matches its own hints among the few lines it kept.
_TUNERS = any_literal(_HINTS + _RAY_HINTS + _KT_HINTS)
_KT_RUNNING_RE = re.compile(r"^Search: Running Trial #(?P<n>\d+)")
_KT_HEADER_RE = re.compile(r"^Value\s*\|Best Value So Far\s*\|Hyperparameter\s*$")
_KT_ROW_RE = re.compile(r"^(?P<v>\S.*?)\s*\|(?P<best>[^|]*)\|(?P<k>[\w./-]+)\s*$")
_KT_DONE_RE = re.compile(r"^Trial (?P<n>\d+) Complete \[")
_KT_OBJECTIVE_RE = re.compile(rf"^(?P<k>[\w./-]+): (?P<v>{NUMBER})\s*$")
_KT_CHATTER_RE = re.compile(r"^(?:Best \S+ So Far: |Total elapsed time: )")


class KerasTunerParser(BaseParser):
    """KerasTuner's search output: each trial's hyperparameters, objective and completion."""

    name = "keras_tuner"
    version = "1"
    priority = 30

    def new_state(self) -> dict[str, Any]:
        # trial: the trial running now; table: reading its hyperparameter table;
        # objective: trial number whose objective line comes next; done: last one completed
        return {"trial": None, "table": False, "objective": None, "done": None}

    def finalize(self, state: dict[str, Any], out: Emitter, *, idle: bool) -> None:
        n = state["trial"]
        if n is not None and n != state["done"]:
            status = "killed" if idle else "running"
            out.status(
                status, 0, reason="log stopped mid-trial" if idle else None, sub=trial_sub(n)
            )

    def parse(self, batch: LineBatch, state: dict[str, Any], out: Emitter) -> None:
        texts = batch.texts
        candidates = batch.matching(_TUNERS, any_literal(_KT_HINTS))

        def picks() -> list[int] | None:
            idle = not state["table"] and state["objective"] is None
            return candidates if idle else None

        for i in walk(len(texts), picks):
            text = texts[i]
            try:
                self._line(text.strip(), batch.offsets[i], _ts(batch, i, text), state, out)
            except Exception as e:  # noqa: BLE001 - one odd line must not stop the file
                state["table"] = False
                out.error(batch.offsets[i], f"keras_tuner: {type(e).__name__}: {e}", text)

    def _line(
        self, s: str, offset: int, ts: float | None, state: dict[str, Any], out: Emitter
    ) -> None:
        if state["objective"] is not None and s:
            n = state["objective"]
            state["objective"] = None
            m = _KT_OBJECTIVE_RE.match(s)
            if m:
                out.metric(m.group("k"), float(m.group("v")), offset, step=n, ts=ts,
                           sub=trial_sub(n))  # fmt: skip
                return
        if state["table"]:
            m = _KT_ROW_RE.match(s)
            if m and state["trial"] is not None:
                out.param(
                    m.group("k"), _scalar(m.group("v")), offset, sub=trial_sub(state["trial"])
                )
                return
            if not m:
                state["table"] = False
        m = _KT_RUNNING_RE.match(s)
        if m:
            n = int(m.group("n"))
            state["trial"] = n
            out.subrun(trial_sub(n), offset, name=trial_sub(n))
            out.fact("framework", "keras_tuner", offset)
            _claim(out, offset)
            return
        if _KT_HEADER_RE.match(s):
            state["table"] = True
            _claim(out, offset)
            return
        m = _KT_DONE_RE.match(s)
        if m:
            n = int(m.group("n"))
            out.subrun(trial_sub(n), offset, name=trial_sub(n))
            out.status("completed", offset, sub=trial_sub(n))
            state["objective"] = state["done"] = n
            _claim(out, offset)
            return
        if _KT_CHATTER_RE.match(s):
            _claim(out, offset)


PARSERS = [OptunaParser(), RayTuneParser(), KerasTunerParser()]
