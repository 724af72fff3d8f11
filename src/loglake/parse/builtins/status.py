"""How a run ended, read from its log: crashes, scheduler kills, completion markers, and
whether a log that just stopped stopped mid-loop or after a clean end.

The parser reports observations; the run's status is resolved from them elsewhere (the
last decisive one by offset, else the end-of-file verdict from ``finalize``).

A Python traceback is a *soft* failure: libraries log handled exceptions with their
traceback and carry on, so it is held until the end of the file and dropped when training
visibly resumes after it. What only a dying job prints (the scheduler cancelling it,
torchrun's ``ChildFailedError``, a non-zero exit status, a C++ abort, a segfault) is
reported at once.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from typing import Any

from loglake.parse.base import BaseParser, LineBatch
from loglake.parse.builtins.generic_metrics import CANDIDATES as METRIC_CANDIDATES
from loglake.parse.failures import (
    EXC_RE,
    MAX_ERROR_CHARS,
    NCCL_FATAL_PATTERN,
    OOM_PATTERN,
    SEGFAULT,
    State,
    decide,
    exception_line,
    failure_markers,
    failure_reason,
)
from loglake.parse.hints import HintFilter
from loglake.parse.loop_lines import (
    EPOCH_FRAC_RE,
    EPOCH_HEAD_RE,
    TrainingLines,
    bar,
    fraction,
    is_training,
    read_tail,
    split_rank_prefix,
)
from loglake.parse.prefilter import WS, any_literal
from loglake.parse.records import Emitter
from loglake.parse.timestamps import strip_log_prefix
from loglake.parse.traceback_runs import (
    AFTER_LINES,
    FRAME_START,
    RESUMED_LINES,
    TB_HEAD,
    after_end,
    chained,
    frames_end,
    only_after,
    record_starts,
    resumes,
)

KILLED = "log stopped mid-stream"
CLEAN_END = "clean end"

# -- tracebacks ------------------------------------------------------------------------------

# Python prints _IGNORED_HEADS (below) before tracebacks that do not end the process
# (shutdown noise, a worker thread dying): the job's fate is told elsewhere.
_LOG_WORDS = frozenset(
    {"INFO", "WARNING", "WARN", "ERROR", "DEBUG", "CRITICAL", "FATAL", "NOTE", "TRACE", "Epoch"}
)
_CHILD_FIELD_RE = re.compile(r"(?P<k>time|host|rank|exitcode|error_file|traceback)\s*:\s*(?P<v>.*)")
_EXITCODE_NUM_RE = re.compile(r"-?\d+")

# -- completion markers ----------------------------------------------------------------------

_DONE_RES = (
    re.compile(r"`?Trainer\.fit`? stopped: "),  # Lightning
    re.compile(r"\*{5} train metrics \*{5}"),  # HF example scripts, after training
    re.compile(r"^\W*Best trial\b(?!.*\bso far\b)"),  # a search's final summary
    re.compile(r"Total training time: |Overall training speed: "),  # detectron2
    re.compile(r"\b\d+ epochs? completed in \d"),  # ultralytics
    re.compile(r"^\*\*\* Best metric: "),  # timm
    re.compile(
        r"(?i)\b(?:(?:training|train)\s+(?:is\s+|has\s+|was\s+)?(?:complete|completed|finished|"
        r"done|ended)|(?:finished|done|completed|ended)\s+training)\b"
        r"(?=\s*(?:$|[.!,;:(\-]|in\b|after\b|at\b|took\b|successfully\b|with\b|on\b))"
    ),
)
_NOT_DONE_RE = re.compile(r"(?i)\b(?:epoch|step|iteration|iter|fold|stage|phase|batch)\b")
_HF_SUMMARY_RE = re.compile(r"""['"]train_runtime['"]\s*:|TrainOutput\(""")

