"""Facts about a run that its log states in passing: code version, host, user, command,
start and end time, exit status, and the environment (Python/CUDA/library versions, GPUs,
Slurm job, world size).

``framework``, ``command``, ``git_commit``, ``git_branch``, ``host``, ``user``,
``start_time``, ``end_time`` and ``exit_code`` are ``runs`` columns; every other key lands
in the run's ``env`` JSON. Each key is reported once per file (the first value wins, as the
run summary keeps it), except ``exit_code`` and ``end_time``, where the last one is true.
"""

from __future__ import annotations

import ast
import re
from bisect import bisect_right
from collections.abc import Callable
from typing import Any

from loglake.parse.base import BaseParser, LineBatch
from loglake.parse.failures import exit_code_of
from loglake.parse.prefilter import WS, any_literal
from loglake.parse.records import Emitter
from loglake.parse.run_details import detail_lines
from loglake.parse.timestamps import leading_timestamp
from loglake.parse.values import shape_of

END_SCAN_LINES = 500  # lines read backwards from a batch end to find its last timestamp

_HOST = r"([A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9])"
_VERSION = r"v?(?P<v>\d+\.\d+(?:\.\d+)*(?:[a-z]+\d*)?(?:\+[\w.]+)?)"
_LIBS = (
    r"torch|pytorch|tensorflow|jax|jaxlib|transformers|keras|lightning|pytorch[ _-]lightning|"
    r"deepspeed|accelerate|xgboost|lightgbm|catboost|sklearn|scikit-learn|optuna|numpy|"
    r"datasets|peft|trl|vllm|flash[ _-]attn|triton|ray|timm|diffusers"
)
_SLURM_VARS = (
    "JOB_ID|JOB_NAME|ARRAY_JOB_ID|ARRAY_TASK_ID|JOB_PARTITION|NTASKS|JOB_NUM_NODES|NNODES|"
    "GPUS_ON_NODE|JOB_ACCOUNT|CLUSTER_NAME|JOB_QOS|RESTART_COUNT"
)
# A GPU model as drivers and frameworks print it: "NVIDIA A100-SXM4-80GB", "Tesla V100-SXM2-32GB",
# "NVIDIA GeForce RTX 3090", "NVIDIA H100 80GB HBM3", "AMD Instinct MI250X".
_GPU_RE = re.compile(
    r"\b(?P<v>(?:NVIDIA|Tesla|Quadro)(?: (?:GeForce|Tesla|Quadro|TITAN))? [A-Z]{0,4} ?\d{1,4}"
    r"[\w-]*(?: Ti)?(?: (?:\d+GB|HBM\d?e?|PCIe|SXM\d?|NVL|Max-Q))*|AMD Instinct MI\d+\w*)"
)

Handler = Callable[[re.Match[str]], list[tuple[str, Any]]]


def _one(key: str) -> Handler:
    return lambda m: [(key, m.group("v"))]


def _lower(key: str) -> Handler:
    return lambda m: [(key, m.group("v").lower())]


def _commit(m: re.Match[str]) -> list[tuple[str, Any]]:
    sha = m.group("v").lower()
    if len(sha) < 40 and not re.search(r"[a-f]", sha):
        return []  # "commit 1000000": a count, not a hash
    return [("git_commit", sha)]


def _host(m: re.Match[str]) -> list[tuple[str, Any]]:
    v = next(g for g in m.groups() if g)
    return [] if v.lower() in ("none", "null", "unknown", "n/a") else [("host", v)]


def _node_host(m: re.Match[str]) -> list[tuple[str, Any]]:
    # "on node gpu-node-12" names a host; "on node 0" or "on node rank" does not
    v = m.group(1)
    return _host(m) if re.search(r"[\d.-]", v) and not v.isdigit() else []


def _nodelist(m: re.Match[str]) -> list[tuple[str, Any]]:
    v = m.group("v")
    facts: list[tuple[str, Any]] = [("slurm_nodelist", v)]
    if "[" not in v and "," not in v:
        facts.append(("host", v))
    return facts


def _lib_version(m: re.Match[str]) -> list[tuple[str, Any]]:
    name = re.sub(r"[ _-]+", "_", m.group("n").lower())
    name = {"pytorch": "torch", "sklearn": "scikit_learn", "scikit_learn": "scikit_learn"}.get(
        name, name
    )
    if name == "pytorch_lightning":
        name = "lightning"
    return [(f"{name}_version", m.group("v"))]


