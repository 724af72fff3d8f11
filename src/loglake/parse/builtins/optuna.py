"""Hyperparameter searches: one log, many trials, each trial its own (sub-)run.

- **Optuna** logs one line per finished trial: ``Trial 3 finished with value: 0.95 and
  parameters: {...}. Best is trial 1 with value: 0.97.`` (the ``Best is`` suffix repeats an
  earlier trial's value and is ignored), ``Trial 7 pruned.``, ``Trial 5 failed with
  parameters: {...} because of the following error: ...``; multi-objective studies print
  ``values: [0.1, 0.2]`` (metrics ``values_0``, ``values_1``) or a dict of metric names.
- **Ray Tune** prints trial status tables (``Trial name | status | <params> | iter | ...``)
  and per-trial blocks (``Trial X started with configuration:``, ``Trial X completed after
  N iterations``, ``Result for X:``): see ``ray_tune.py``.
- **KerasTuner** prints ``Search: Running Trial #N``, a hyperparameter table and ``Trial N
  Complete``: see ``KerasTunerParser``.

A search's own summary (``Best trial: #13 value=0.9463 params={...}``) describes the parent
run: ``best_trial``, ``best_value`` and ``best_params.*`` params, never a trial's metric.
"""

from __future__ import annotations

import re
from typing import Any

from loglake.parse.base import BaseParser, LineBatch
from loglake.parse.prefilter import walk
from loglake.parse.records import Emitter
from loglake.parse.structured import find_closing, flatten, parse_mapping, split_top_level
from loglake.parse.timestamps import strip_log_prefix
from loglake.parse.trials import (
    BLOCK_KV_RE,
    KT_HINTS,
    OPTUNA_HINTS,
    claim,
    hinted_lines,
    line_ts,
    scalar,
    trial_sub,
)
from loglake.parse.values import NUMBER, normalize_key, to_number

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
        candidates = hinted_lines(batch, OPTUNA_HINTS)

        def picks() -> list[int] | None:
            return candidates if state["best"] is None else None

        for i in walk(len(texts), picks):
            text = texts[i]
            offset = batch.offsets[i]
            try:
                self._line(text, offset, line_ts(batch, i, text), state, out)
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
            claim(out, offset)
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
        claim(out, offset)
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
            claim(out, offset)
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
            claim(out, offset)
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
        m = BLOCK_KV_RE.match(text)
        if m:
            key, value = m.group("k"), m.group("v")
            if key.lower() in ("params", "parameters", "hyperparameters") and not value:
                state["best"] = "params"
            elif key.lower() == "number" and value.isdigit():
                out.param("best_trial", int(value), offset)
            elif state["best"] == "params" and value:
                out.param(f"best_params.{key}", scalar(value), offset)
            claim(out, offset)
        return True


# -- KerasTuner ----------------------------------------------------------------------------

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
        candidates = hinted_lines(batch, KT_HINTS)

        def picks() -> list[int] | None:
            idle = not state["table"] and state["objective"] is None
            return candidates if idle else None

        for i in walk(len(texts), picks):
            text = texts[i]
            try:
                self._line(text.strip(), batch.offsets[i], line_ts(batch, i, text), state, out)
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
                out.param(m.group("k"), scalar(m.group("v")), offset, sub=trial_sub(state["trial"]))
                return
            if not m:
                state["table"] = False
        m = _KT_RUNNING_RE.match(s)
        if m:
            n = int(m.group("n"))
            state["trial"] = n
            out.subrun(trial_sub(n), offset, name=trial_sub(n))
            out.fact("framework", "keras_tuner", offset)
            claim(out, offset)
            return
        if _KT_HEADER_RE.match(s):
            state["table"] = True
            claim(out, offset)
            return
        m = _KT_DONE_RE.match(s)
        if m:
            n = int(m.group("n"))
            out.subrun(trial_sub(n), offset, name=trial_sub(n))
            out.status("completed", offset, sub=trial_sub(n))
            state["objective"] = state["done"] = n
            claim(out, offset)
            return
        if _KT_CHATTER_RE.match(s):
            claim(out, offset)


PARSERS = [OptunaParser(), KerasTunerParser()]
