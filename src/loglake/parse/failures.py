"""What a log line says about a run failing: the reason (out of memory, NCCL timeout,
preemption...), the exit status a launcher printed, and the hard failure markers only a dying
job prints (Slurm cancelling it, torchrun's report, a C++ abort, a signal, a fatal error).

These report observations through the emitter and keep their memory in the status parser's
state dict; the status parser decides which lines reach them.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from loglake.parse.records import Emitter
from loglake.parse.timestamps import strip_log_prefix

MAX_ERROR_CHARS = 1000

State = dict[str, Any]

# A traceback's final line: ``pkg.mod.SomeError: message``.
EXC_RE = re.compile(r"(?:[A-Za-z_]\w*\.)*(?P<name>[A-Z]\w*)(?::(?:\s.*)?)?")

# -- failure reasons -------------------------------------------------------------------------

OOM_PATTERN = (
    r"out of memory|OutOfMemory|\bOOM\b|RESOURCE_EXHAUSTED|oom[-_ ]kill|Out Of Memory|"
    r"\bMemoryError\b|CUBLAS_STATUS_ALLOC_FAILED|cudaErrorMemoryAllocation|"
    r"Cannot allocate memory"
)  # also an RE2 pattern (the status parser's prefilter)
_OOM_RE = re.compile(OOM_PATTERN, re.IGNORECASE)
_NCCL_TIMEOUT_RE = re.compile(
    r"Watchdog caught collective operation timeout|Some NCCL operations have failed or timed out"
    r"|ProcessGroupNCCL's watchdog got stuck|NCCL.{0,80}tim(?:ed out|eout)",
    re.IGNORECASE,
)
_NCCL_ERROR_RE = re.compile(r"\bNCCL error\b|\bnccl\w*Error\b|NCCL communicator was aborted")


# failure_reason by text: a log that retries a flaky read prints the same exception line
# thousands of times, and the case-insensitive search costs ~10 µs a line
_REASON_CHARS = 1000  # longer texts are read directly


def failure_reason(text: str) -> str | None:
    """The reason word for a failure message: ``out_of_memory``, ``nccl_timeout``..."""
    return _reason(text) if len(text) > _REASON_CHARS else _remembered_reason(text)


def _reason(text: str) -> str | None:
    if _OOM_RE.search(text):
        return "out_of_memory"
    if _NCCL_TIMEOUT_RE.search(text):
        return "nccl_timeout"
    if _NCCL_ERROR_RE.search(text):
        return "nccl_error"
    if "KeyboardInterrupt" in text:
        return "cancelled"
    return None


_remembered_reason = lru_cache(maxsize=1024)(_reason)


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


# -- hard failures ---------------------------------------------------------------------------

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
SEGFAULT = "Segmentation fault"  # the one marker wording holding "fault"
_SIGNALS = (
    rf"Killed|{SEGFAULT}|Aborted|Bus error|Illegal instruction|Floating point exception|"
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
NCCL_FATAL_PATTERN = (
    r"Watchdog caught collective operation timeout|Some NCCL operations have failed or timed out"
    r"|ProcessGroupNCCL's watchdog got stuck|NCCL communicator was aborted"
)  # also an RE2 pattern (the status parser's prefilter)
_NCCL_FATAL_RE = re.compile(NCCL_FATAL_PATTERN)
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


def decide(
    st: State, out: Emitter, status: str, offset: int, reason: str | None, **kw: Any
) -> None:
    """A decisive observation (failed / completed), remembered so the end verdict defers to it."""
    st["decided"] = offset
    out.status(status, offset, reason=reason, error=kw.get("error"))


def fail(
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
    decide(st, out, "failed", offset, reason=reason, error=error[:MAX_ERROR_CHARS])


def slurm_reason(rest: str) -> str:
    """The reason of a Slurm cancel from its ``DUE TO ...`` tail; a bare cancel is a user's."""
    for words, reason in _SLURM_DUE:
        if words in rest:
            return reason
    return "cancelled"


def exception_line(line: str, name: str, offset: int, st: State) -> bool:
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