def _argv(m: re.Match[str]) -> list[tuple[str, Any]]:
    try:
        args = ast.literal_eval(m.group("v"))
    except (ValueError, SyntaxError):
        return []
    if not isinstance(args, list) or not args:
        return []
    return [("command", " ".join(str(a) for a in args))]


def _lightning_gpu(m: re.Match[str]) -> list[tuple[str, Any]]:
    return [("gpu_available", m.group("v") == "True"), ("gpu_used", m.group("u") == "True")]


def _slurm_var(m: re.Match[str]) -> list[tuple[str, Any]]:
    key = "slurm_" + m.group("k").lower()
    v = m.group("v")
    return [(key, int(v) if v.isdigit() else v)]


# (substrings of which one must be in the line, pattern, what it gives)
_RULES: list[tuple[tuple[str, ...], re.Pattern[str], Handler]] = [
    (
        ("ommit", "OMMIT", "sha", "SHA", "ash", "evision", "HEAD is now at"),
        re.compile(
            r"(?i)\b(?:git[ _-]?(?:commit|sha|hash|rev(?:ision)?|head)(?:[ _-]?(?:hash|sha|id))?|"
            r"commit(?:[ _-]?(?:hash|sha|id))?|revision|code[ _-]version|HEAD is now at)"
            r"\s*[:=#]?\s*['\"(]?(?P<v>[0-9a-f]{7,40})\b(?![0-9a-f])"
        ),
        _commit,
    ),
    (
        ("branch", "Branch", "BRANCH"),
        re.compile(r"(?i)\bgit[ _-]?branch\s*[:=]?\s*['\"]?(?P<v>[\w./-]+)|^On branch (?P<b>\S+)$"),
        lambda m: [("git_branch", m.group("v") or m.group("b"))],
    ),
    (
        ("ostname", "OSTNAME", "ode name", "odename", "NODENAME", "unning on"),
        re.compile(
            rf"(?i)\b(?:host[ _]?name|node[ _]?name|SLURMD_NODENAME)\s*[:=]\s*['\"]?{_HOST}"
            rf"|\brunning on (?:host|node|machine)\s*[:=]?\s*['\"]?{_HOST}"
        ),
        _host,
    ),
    (
        ("host", "CANCELLED", "srun: error"),
        re.compile(
            rf"^\s*host\s*:\s*{_HOST}\s*$|\*{{3}} (?:JOB|STEP) \S+ ON {_HOST} CANCELLED"
            rf"|srun: error: {_HOST}: tasks? "
        ),
        _host,
    ),
    (("on node",), re.compile(rf"\bon node\s+{_HOST}"), _node_host),
    (("NODELIST",), re.compile(r"SLURM_(?:JOB_)?NODELIST\s*[:=]\s*(?P<v>\S+)"), _nodelist),
    (
        ("user", "USER", "User", "LOGNAME", "unning as"),
        re.compile(
            r"(?:^|[\s,;(\[{])(?:user|username|user_name|User|USER|LOGNAME|SLURM_JOB_USER)\s*[:=]"
            r"\s*['\"]?(?P<v>[A-Za-z_][\w.-]{0,31})['\"]?(?=\s*(?:$|[,;)\]}|]|\w+\s*[:=]))"
            r"|\b[Rr]unning as (?:user )?(?P<u>[a-z_][\w.-]{0,31})\s*$"
        ),
        lambda m: [("user", m.group("v") or m.group("u"))],
    ),
    (
        ("ommand", "Cmd", "cmd", "CMD", "xecuting", "aunch", "+ "),
        re.compile(
            r"^(?:Command(?: line)?|command|[Cc]md|CMD|Running command|Executing|Launching|"
            r"Launch command)\s*[:=]\s*(?P<v>\S.*?)\s*$"
            r"|^\++ (?P<x>(?:\S*/)?(?:python[\d.]*|torchrun|accelerate|deepspeed|srun|mpirun|"
            r"horovodrun)\s.*?)\s*$"
        ),
        lambda m: [("command", m.group("v") or m.group("x"))],
    ),
    (("argv",), re.compile(r"\bsys\.argv\s*[:=]\s*(?P<v>\[.*\])"), _argv),
    (
        ("ython",),
        re.compile(
            r"\bPython (?P<v>[23]\.\d+\.\d+)\b|(?i:\bpython[ _]version)(?:\s*\([^)]*\))?\s*[:=]?\s*"
            r"(?P<w>[23]\.\d+(?:\.\d+)?)"
        ),
        lambda m: [("python_version", m.group("v") or m.group("w"))],
    ),
    (
        ("version", "Version", "VERSION", "__version__"),
        re.compile(
            rf"(?i)(?<![\w.-])`?(?P<n>{_LIBS})`?[ _.](?:version|__version__)(?:\s*\([^)]*\))?"
            rf"\s*[:=]?\s*{_VERSION}"
        ),
        _lib_version,
    ),
    (
        ("CUDA", "cuda"),
        re.compile(
            r"(?i)\bCUDA(?: runtime| toolkit)? version\s*[:=]?\s*(?P<v>\d+\.\d+(?:\.\d+)?)"
            r"|\bCUDA used to build PyTorch\s*:\s*(?P<b>\d+\.\d+)"
        ),
        lambda m: [("cuda_version", m.group("v") or m.group("b"))],
    ),
    (
        ("cuDNN", "CUDNN", "cudnn"),
        re.compile(r"(?i)\bcudnn[ _]version\s*[:=]?\s*(?P<v>\d[\d.]*)"),
        _one("cudnn_version"),
    ),
    (
        ("river",),
        re.compile(r"(?i)\bdriver version\s*[:=]?\s*(?P<v>\d+\.\d+(?:\.\d+)?)"),
        _one("driver_version"),
    ),
    (
        ("NCCL version",),
        re.compile(r"\bNCCL version (?P<v>\d+\.\d+\.\d+[\w.+]*)"),
        _one("nccl_version"),
    ),
    (
        ("backend", "Backend", "BACKEND"),
        re.compile(
            r"(?i)\bUsing (?P<v>TensorFlow|Theano|CNTK|JAX|PyTorch|torch|jax|tensorflow) backend"
            r"|\b(?:Using backend|KERAS_BACKEND)\s*[:=]\s*['\"]?(?P<k>\w+)"
        ),
        lambda m: (
            [("backend", (m.group("v") or m.group("k")).lower())]
            + ([("framework", "keras")] if m.group("v") else [])
        ),
    ),
    (
        ("backend", "Backend", "BACKEND"),
        re.compile(
            r"(?i)\b(?:distributed[ _]backend|dist[ _]backend|backend)\s*[:=]\s*['\"]?"
            r"(?P<v>nccl|gloo|mpi|ucc|hccl|xla)\b"
        ),
        _lower("dist_backend"),
    ),
    (
        ("SLURM", "lurm job"),
        re.compile(
            rf"\bSLURM_(?P<k>{_SLURM_VARS})\s*[:=]\s*['\"]?(?P<v>[\w.-]+)"
            r"|(?i:\bslurm[ _]job[ _]id)\s*[:=]?\s*(?P<j>\d+)"
        ),
        lambda m: [("slurm_job_id", int(m.group("j")))] if m.group("j") else _slurm_var(m),
    ),
    (("NVIDIA", "Tesla", "Quadro", "AMD Instinct"), _GPU_RE, _one("gpu")),
    (
        ("GPU", "gpu"),
        re.compile(
            r"\bUsing (?P<v>\d+) GPUs?\b|(?i:\b(?:num[ _]gpus?|n_gpu|gpu[ _]count|number of gpus))"
            r"\s*[:=]\s*(?P<w>\d+)"
        ),
        lambda m: [("gpu_count", int(m.group("v") or m.group("w")))],
    ),
    (
        ("GPU available",),
        re.compile(r"GPU available: (?P<v>True|False)(?: \(\w+\))?, used: (?P<u>True|False)"),
        _lightning_gpu,
    ),
    (
        ("orld", "ORLD", "MEMBER", "processes", "Num processes"),
        re.compile(
            r"(?i)\bworld[ _]size\s*[:=]?\s*(?P<v>\d+)|\bMEMBER: \d+/(?P<m>\d+)"
            r"|Starting with (?P<p>\d+) processes|\bNum processes\s*[:=]\s*(?P<n>\d+)"
        ),
        lambda m: [
            ("world_size", int(m.group("v") or m.group("m") or m.group("p") or m.group("n")))
        ],
    ),
    (
        ("evice",),
        re.compile(
            r"(?i)\b(?:using device|device)\s*[:=]?\s*['\"]?(?P<v>(?:cuda|cpu|mps|xpu|npu|tpu)"
            r"(?::\d+)?)\b"
        ),
        _lower("device"),
    ),
    (
        ("OS:", "Platform:"),
        re.compile(r"^(?:- )?(?:OS|Platform): (?P<v>\S.*?)\s*$"),
        _one("os"),
    ),
    (
        ("*****", "GPU available", "new study", "LightGBM", "Model: ", "Ultralytics"),
        re.compile(
            r"(?P<hf>\*{5} Running training \*{5})|(?P<pl>GPU available: \w+.*, used: )"
            r"|(?P<op>A new study created)|(?P<lgb>^\[LightGBM\] \[)|(?P<k>^Model: \"\w+\"$)"
            r"|(?P<yolo>^Ultralytics (?:YOLO|\d))"
        ),
        lambda m: [("framework", _FRAMEWORKS[m.lastgroup or ""])],
    ),
]
_FRAMEWORKS = {
    "hf": "transformers",
    "pl": "lightning",
    "op": "optuna",
    "lgb": "lightgbm",
    "k": "keras",
    "yolo": "ultralytics",
}
_HINT_WORDS = tuple(sorted({h for hints, _, _ in _RULES for h in hints} | {"xit", " code "}))
# Prefilter (loglake.parse.prefilter): a line holding no rule's hint matches no rule. A rule
# group (rules sharing their hints) whose facts are all known already is left out: a key
# is reported once per file. Some groups are selected by their regexes' wording, loosened,
# rather than by hints that pass chatter ("sha" in "shard", "GPU" in "Using 4 GPUs with",
# "ython" in every site-packages path).
# first hint of a group -> (the keys its rules report, None when they depend on the line;
# an RE2 pattern standing in for the group's hints)
_GROUPS: dict[str, tuple[frozenset[str] | None, str | None]] = {
    "ommit": (
        frozenset({"git_commit"}),
        (
            r"(?i:git[ _-]?(?:commit|sha|hash|rev|head)|commit|revision|code[ _-]version)"
            r"|HEAD is now at"
        ),
    ),
    "branch": (frozenset({"git_branch"}), None),
    "ostname": (frozenset({"host"}), None),
    "host": (frozenset({"host"}), None),
    "on node": (frozenset({"host"}), None),
    "NODELIST": (frozenset({"slurm_nodelist", "host"}), None),
    "user": (
        frozenset({"user"}),
        rf"(?:user|username|user_name|User|USER|LOGNAME|SLURM_JOB_USER){WS}*[:=]|[Rr]unning as",
    ),
    "ommand": (frozenset({"command"}), None),
    "argv": (frozenset({"command"}), None),
    "ython": (frozenset({"python_version"}), r"Python [23]\.|(?i:python[ _]version)"),
    "version": (None, None),
    "CUDA": (frozenset({"cuda_version"}), None),
    "cuDNN": (frozenset({"cudnn_version"}), None),
    "river": (frozenset({"driver_version"}), None),
    "NCCL version": (frozenset({"nccl_version"}), None),
    "backend": (
        frozenset({"backend", "framework", "dist_backend"}),
        rf"(?i:using (?:tensorflow|theano|cntk|jax|pytorch|torch) backend|backend{WS}*[:=])",
    ),
    "SLURM": (None, None),
    "NVIDIA": (frozenset({"gpu"}), None),
    "GPU": (
        frozenset({"gpu_count"}),
        r"Using \pN+ GPU|(?i:num[ _]gpu|n_gpu|gpu[ _]count|number of gpus)",
    ),
    "GPU available": (frozenset({"gpu_available", "gpu_used"}), None),
    "orld": (frozenset({"world_size"}), None),
    "evice": (frozenset({"device"}), None),
    "OS:": (frozenset({"os"}), None),
    "*****": (frozenset({"framework"}), None),
}
_EXIT_HINTS = any_literal(("xit", " code "))  # exit codes: never done, the last one wins