# Every line that can matter to a marker holds one of these; plain substring tests reject
# the rest faster than any one regex (sre tries every alternative at every position).
_HINT_WORDS = (
    "ory|OOM|oom|CANCEL|State|xit| code |NCCL|Killed|fault|Abort|Terminated|core dumped|Illegal|"
    "Hangup|Bus error|Floating point|Trace/|Fatal|Error executing|Exception in|panic|Interrupt|reempt|PREEMPT|"
    "SIGTERM|death signal|eque|Reporting training|ChildFailed|Trainer.fit|rain_runtime|"
    "rain metrics|TrainOutput|Best |l training|completed in|raining|pot in|srun|terminate called|"
    "oss is|return code"
)
_HINTS = HintFilter(tuple(_HINT_WORDS.split("|")))

# Prefilter (loglake.parse.prefilter): outside a traceback, a torchrun report or a pending
# failure, only lines holding a marker hint, a traceback head, an ignored-traceback head or
# a Keras ``Epoch k/N`` header can change anything; before any training output, also
# declared loop lengths (``_TOTAL_RE``); after a last Keras epoch header, lines with ``/``.
_IGNORED_HEADS = ("Exception ignored in", "Error in atexit._run_exitfuncs", "Exception in thread T")
# "ory", "NCCL" and "fault" stand for the out-of-memory, NCCL-failure and segfault wordings;
# as plain hints they pass every "Memory allocated", "NCCL backend" and "default" line
# (nvidia-smi prints "Default" on every GPU row), so here those wordings themselves are the
# pattern.
_NARROWED = ("ory", "NCCL", "fault")
_CANDIDATES = "|".join(
    (
        any_literal(
            (
                *(h for h in _HINT_WORDS.split("|") if h not in _NARROWED),
                TB_HEAD,
                *_IGNORED_HEADS,
                "Epoch ",
            )
        ),
        f"(?i:{OOM_PATTERN})",
        NCCL_FATAL_PATTERN,
        SEGFAULT,
    )
)
_TOTAL_CANDIDATES = rf"(?i:round|estimators|epochs|steps|iters|iter|iterations)['\"]?{WS}*[:=]"
_MODES = {
    "markers": _CANDIDATES,
    "totals": f"{_CANDIDATES}|{_TOTAL_CANDIDATES}",
    "keras end": f"{_CANDIDATES}|/|{_TOTAL_CANDIDATES}",
}

# -- the loop and the tail -------------------------------------------------------------------

_TOTAL_RE = re.compile(
    r"(?i)\b(?P<k>num_boost_round|n_estimators|max_epochs|num_train_epochs|num_epochs|n_epochs|"
    r"epochs|max_steps|total_steps|max_iter|max_iters|num_iterations|n_iter|total_iters|"
    r"train_iters|num_steps|max_iterations|Num Epochs|Total optimization steps)['\"]?\s*[:=]\s*"
    r"['\"]?(?P<n>\d[\d,]*)\b"
)


