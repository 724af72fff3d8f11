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
from typing import Any

from loglake.parse.base import BaseParser, LineBatch
from loglake.parse.kv import find_context, message_pairs, normalize_message
from loglake.parse.records import Emitter
from loglake.parse.timestamps import leading_timestamp, strip_log_prefix
from loglake.parse.vocabulary import is_metric_name, step_kind

MAX_ERROR_CHARS = 1000
TAIL_SCAN_LINES = 400  # lines read backwards from a batch end to classify the log's tail
RESUMED_LINES = 2  # training lines after a traceback that show it was handled
KILLED = "log stopped mid-stream"
CLEAN_END = "clean end"

# torchrun's "[rank0]:" / "[default0]:", srun --label's "3: ", Ray's "(pid=12, ip=...)".
State = dict[str, Any]
_SHAPE = bytes.maketrans(b"123456789", b"000000000")


class HintFilter:
    """Whether a line holds one of some substrings, remembered per line *shape* (the text
    with every digit read as 0). Training logs repeat a few line templates with changing
    numbers, so almost every line is answered by one translate and one dict lookup instead
    of dozens of substring scans. Hints hold no digits, so a shape answers for all its lines.
    (Bytes: ``bytes.translate`` is an order of magnitude faster than ``str.translate``.)
    """

    def __init__(self, hints: tuple[str, ...], size: int = 4096) -> None:
        if any(c.isdigit() for h in hints for c in h):
            raise ValueError("hints must not contain digits")
        self.hints = hints
        self.size = size
        self._seen: dict[bytes, bool] = {}

    def __call__(self, text: str) -> bool:
        shape = text.encode("utf-8", "surrogatepass").translate(_SHAPE)
        hit = self._seen.get(shape)
        if hit is None:
            hit = any(map(text.__contains__, self.hints))
            if len(self._seen) >= self.size:
                self._seen.clear()
            self._seen[shape] = hit
        return hit


_RANK_PREFIX_RE = re.compile(
    r"(?:\[(?:rank|default)\d+\]:|\d{1,4}:(?= )|\((?:[\w.]+ )?pid=\d+(?:, ip=[\d.]+)?\))\s?"
)

# -- tracebacks ------------------------------------------------------------------------------

_TB_HEAD = "Traceback (most recent call last)"
# Python prints these before tracebacks that do not end the process (shutdown noise, a
# worker thread dying): the job's fate is told elsewhere.
_IGNORED_HEADS = ("Exception ignored in", "Error in atexit._run_exitfuncs", "Exception in thread T")
_FRAME_START = (" ", "\t", "│", "┃", "╭", "╰", "|", "^", "~")
_EXC_RE = re.compile(r"(?:[A-Za-z_]\w*\.)*(?P<name>[A-Z]\w*)(?::(?:\s.*)?)?")
_LOG_WORDS = frozenset(
    {"INFO", "WARNING", "WARN", "ERROR", "DEBUG", "CRITICAL", "FATAL", "NOTE", "TRACE", "Epoch"}
)
_CHAIN_RE = re.compile(
    r"During handling of the above exception|The above exception was the direct cause"
)
_CHILD_FIELD_RE = re.compile(r"(?P<k>time|host|rank|exitcode|error_file|traceback)\s*:\s*(?P<v>.*)")
_EXITCODE_NUM_RE = re.compile(r"-?\d+")

# -- failure reasons -------------------------------------------------------------------------

_OOM_RE = re.compile(
    r"out of memory|OutOfMemory|\bOOM\b|RESOURCE_EXHAUSTED|oom[-_ ]kill|Out Of Memory|"
    r"\bMemoryError\b|CUBLAS_STATUS_ALLOC_FAILED|cudaErrorMemoryAllocation|"
    r"Cannot allocate memory",
    re.IGNORECASE,
)
_NCCL_TIMEOUT_RE = re.compile(
    r"Watchdog caught collective operation timeout|Some NCCL operations have failed or timed out"
    r"|ProcessGroupNCCL's watchdog got stuck|NCCL.{0,80}tim(?:ed out|eout)",
    re.IGNORECASE,
)
_NCCL_ERROR_RE = re.compile(r"\bNCCL error\b|\bnccl\w*Error\b|NCCL communicator was aborted")