def _group_pattern(hints: tuple[str, ...]) -> tuple[frozenset[str] | None, str]:
    keys, pattern = _GROUPS[hints[0]]
    return keys, pattern if pattern is not None else any_literal(hints)


_RULE_GROUPS = {hints: _group_pattern(hints) for hints, _, _ in _RULES}
_PATTERNS: dict[frozenset[tuple[str, ...]], str] = {}


def _candidates(seen: dict[str, Any]) -> str:
    """The prefilter for the rule groups that can still report something new."""
    live = frozenset(
        hints
        for hints, (keys, _) in _RULE_GROUPS.items()
        if keys is None or not keys <= seen.keys()
    )
    pattern = _PATTERNS.get(live)
    if pattern is None:
        if len(_PATTERNS) >= 256:
            _PATTERNS.clear()
        parts = sorted({_RULE_GROUPS[h][1] for h in live})
        pattern = _PATTERNS[live] = "|".join((_EXIT_HINTS, *parts))
    return pattern


# The rules that can match a message, cached per message shape (every ASCII digit read as
# 0): the rules one of whose hints it holds (no hint holds a digit) and whose pattern found
# something in the first message of that shape. Patterns see a digit only as a digit
# (``\d``, ``[0-9a-f]``, ``{7,40}``), so they match every message of a shape or none;
# a pattern naming a digit (``Python [23]\.``) is searched in each message holding a hint.
_Rule = tuple[tuple[str, ...], re.Pattern[str], Handler]
_MATCHING: dict[bytes, tuple[_Rule, ...]] = {}
_MATCHING_SIZE = 4096
_QUANTIFIER_RE = re.compile(r"\{\d+(?:,\d*)?\}|0-9")