class StatusParser(BaseParser):
    """Status observations for the run: failed / completed markers and the end verdict."""

    name = "status"
    version = "1"
    priority = 95

    def new_state(self) -> dict[str, Any]:
        return {
            "tb": {},  # open tracebacks by rank prefix: {"p": phase, "n": lines in phase}
            "pending": None,  # [offset, error, reason]: a traceback, reported at the end
            "resumed": 0,  # training lines seen since the pending traceback
            "child": None,  # torchrun's ChildFailedError report being read
            "terminate": None,  # [offset, exception type] of a C++ abort awaiting what()
            "cancel_wrap": None,  # offset of a Slurm CANCELLED line wrapped before "DUE TO"
            "epoch": None,  # [k, N] of the last Keras-style "Epoch k/N" header
            "keras_done": -1,  # offset of the header whose final bar was reported
            "oom": False,  # out-of-memory wording seen (explains a later SIGKILL)
            "spot": False,  # preemption wording seen (explains a later SIGTERM)
            "exit0": -1,  # offset of an "exit code 0" line
            "totals": {},  # declared loop lengths: {"epoch": N, "step": M}
            "data": False,  # any training output seen
            "last": None,  # [kind, offset, reached] of the log's last meaningful line
            "decided": None,  # offset of the last failed/completed observation reported
            "root_error": None,  # the last exception line, for a launcher's failure report
            "ignored": False,  # the last line announced a traceback Python ignores
        }

    def parse(self, batch: LineBatch, state: State, out: Emitter) -> None:
        """Read the lines that can matter in order, as if every line were read.

        Outside a traceback (or another multi-line report) only the prefilter's candidates
        can change anything, except while a traceback is pending: then any line may be the
        training that forgives it, and the lines between candidates are asked only that
        (``resumes``). Inside a traceback every line is read, its frames in a tight loop,
        the few lines after its message that only count towards forgetting it in another
        (``after_end``), the others without the markers when they are no candidates.
        """
        texts, offsets = batch.texts, batch.offsets
        st = state
        n = len(texts)
        lists: dict[str, list[int]] = {}
        training = TrainingLines(batch, METRIC_CANDIDATES)  # that parser's pass, shared
        i = 0
        while i < n:
            mode = self._mode(st)
            got = lists.get(mode)
            if got is None:
                got = lists[mode] = batch.matching(_MODES[mode])
            k = bisect_left(got, i)
            nxt = got[k] if k < len(got) else n
            if self._reads_every_line(st):
                tb = st["tb"].get("")
                if tb is not None and tb["p"] == "frames":
                    j = frames_end(texts, i)
                    if j > i:  # what _line does to each: count it, end "ignored"
                        tb["n"] += j - i
                        st["ignored"] = False
                        i = j
                        continue
                elif tb is not None and tb["p"] == "after" and only_after(st):
                    j = after_end(batch, i, nxt, tb, training, st, out)
                    if j > i:
                        i = j
                        continue
                self._read(batch, i, st, out, trainable=i in training, marked=nxt == i)
                i += 1
                continue
            if st["pending"] is not None:
                resumes(batch, i, nxt, training, st, out)
            if nxt == n:
                break
            self._read(batch, nxt, st, out, trainable=nxt in training, marked=True)
            i = nxt + 1
        if texts and out.last_metric_offset >= offsets[0]:
            state["data"] = True
        read_tail(batch, state)

    @staticmethod
    def _reads_every_line(st: State) -> bool:
        return bool(
            st["tb"]
            or st["ignored"]
            or st["child"] is not None
            or st["cancel_wrap"] is not None
            or st["terminate"] is not None
        )

    @staticmethod
    def _mode(st: State) -> str:
        epoch = st["epoch"]
        if epoch is not None and epoch[0] == epoch[1] and st["keras_done"] < 0:
            return "keras end"
        if not st["data"]:
            return "totals"
        return "markers"

    def _read(
        self, batch: LineBatch, i: int, st: State, out: Emitter, *, trainable: bool, marked: bool
    ) -> None:
        text, offset = batch.texts[i], batch.offsets[i]
        try:
            self._line(text, offset, st, out, trainable=trainable, marked=marked)
        except Exception as e:  # noqa: BLE001 - one odd line must not stop the file
            out.error(offset, f"status: {type(e).__name__}: {e}", text)

    def finalize(self, state: State, out: Emitter, *, idle: bool) -> None:
        if state["child"] is not None:
            self._child_done(state["child"]["o"], state, out)
        if not idle:
            out.status("running", max(self._end_offset(state), 0))
            return
        pending = state["pending"]
        if pending is not None:
            out.status("failed", pending[0], error=pending[1], reason=pending[2])
            return
        if state["decided"] is not None:
            return  # a marker already told how the run ended; a verdict must not override it
        last = state["last"]
        offset = max(self._end_offset(state), 0)
        if not state["data"] or last is None:
            out.status("unknown", offset)
        elif state["exit0"] >= last[1]:
            out.status("completed", state["exit0"], reason="exit code 0")
        elif last[0] == "loop" and not last[2]:
            out.status("killed", offset, reason=KILLED)
        else:
            out.status("completed", offset, reason=CLEAN_END)

    @staticmethod
    def _end_offset(state: State) -> int:
        last = state["last"]
        return last[1] if last else -1

    # -- one line ----------------------------------------------------------------------------

    def _line(
        self,
        text: str,
        offset: int,
        st: State,
        out: Emitter,
        *,
        trainable: bool = True,
        marked: bool = True,
    ) -> None:
        """Read one line. What the prefilters know spares work: ``trainable=False``, the
        line is none classify() reads as training (``TrainingLines``); ``marked=False``, it
        is no candidate of the state's prefilter mode, so no marker (while no failure
        report awaits its next line) can match it."""
        if not text or text.isspace():
            for tb in st["tb"].values():
                if tb["p"] == "msg":
                    tb["p"], tb["n"] = "after", 0
            return
        prefix, body = split_rank_prefix(text)
        if body.startswith(_IGNORED_HEADS):
            st["ignored"] = True
            return
        ignored, st["ignored"] = st["ignored"], False
        if TB_HEAD in body:
            head = body.rstrip()
            if head.endswith((":", "╮", TB_HEAD)):
                st["tb"][prefix] = {"p": "frames", "n": 0, "ignored": ignored}
                return
        tb = st["tb"].get(prefix)
        if tb is not None and self._traceback_line(body, offset, prefix, tb, st, trainable):
            return
        if st["child"] is not None and self._child_line(body.strip(), offset, st, out):
            return
        # Training resumed after a traceback: a line a specific parser read (it claimed it)
        # or one that looks like the loop.
        if st["pending"] is not None and (
            out.is_claimed(offset) or (trainable and is_training(body, st))
        ):
            st["resumed"] += 1
            if st["resumed"] >= RESUMED_LINES:
                st["pending"] = None
        if marked or st["cancel_wrap"] is not None or st["terminate"] is not None:
            self._markers(body, offset, st, out)

    def _traceback_line(
        self, body: str, offset: int, prefix: str, tb: State, st: State, trainable: bool
    ) -> bool:
        """Feed a line to an open traceback; True when the traceback consumed it."""
        tb["n"] += 1
        phase = tb["p"]
        s = body.strip()
        if phase == "frames":
            if body.startswith(FRAME_START) or s.startswith(("[Previous line", 'File "')):
                return True
            m = EXC_RE.fullmatch(s)
            if m and m.group("name") not in _LOG_WORDS:
                tb["p"], tb["n"] = "msg", 0
                if tb.get("ignored"):
                    return True  # "Exception ignored in: ..." at shutdown: not the job failing
                if exception_line(s, m.group("name"), offset, st):
                    tb["p"] = "after"  # torchrun's report follows: read by _child_line
                return True
            if tb["n"] > 50:
                del st["tb"][prefix]
            return False  # a line interleaved from elsewhere
        if chained(s):
            tb["p"], tb["n"] = "chain", 0
            return True
        if phase == "msg":
            # The exception message may go on over several lines until a new record starts.
            if (
                tb["n"] <= 200
                and not record_starts(body)
                and not _HINTS(body)
                and not (trainable and is_training(body, st))
            ):
                pending = st["pending"]
                first = tb["n"] == 1 and pending and pending[0] == tb.get("o")
                if first and s and pending[1].endswith(":"):  # "Error: bad config:\n  key x"
                    pending[1] = f"{pending[1]} {s}"[:MAX_ERROR_CHARS]
                return True
            tb["p"], tb["n"] = "after", 0
            return False
        if tb["n"] > AFTER_LINES:
            del st["tb"][prefix]
        return phase == "chain"

    def _child_line(self, s: str, offset: int, st: State, out: Emitter) -> bool:
        """torchrun's report after ChildFailedError: which rank failed, how."""
        c = st["child"]
        if s.startswith(("===", "---")):
            if s.startswith("===") and c["root"]:
                self._child_done(offset, st, out)
            return True
        if s.endswith(" FAILED") and c["script"] is None:
            c["script"] = s[: -len(" FAILED")]
            return True
        if s.startswith("Root Cause"):
            c["root"] = True
            c["fields"] = {}
            return True
        m = _CHILD_FIELD_RE.fullmatch(s)
        if m:
            if c["root"] or not c["fields"].get("done"):
                c["fields"][m.group("k")] = m.group("v").strip()
            return True
        if s in ("Failures:", "<NO_OTHER_FAILURES>") or re.fullmatch(r"\[\d+\]:", s):
            c["fields"]["done"] = bool(c["fields"]) and not c["root"]
            return True
        self._child_done(offset, st, out)
        return False

    def _child_done(self, offset: int, st: State, out: Emitter) -> None:
        c = st["child"]
        st["child"] = None
        f = c["fields"]
        code_m = _EXITCODE_NUM_RE.match(f.get("exitcode", ""))
        code = int(code_m.group(0)) if code_m else None
        error = c["err"]
        if not error:
            what = [f"{c['script'] or 'worker'} FAILED"]
            if f.get("rank"):
                what.append(f"rank {f['rank'].split(' ')[0]}")
            if code is not None:
                what.append(f"exitcode {code}")
            trace = f.get("traceback", "")
            if trace and not trace.startswith("To enable traceback"):
                what.append(trace)
            error = "ChildFailedError: " + ", ".join(what)
        reason = failure_reason(error)
        if reason is None and code in (-9, 137) and st["oom"]:
            reason = "out_of_memory"
        decide(st, out, "failed", offset, error=error[:MAX_ERROR_CHARS], reason=reason)

    # -- markers -----------------------------------------------------------------------------

    def _markers(self, body: str, offset: int, st: State, out: Emitter) -> None:
        if not st["data"] and ("=" in body or ":" in body):
            m = _TOTAL_RE.search(body)
            if m:
                kind = "epoch" if "poch" in m.group("k") else "step"
                st["totals"][kind] = int(m.group("n").replace(",", ""))
        epoch = st["epoch"]
        lead = body.lstrip()
        if (lead.startswith("Epoch ") and "/" in lead[:16]) or (
            epoch and epoch[0] == epoch[1] and st["keras_done"] < 0 and "/" in body
        ):
            self._keras(lead, offset, st, out)
        idle = st["cancel_wrap"] is None and st["terminate"] is None
        if idle and not _HINTS(body):
            return
        if failure_markers(body, offset, st, out):
            return
        self._completion_markers(body, offset, st, out)

    def _completion_markers(self, body: str, offset: int, st: State, out: Emitter) -> None:
        if ("train_runtime" in body or "TrainOutput(" in body) and _HF_SUMMARY_RE.search(body):
            decide(st, out, "completed", offset, reason="training summary")
            return
        msg = strip_log_prefix(body.strip())
        for i, rx in enumerate(_DONE_RES):
            if rx.search(msg):
                if i == len(_DONE_RES) - 1 and _NOT_DONE_RE.search(msg):
                    return  # "training finished for epoch 3" is not the end
                decide(st, out, "completed", offset, reason=msg[:120])
                return

    def _keras(self, body: str, offset: int, st: State, out: Emitter) -> None:
        """``Epoch N/N`` followed by that epoch's full bar: the fit loop reached its end."""
        msg = body.strip()
        m = EPOCH_HEAD_RE.match(msg)
        if m:
            st["epoch"] = [int(m.group("k")), int(m.group("n"))]
            return
        got = bar(msg)
        if got is None or got[0] != got[1] or got[1] == 0:
            return
        epoch = fraction(EPOCH_FRAC_RE, msg) or st["epoch"]
        if epoch and epoch[0] == epoch[1] and st["keras_done"] < 0:
            st["keras_done"] = offset
            decide(st, out, "completed", offset, reason=f"final epoch {epoch[0]}/{epoch[1]} done")


PARSERS = [StatusParser()]