def failure_reason(text: str) -> str | None:
    """The reason word for a failure message: ``out_of_memory``, ``nccl_timeout``..."""
    if _OOM_RE.search(text):
        return "out_of_memory"
    if _NCCL_TIMEOUT_RE.search(text):
        return "nccl_timeout"
    if _NCCL_ERROR_RE.search(text):
        return "nccl_error"
    if "KeyboardInterrupt" in text:
        return "cancelled"
    return None


# -- exit codes ------------------------------------------------------------------------------

_EXIT_RES = (
    re.compile(r"Process finished with exit code (?P<c>-?\d+)"),
    re.compile(r"\b[Ee]xit(?:ed)? with (?:exit )?(?:code|status) (?P<c>-?\d+)\b"),
    re.compile(r"(?i)\bexit(?:ed)?[ _](?:code|status)\s*[:=]?\s*(?P<c>-?\d+)\b"),
    re.compile(
        r"(?i)\b(?:finished|terminated|completed|failed) with (?:exit )?code (?P<c>-?\d+)\b"
    ),
    re.compile(r"(?i)\bexit(?:s|ed)? with return code\s*=?\s*(?P<c>-?\d+)"),  # DeepSpeed
)


def exit_code_of(text: str) -> int | None:
    """The process exit status a launcher or wrapper printed (``exit code 1``,
    ``exited with code 137``, Slurm's ``Exited with exit code 1``), or ``None``."""
    if "xit" not in text and "code" not in text:
        return None
    if "non-zero exit status" in text:  # subprocess.CalledProcessError: a child, not the job
        return None
    for rx in _EXIT_RES:
        m = rx.search(text)
        if m:
            return int(m.group("c"))
    return None


# -- hard failures and completion markers ----------------------------------------------------

_SLURM_CANCEL_RE = re.compile(
    r"\*{3} (?:JOB|STEP) (?P<id>\S+) (?:ON (?P<node>\S+) )?CANCELLED\b(?: AT \S+)?(?P<rest>.*)$"
)
_SLURM_DUE = (
    ("TIME LIMIT", "time_limit"),
    ("PREEMPTION", "preempted"),
    ("NODE FAIL", "node_failure"),
    ("REQUEUE", "preempted"),
)
_SLURM_OOM_RE = re.compile(r"Detected \d+ oom[-_]kill events?", re.IGNORECASE)
_SRUN_RE = re.compile(r"srun: error: (?P<node>\S+): tasks? (?P<tasks>[\d,\-]+): (?P<what>.+)$")
_SLURM_STATE_RE = re.compile(
    r"^\s*(?:State|JobState|Job State)\s*[:=]\s*(?P<st>COMPLETED|FAILED|TIMEOUT|CANCELLED|"
    r"OUT_OF_MEMORY|PREEMPTED|NODE_FAIL|BOOT_FAIL|DEADLINE)\b"
)
_STATE_REASONS = {
    "TIMEOUT": "time_limit",
    "DEADLINE": "time_limit",
    "CANCELLED": "cancelled",
    "OUT_OF_MEMORY": "out_of_memory",
    "PREEMPTED": "preempted",
    "NODE_FAIL": "node_failure",
    "BOOT_FAIL": "node_failure",
}
_TORCHRUN_FAILED_RE = re.compile(r"failed \(exitcode: (?P<c>-?\d+)\) local_rank: (?P<r>\d+)")
_TERMINATE_RE = re.compile(
    r"terminate called (?:after throwing an instance of '(?P<what>[^']+)'|without an active "
    r"exception|recursively)"
)
_WHAT_RE = re.compile(r"^\s*what\(\):\s+(?P<msg>.+)")
_SIGNALS = (
    r"Killed|Segmentation fault|Aborted|Bus error|Illegal instruction|Floating point exception|"
    r"Terminated|Trace/breakpoint trap|Hangup"
)
_SIGNAL_LINE_RE = re.compile(
    rf"^(?:.*\bline \d+:\s+\d+\s+)?(?P<sig>{_SIGNALS})(?: +\(core dumped\))?(?:\s+\S.*)?$"
)
_BARE_SIGNAL_RE = re.compile(rf"^(?P<sig>{_SIGNALS})(?: +\(core dumped\))?$")
_FATAL_RES = (
    re.compile(r"^Fatal Python error: .+"),
    re.compile(r"^Error executing job with overrides:"),  # Hydra
    re.compile(r"^Exception in thread \"main\" .+"),  # JVM
    re.compile(r"^panic: .+|thread '[^']*' panicked at"),  # Go / Rust
)
_NCCL_FATAL_RE = re.compile(
    r"Watchdog caught collective operation timeout|Some NCCL operations have failed or timed out"
    r"|ProcessGroupNCCL's watchdog got stuck|NCCL communicator was aborted"
)
_INTERRUPT_RE = re.compile(r"Detected KeyboardInterrupt|^KeyboardInterrupt$")
_SIGTERM_RE = re.compile(
    r"(?i)\b(?:received|caught|got|handling)\b.{0,40}\bSIGTERM\b|\bSIGTERM\b.{0,12}\breceived\b"
    r"|Received 15 death signal|Received Signals\.SIGTERM"
)
_PREEMPT_RE = re.compile(
    r"(?i)\b(?:(?:was|been|being|got|is) preempted|due to preemption|preemption (?:notice|signal|"
    r"detected|warning|event)|spot (?:instance )?(?:interruption|termination)|instance (?:is "
    r"being|was) (?:preempted|reclaimed))"
)
_NAN_STOP_RE = re.compile(r"(?i)\bloss is (?:nan|inf)\b.{0,20}\bstop")  # torchvision's scripts
_REQUEUE_RE = re.compile(r"Handling auto-requeue signal|requeing job|requeuing job", re.IGNORECASE)
_SAGEMAKER_RE = re.compile(r"Reporting training (?P<r>SUCCESS|FAILURE)")

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
    "Hangup|Bus error|Trace/|Fatal|Error executing|Exception in|panic|Interrupt|reempt|PREEMPT|"
    "SIGTERM|death signal|eque|Reporting training|ChildFailed|Trainer.fit|rain_runtime|"
    "rain metrics|TrainOutput|Best |l training|completed in|raining|pot in|srun|terminate called|"
    "oss is|return code"
)
_HINTS = HintFilter(tuple(_HINT_WORDS.split("|")))