def _names_a_digit(rx: re.Pattern[str]) -> bool:
    return any(c.isdigit() for c in _QUANTIFIER_RE.sub("", rx.pattern))


_DIGIT_PATTERNS = frozenset(rx for _, rx, _ in _RULES if _names_a_digit(rx))


def matching_rules(msg: str) -> tuple[_Rule, ...]:
    """The rules, in order, whose pattern may find something in ``msg``."""
    shape = shape_of(msg)
    got = _MATCHING.get(shape)
    if got is None:
        got = tuple(
            rule
            for rule in _RULES
            if any(map(msg.__contains__, rule[0]))
            and (rule[1] in _DIGIT_PATTERNS or rule[1].search(msg))
        )
        if len(_MATCHING) >= _MATCHING_SIZE:
            _MATCHING.clear()
        _MATCHING[shape] = got
    return got


def _stamp(ts: list[float | None] | None, i: int, text: str) -> float | None:
    """The line's time: the envelope's when it has one, else a timestamp the line starts with."""
    t = ts[i] if ts is not None else None
    return t if t is not None else leading_timestamp(text)[0]


class FactsParser(BaseParser):
    """Run facts (code, host, command, time span, exit code, environment) from any log."""

    name = "facts"
    version = "1"
    priority = 85

    def new_state(self) -> dict[str, Any]:
        # seen: key -> value reported; start/end: [epoch seconds, offset] of the first/last stamp
        return {"seen": {}, "start": None, "end": None}

    def parse(self, batch: LineBatch, state: dict[str, Any], out: Emitter) -> None:
        texts, offsets = batch.texts, batch.offsets
        self._times(batch, state, out)
        seen = state["seen"]
        pattern = _candidates(seen)
        lines = detail_lines(batch, pattern)
        k = 0
        while k < len(lines):
            i = lines[k]
            k += 1
            known = len(seen)
            try:
                self._line(batch.message(i), offsets[i], state, out)
            except Exception as e:  # noqa: BLE001 - one odd line must not stop the file
                out.error(offsets[i], f"facts: {type(e).__name__}: {e}", texts[i])
            if len(seen) != known and (now := _candidates(seen)) != pattern:
                # a rule group just became fully known: the rest of the batch is picked
                # again without its hints (a fresh file's first batch is often all of it)
                pattern, lines = now, detail_lines(batch, now)
                k = bisect_right(lines, i)

    def finalize(self, state: dict[str, Any], out: Emitter, *, idle: bool) -> None:
        end = state["end"]
        if end is not None:
            out.fact("end_time", end[0], end[1])

    def _times(self, batch: LineBatch, state: dict[str, Any], out: Emitter) -> None:
        """The first timestamp of the log (once) and the last one seen so far."""
        texts, offsets, ts = batch.texts, batch.offsets, batch.ts
        if state["start"] is None:
            for i, text in enumerate(texts):
                t = _stamp(ts, i, text)
                if t is not None:
                    state["start"] = [t, offsets[i]]
                    out.fact("start_time", t, offsets[i])
                    break
        if state["start"] is None:
            return
        for i in range(len(texts) - 1, max(-1, len(texts) - 1 - END_SCAN_LINES), -1):
            t = _stamp(ts, i, texts[i])
            if t is not None:
                if state["end"] is None or offsets[i] >= state["end"][1]:
                    state["end"] = [t, offsets[i]]
                return

    def _line(self, message: str, offset: int, state: dict[str, Any], out: Emitter) -> None:
        msg = message.strip()
        seen = state["seen"]
        found: list[tuple[str, Any]] = []
        for _, rx, handler in matching_rules(msg):
            m = rx.search(msg)
            if m:
                found.extend(handler(m))
        code = exit_code_of(msg)
        if code is not None:
            found.append(("exit_code", code))
        for key, value in found:
            if value is None or value == "":
                continue
            if key in seen and (key != "exit_code" or seen[key] == value):
                continue
            seen[key] = value
            out.fact(key, value, offset)


PARSERS = [FactsParser()]