def failure_markers(body: str, offset: int, st: State, out: Emitter) -> bool:
    """Report a failure the line shows; True when the line was a failure marker."""
    if _OOM_RE.search(body):
        st["oom"] = True
    if st["cancel_wrap"] is not None:
        st["cancel_wrap"] = None
        wrapped = body.lstrip()
        if wrapped.startswith("DUE TO"):  # the cancel line's reason: one failure, not two
            fail(st, out, offset, wrapped, slurm_reason(wrapped), root_cause=False)
            return True
    if "CANCELLED" in body:
        m = _SLURM_CANCEL_RE.search(body)
        if m:
            rest = m.group("rest")
            fail(st, out, offset, m.group(0), slurm_reason(rest), root_cause=False)
            if "***" not in rest:
                st["cancel_wrap"] = offset
            return True
    return _hard_failure(body, offset, st, out)


def _hard_failure(body: str, offset: int, st: State, out: Emitter) -> bool:
    """Markers checked cheapest-first; the first that matches decides the line."""
    s = body.strip()
    if "ChildFailedError" in s:  # the report without its traceback (a tail, a grep)
        m = EXC_RE.fullmatch(s)
        if m and exception_line(s, m.group("name"), offset, st):
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
            fail(st, out, offset, s, reason)
            return True
    if "oom" in s.lower() and _SLURM_OOM_RE.search(s):
        fail(st, out, offset, s, "out_of_memory", root_cause=False)
        return True
    if "State" in s:
        m = _SLURM_STATE_RE.match(s)
        if m:
            state = m.group("st")
            if state == "COMPLETED":
                st["pending"] = None
                decide(st, out, "completed", offset, reason="scheduler state COMPLETED")
            else:
                fail(st, out, offset, s, _STATE_REASONS.get(state))
            return True
    code = exit_code_of(s)
    if code is not None:
        if code == 0:
            st["pending"] = None
            st["exit0"] = offset
            if s.startswith("Process finished with exit code"):
                decide(st, out, "completed", offset, reason="exit code 0")
        else:
            reason = None
            if code == 137 and st["oom"]:
                reason = "out_of_memory"
            elif code == 130:
                reason = "cancelled"
            fail(st, out, offset, s, reason)
        return True
    if "exitcode" in s:
        m = _TORCHRUN_FAILED_RE.search(s)
        if m:
            oom = st["oom"] and m.group("c") in ("-9", "137")
            fail(st, out, offset, s, "out_of_memory" if oom else None)
            return True
    if "terminate called" in s:
        m = _TERMINATE_RE.search(s)
        if m:
            st["terminate"] = [offset, m.group("what") or "std::terminate"]
            fail(st, out, offset, s, failure_reason(s), root_cause=False)
            return True
    if st["terminate"] is not None:
        m = _WHAT_RE.match(body)
        kind = st["terminate"][1]
        st["terminate"] = None
        if m:
            msg = m.group("msg").strip()
            error = f"{kind}: {msg}"
            fail(st, out, offset, error, failure_reason(msg), root_cause=False)
            return True
    if _NCCL_FATAL_RE.search(s):
        fail(st, out, offset, s, failure_reason(s) or "nccl_error", root_cause=False)
        return True
    m = _BARE_SIGNAL_RE.match(s) or (_SIGNAL_LINE_RE.match(s) if " line " in s else None)
    if m:
        sig = m.group("sig")
        reason = "out_of_memory" if sig == "Killed" and st["oom"] else None
        fail(st, out, offset, s, reason, root_cause=sig != "Aborted")
        return True
    msg = strip_log_prefix(s)
    for rx in _FATAL_RES:
        if rx.search(msg):
            fail(st, out, offset, msg, failure_reason(msg), root_cause=False)
            return True
    if _INTERRUPT_RE.search(msg):
        fail(st, out, offset, msg, "cancelled", root_cause=False)
        return True
    if _PREEMPT_RE.search(msg):
        st["spot"] = True
        fail(st, out, offset, msg, "preempted", root_cause=False)
        return True
    if ("SIGTERM" in msg or "death signal" in msg) and _SIGTERM_RE.search(msg):
        reason = "preempted" if st["spot"] else "terminated"
        fail(st, out, offset, msg, reason, root_cause=False)
        return True
    if _NAN_STOP_RE.search(msg):
        fail(st, out, offset, msg, "nan_loss", root_cause=False)
        return True
    if _REQUEUE_RE.search(msg):
        fail(st, out, offset, msg, "time_limit", root_cause=False)
        return True
    m = _SAGEMAKER_RE.search(msg)
    if m:
        if m.group("r") == "SUCCESS":
            decide(st, out, "completed", offset, reason="Reporting training SUCCESS")
        else:
            fail(st, out, offset, msg, None)
        return True
    return False