# -- the loop and the tail -------------------------------------------------------------------

_EPOCH_HEAD_RE = re.compile(r"^\s*Epoch (?P<k>\d+)/(?P<n>\d+)\s*$")
_EPOCH_FRAC_RE = re.compile(r"(?i)\bepoch\s*[:\[]?\s*(?P<k>\d+)\s*/\s*(?P<n>\d+)")
_STEP_FRAC_RE = re.compile(
    r"(?i)\b(?:step|iter(?:ation)?|batch|update|round)\s*[:\[]?\s*(?P<k>\d+)\s*/\s*(?P<n>\d+)"
)
_BAR_RES = (
    re.compile(r"\|\s*(?P<a>\d+)/(?P<b>\d+)\s*\["),  # tqdm
    re.compile(r"[━╸╺]\s+(?P<a>\d+)/(?P<b>\d+)\b"),  # rich
    re.compile(r"^\s*(?P<a>\d+)/(?P<b>\d+)\s+(?:━|\[|-\s)"),  # Keras
)
_PCT_BAR_RE = re.compile(r"(?P<p>\d{1,3})%\|")
_NOISE_RE = re.compile(r"Warning\b|warnings\.warn|^\s+warn\(|^\s*\[W[ \d]")
_DIGIT_RE = re.compile(r"\d")
_QUOTED_KEY_RE = re.compile(r"""['"](?P<k>[A-Za-z_][\w./\-]*)['"]\s*:\s*['"]?-?[\d.]""")
_FINAL_WORDS_RE = re.compile(
    r"(?i)\b(?:final|test|best|total|overall|summary|results?|finished|complete[d]?)\b"
)
_EPOCH_DONE_WORDS_RE = re.compile(r"(?i)\b(?:done|end|ended|finished|complete[d]?|summary)\b")
_TOTAL_RE = re.compile(
    r"(?i)\b(?P<k>num_boost_round|n_estimators|max_epochs|num_train_epochs|num_epochs|n_epochs|"
    r"epochs|max_steps|total_steps|max_iter|max_iters|num_iterations|n_iter|total_iters|"
    r"train_iters|num_steps|max_iterations|Num Epochs|Total optimization steps)['\"]?\s*[:=]\s*"
    r"['\"]?(?P<n>\d[\d,]*)\b"
)


def _decide(
    st: State, out: Emitter, status: str, offset: int, reason: str | None, **kw: Any
) -> None:
    """A decisive observation (failed / completed), remembered so the end verdict defers to it."""
    st["decided"] = offset
    out.status(status, offset, reason=reason, error=kw.get("error"))


def _fraction(rx: re.Pattern[str], text: str) -> list[int] | None:
    m = rx.search(text)
    return [int(m.group(1)), int(m.group(2))] if m else None


def _bar(text: str) -> list[int] | None:
    """``[done, total]`` of a progress bar on the line (``[p, 100]`` for a percentage)."""
    if "/" in text:
        for rx in _BAR_RES:
            m = rx.search(text)
            if m:
                return [int(m.group("a")), int(m.group("b"))]
    if "%|" in text:
        m = _PCT_BAR_RE.search(text)
        if m:
            return [int(m.group("p")), 100]
    return None


def _split_prefix(text: str) -> tuple[str, str]:
    m = _RANK_PREFIX_RE.match(text)
    if m is None:
        return "", text
    return m.group(0).strip(), text[m.end() :]


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
        texts, offsets = batch.texts, batch.offsets
        for i, text in enumerate(texts):
            try:
                self._line(text, offsets[i], state, out)
            except Exception as e:  # noqa: BLE001 - one odd line must not stop the file
                out.error(offsets[i], f"status: {type(e).__name__}: {e}", text)
        if texts and out.last_metric_offset >= offsets[0]:
            state["data"] = True
        self._scan_tail(batch, state)

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

    def _line(self, text: str, offset: int, st: State, out: Emitter) -> None:
        if not text or text.isspace():
            for tb in st["tb"].values():
                if tb["p"] == "msg":
                    tb["p"], tb["n"] = "after", 0
            return
        prefix, body = _split_prefix(text)
        if body.startswith(_IGNORED_HEADS):
            st["ignored"] = True
            return
        ignored, st["ignored"] = st["ignored"], False
        if _TB_HEAD in body:
            head = body.rstrip()
            if head.endswith((":", "╮", _TB_HEAD)):
                st["tb"][prefix] = {"p": "frames", "n": 0, "ignored": ignored}
                return
        tb = st["tb"].get(prefix)
        if tb is not None and self._traceback_line(body, offset, prefix, tb, st):
            return
        if st["child"] is not None and self._child_line(body.strip(), offset, st, out):
            return
        # Training resumed after a traceback: a line a specific parser read (it claimed it)
        # or one that looks like the loop.
        if st["pending"] is not None and (out.is_claimed(offset) or self._is_training(body, st)):
            st["resumed"] += 1
            if st["resumed"] >= RESUMED_LINES:
                st["pending"] = None
        self._markers(body, offset, st, out)

    def _traceback_line(self, body: str, offset: int, prefix: str, tb: State, st: State) -> bool:
        """Feed a line to an open traceback; True when the traceback consumed it."""
        tb["n"] += 1
        phase = tb["p"]
        s = body.strip()
        if phase == "frames":
            if body.startswith(_FRAME_START) or s.startswith(("[Previous line", 'File "')):
                return True
            m = _EXC_RE.fullmatch(s)
            if m and m.group("name") not in _LOG_WORDS:
                tb["p"], tb["n"] = "msg", 0
                if tb.get("ignored"):
                    return True  # "Exception ignored in: ..." at shutdown: not the job failing
                if self._exception(s, m.group("name"), offset, st):
                    tb["p"] = "after"  # torchrun's report follows: read by _child_line
                return True
            if tb["n"] > 50:
                del st["tb"][prefix]
            return False  # a line interleaved from elsewhere
        if _CHAIN_RE.search(s):
            tb["p"], tb["n"] = "chain", 0
            return True
        if phase == "msg":
            # The exception message may go on over several lines until a new record starts.
            if (
                tb["n"] <= 200
                and leading_timestamp(body)[0] is None
                and not _HINTS(body)
                and not self._is_training(body, st)
            ):
                pending = st["pending"]
                first = tb["n"] == 1 and pending and pending[0] == tb.get("o")
                if first and s and pending[1].endswith(":"):  # "Error: bad config:\n  key x"
                    pending[1] = f"{pending[1]} {s}"[:MAX_ERROR_CHARS]
                return True
            tb["p"], tb["n"] = "after", 0
            return False
        if tb["n"] > 5:
            del st["tb"][prefix]
        return phase == "chain"

    def _exception(self, line: str, name: str, offset: int, st: State) -> bool:
        """A traceback's final exception line; True for torchrun's ChildFailedError, whose
        report (which rank failed, how) follows on the next lines."""
        error = line[:MAX_ERROR_CHARS]
        if name.endswith("ChildFailedError"):
            pending = st["pending"]
            st["child"] = {
                "o": offset,
                "err": pending[1] if pending else st["root_error"],
                "script": None,
                "root": False,
                "fields": {},
            }
            st["pending"] = None
            return True
        if name == "SystemExit" and line.partition(":")[2].strip() in ("", "0", "None"):
            return False
        st["pending"] = [offset, error, failure_reason(line)]
        st["root_error"] = error
        st["resumed"] = 0
        for tb in st["tb"].values():
            if tb["p"] == "msg":
                tb["o"] = offset
        return False

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
        _decide(st, out, "failed", offset, error=error[:MAX_ERROR_CHARS], reason=reason)

    # -- markers -----------------------------------------------------------------------------

    def _fail(
        self,
        st: State,
        out: Emitter,
        offset: int,
        line: str,
        reason: str | None,
        *,
        root_cause: bool = True,
    ) -> None:
        """A hard failure. A launcher's generic line takes the error of the traceback that
        caused it, when one is pending."""
        pending = st["pending"]
        error = line.strip()
        if root_cause and pending is not None:
            error = pending[1]
            reason = reason or pending[2]
        st["pending"] = None
        _decide(st, out, "failed", offset, reason=reason, error=error[:MAX_ERROR_CHARS])

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
        if _OOM_RE.search(body):
            st["oom"] = True
        if st["cancel_wrap"] is not None:
            wrapped = body.lstrip()
            if wrapped.startswith("DUE TO"):
                self._fail(st, out, offset, wrapped, self._slurm_reason(wrapped), root_cause=False)
            st["cancel_wrap"] = None
        if "CANCELLED" in body:
            m = _SLURM_CANCEL_RE.search(body)
            if m:
                rest = m.group("rest")
                self._fail(st, out, offset, m.group(0), self._slurm_reason(rest), root_cause=False)
                if "***" not in rest:
                    st["cancel_wrap"] = offset
                return
        if self._failure_markers(body, offset, st, out):
            return
        self._completion_markers(body, offset, st, out)

    @staticmethod
    def _slurm_reason(rest: str) -> str:
        for words, reason in _SLURM_DUE:
            if words in rest:
                return reason
        return "cancelled"

    def _failure_markers(self, body: str, offset: int, st: State, out: Emitter) -> bool:
        s = body.strip()
        if "ChildFailedError" in s:  # the report without its traceback (a tail, a grep)
            m = _EXC_RE.fullmatch(s)
            if m and self._exception(s, m.group("name"), offset, st):
                return True
        if "srun: error:" in s:
            m = _SRUN_RE.search(s)
            if m:
                what = m.group("what")
                code = exit_code_of(what)
                if code == 0:
                    return True
                if what.startswith("Out Of Memory") or (what.startswith("Killed") and st["oom"]):
                    reason = "out_of_memory"
                else:
                    reason = None
                self._fail(st, out, offset, s, reason)
                return True
        if "oom" in s.lower() and _SLURM_OOM_RE.search(s):
            self._fail(st, out, offset, s, "out_of_memory", root_cause=False)
            return True
        if "State" in s:
            m = _SLURM_STATE_RE.match(s)
            if m:
                state = m.group("st")
                if state == "COMPLETED":
                    st["pending"] = None
                    _decide(st, out, "completed", offset, reason="scheduler state COMPLETED")
                else:
                    self._fail(st, out, offset, s, _STATE_REASONS.get(state))
                return True
        code = exit_code_of(s)
        if code is not None:
            if code == 0:
                st["pending"] = None
                st["exit0"] = offset
                if s.startswith("Process finished with exit code"):
                    _decide(st, out, "completed", offset, reason="exit code 0")
            else:
                reason = None
                if code == 137 and st["oom"]:
                    reason = "out_of_memory"
                elif code == 130:
                    reason = "cancelled"
                self._fail(st, out, offset, s, reason)
            return True
        if "exitcode" in s:
            m = _TORCHRUN_FAILED_RE.search(s)
            if m:
                oom = st["oom"] and m.group("c") in ("-9", "137")
                self._fail(st, out, offset, s, "out_of_memory" if oom else None)
                return True
        if "terminate called" in s:
            m = _TERMINATE_RE.search(s)
            if m:
                st["terminate"] = [offset, m.group("what") or "std::terminate"]
                self._fail(st, out, offset, s, failure_reason(s), root_cause=False)
                return True
        if st["terminate"] is not None:
            m = _WHAT_RE.match(body)
            kind = st["terminate"][1]
            st["terminate"] = None
            if m:
                msg = m.group("msg").strip()
                error = f"{kind}: {msg}"
                self._fail(st, out, offset, error, failure_reason(msg), root_cause=False)
                return True
        if _NCCL_FATAL_RE.search(s):
            self._fail(st, out, offset, s, failure_reason(s) or "nccl_error", root_cause=False)
            return True
        m = _BARE_SIGNAL_RE.match(s) or (
            _SIGNAL_LINE_RE.match(s) if " line " in s and "/" in s else None
        )
        if m:
            sig = m.group("sig")
            reason = "out_of_memory" if sig == "Killed" and st["oom"] else None
            self._fail(st, out, offset, s, reason, root_cause=sig != "Aborted")
            return True
        msg = strip_log_prefix(s)
        for rx in _FATAL_RES:
            if rx.search(msg):
                self._fail(st, out, offset, msg, failure_reason(msg), root_cause=False)
                return True
        if _INTERRUPT_RE.search(msg):
            self._fail(st, out, offset, msg, "cancelled", root_cause=False)
            return True
        if _PREEMPT_RE.search(msg):
            st["spot"] = True
            self._fail(st, out, offset, msg, "preempted", root_cause=False)
            return True
        if ("SIGTERM" in msg or "death signal" in msg) and _SIGTERM_RE.search(msg):
            reason = "preempted" if st["spot"] else "terminated"
            self._fail(st, out, offset, msg, reason, root_cause=False)
            return True
        if _NAN_STOP_RE.search(msg):
            self._fail(st, out, offset, msg, "nan_loss", root_cause=False)
            return True
        if _REQUEUE_RE.search(msg):
            self._fail(st, out, offset, msg, "time_limit", root_cause=False)
            return True
        m = _SAGEMAKER_RE.search(msg)
        if m:
            if m.group("r") == "SUCCESS":
                _decide(st, out, "completed", offset, reason="Reporting training SUCCESS")
            else:
                self._fail(st, out, offset, msg, None)
            return True
        return False

    def _completion_markers(self, body: str, offset: int, st: State, out: Emitter) -> None:
        if ("train_runtime" in body or "TrainOutput(" in body) and _HF_SUMMARY_RE.search(body):
            _decide(st, out, "completed", offset, reason="training summary")
            return
        msg = strip_log_prefix(body.strip())
        for i, rx in enumerate(_DONE_RES):
            if rx.search(msg):
                if i == len(_DONE_RES) - 1 and _NOT_DONE_RE.search(msg):
                    return  # "training finished for epoch 3" is not the end
                _decide(st, out, "completed", offset, reason=msg[:120])
                return

    def _keras(self, body: str, offset: int, st: State, out: Emitter) -> None:
        """``Epoch N/N`` followed by that epoch's full bar: the fit loop reached its end."""
        msg = body.strip()
        m = _EPOCH_HEAD_RE.match(msg)
        if m:
            st["epoch"] = [int(m.group("k")), int(m.group("n"))]
            return
        bar = _bar(msg)
        if bar is None or bar[0] != bar[1] or bar[1] == 0:
            return
        epoch = _fraction(_EPOCH_FRAC_RE, msg) or st["epoch"]
        if epoch and epoch[0] == epoch[1] and st["keras_done"] < 0:
            st["keras_done"] = offset
            _decide(st, out, "completed", offset, reason=f"final epoch {epoch[0]}/{epoch[1]} done")

    # -- the tail ----------------------------------------------------------------------------

    @staticmethod
    def _is_training(body: str, st: State) -> bool:
        kind = classify(body, st)
        return kind is not None and kind[0] in ("loop", "metric")

    @staticmethod
    def _scan_tail(batch: LineBatch, st: State) -> None:
        """Classify the batch's last meaningful line (a loop line or a clean-end line)."""
        texts, offsets = batch.texts, batch.offsets
        found = -1
        for i in range(len(texts) - 1, max(-1, len(texts) - 1 - TAIL_SCAN_LINES), -1):
            kind = classify(texts[i], st)
            if kind is None:
                continue
            if kind[0] != "end":
                st["data"] = True
            if kind[0] == "metric":
                continue  # values printed after a loop line belong to that loop
            st["last"] = [kind[0], offsets[i], kind[1]]
            found = i
            break
        if found > 0 and not st["data"]:
            for j in range(found - 1, max(-1, found - 1 - TAIL_SCAN_LINES), -1):
                kind = classify(texts[j], st)
                if kind is not None and kind[0] != "end":
                    st["data"] = True
                    return


def classify(text: str, st: State) -> tuple[str, bool] | None:
    """``(kind, reached)`` of a line: ``loop`` (a step/epoch line or a progress bar;
    ``reached`` when it shows the loop's declared end), ``metric`` (values without a
    counter), ``end`` (anything else), or ``None`` for noise (blank lines, warnings)."""
    if not text or text.isspace():
        return None
    _, body = _split_prefix(text)
    if _NOISE_RE.search(body):
        return None
    msg = strip_log_prefix(body).strip()
    if not msg or not _DIGIT_RE.search(msg):
        return ("end", False) if msg else None
    bar = _bar(msg)
    if bar is not None:
        epoch = _fraction(_EPOCH_FRAC_RE, msg) or st.get("epoch")
        return "loop", bar[0] >= bar[1] and (epoch is None or epoch[0] >= epoch[1])
    if _EPOCH_HEAD_RE.match(msg):
        return "loop", False
    if msg.startswith("{"):
        keys = [k.group("k") for k in _QUOTED_KEY_RE.finditer(msg)]
        metric = any(is_metric_name(k) for k in keys)
        if metric and any(step_kind(k) for k in keys):
            return "loop", False
        if metric and not _FINAL_WORDS_RE.search(msg):
            return "metric", False
        return "end", False
    norm = normalize_message(msg)
    step, epoch = find_context(norm)
    pairs = [p for p in message_pairs(norm) if p.unit != "/" and not step_kind(p.key)]
    if step is not None or epoch is not None:
        if pairs:
            return "loop", _reached(msg, step, epoch, st.get("totals") or {})
        return "end", False
    if any(is_metric_name(p.key) for p in pairs) and not _FINAL_WORDS_RE.search(msg):
        return "metric", False
    return "end", False


def _reached(msg: str, step: int | None, epoch: float | None, totals: dict[str, int]) -> bool:
    """Whether a loop line shows the loop's last iteration."""
    efrac = _fraction(_EPOCH_FRAC_RE, msg)
    sfrac = _fraction(_STEP_FRAC_RE, msg)
    if sfrac is not None:
        return sfrac[0] >= sfrac[1] and (efrac is None or efrac[0] >= efrac[1])
    if efrac is not None:
        if efrac[0] < efrac[1]:
            return False
        return step is None or bool(_EPOCH_DONE_WORDS_RE.search(msg))
    if epoch is not None and step is None and "epoch" in totals:
        return epoch >= totals["epoch"] - 1
    if step is not None and "step" in totals:
        return step >= totals["step"] - 1
    return bool(_FINAL_WORDS_RE.search(msg))


PARSERS = [StatusParser()]
